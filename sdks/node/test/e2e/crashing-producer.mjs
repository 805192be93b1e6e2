// Records COUNT events with a spool while Aforo is down, then dies without closing the client
// (SIGKILL: no beforeExit, no flush), as a crashed app would.
import { AforoClient } from '../../src/index.js';

const client = new AforoClient({ url: process.env.AFORO_URL, token: process.env.AFORO_TOKEN, spoolPath: process.env.SPOOL, logger: null });
for (let i = 0; i < Number(process.env.COUNT); i += 1) {
  client.record({ apiKey: process.env.API_KEY, metric: 'agent_sessions', quantity: '1' });
}
process.kill(process.pid, 'SIGKILL');
