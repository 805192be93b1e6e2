// Proof (3): a restart of the instrumented app with the spool on: the first client is closed
// while Aforo is down (nothing delivered), a new client on the same spool replays the events,
// and once Aforo is back every event is rated exactly once.
import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { AforoClient } from '../../src/index.js';
import { Spool } from '../../src/spool.js';
import { clientOptions, platform } from '../platform.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));

describe('spool end to end', () => {
  let p;
  before(async () => { p = await platform(); });

  it('events recorded during an outage survive a client restart and are delivered exactly once', async () => {
    const initech = p.customer('Initech');
    const spoolPath = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'aforo-spool-')), 'events.jsonl');
    const before = await p.units(initech.id, 'llm_tokens');
    await p.webStop();
    let second;
    try {
      const first = new AforoClient(clientOptions(p, { spoolPath }));
      const ids = [];
      for (let i = 0; i < 25; i += 1) ids.push(first.record({ apiKey: initech.api_key, metric: 'llm_tokens', quantity: '2' }));
      assert.deepEqual(await first.close({ timeoutMs: 300 }), { delivered: false, pending: 25 });
      assert.equal(first.metrics().dropped, 0, 'with a spool, shutdown keeps events instead of dropping them');

      second = new AforoClient(clientOptions(p, { spoolPath }));
      assert.equal(second.metrics().replayed, 25);
      second.record({ apiKey: initech.api_key, metric: 'llm_tokens', quantity: '2' });
    } finally {
      await p.webStart();
    }
    assert.equal(await second.flush({ timeoutMs: 20_000 }), true);
    assert.equal(await p.unitsWhen(initech.id, 'llm_tokens', before + 52), before + 52);
    assert.equal(second.metrics().accepted, 26);
    await second.close();
    const spool = new Spool(spoolPath);
    assert.deepEqual(spool.replay(), [], 'a settled spool replays nothing');
    spool.close([]);
  });

  it('a crashed process (killed, no close) leaves its events in the spool for the next one', async () => {
    const initech = p.customer('Initech');
    const spoolPath = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'aforo-spool-')), 'events.jsonl');
    const before = await p.units(initech.id, 'agent_sessions');
    await p.webStop();
    try {
      const child = spawn(process.execPath, [path.join(HERE, 'crashing-producer.mjs')], {
        env: { ...process.env, AFORO_URL: p.url, AFORO_TOKEN: p.ingestToken, API_KEY: initech.api_key, SPOOL: spoolPath, COUNT: '15' },
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      const [code, signal] = await new Promise((resolve) => child.once('exit', (c, s) => resolve([c, s])));
      assert.equal(signal, 'SIGKILL', `the producer should have been killed (exit ${code})`);
    } finally {
      await p.webStart();
    }
    const client = new AforoClient(clientOptions(p, { spoolPath }));
    assert.equal(client.metrics().replayed, 15);
    assert.equal(await client.flush({ timeoutMs: 20_000 }), true);
    assert.equal(await p.unitsWhen(initech.id, 'agent_sessions', before + 15), before + 15);
    await client.close();
  });
});
