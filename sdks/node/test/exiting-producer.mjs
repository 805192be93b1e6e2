// Records three events and returns: the client's beforeExit hook must deliver them.
import { AforoClient } from '../src/index.js';

const client = new AforoClient({ url: process.env.AFORO_URL, token: 'aft_ingest_test', flushIntervalMs: 60_000, shutdownTimeoutMs: 2000, logger: null });
for (let i = 0; i < 3; i += 1) client.record({ apiKey: 'k', metric: 'm' });
