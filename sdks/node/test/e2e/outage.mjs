// Proof (2): the same across an Aforo outage in the middle: the client buffers and retries,
// nothing is lost, nothing is doubled.
import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import express from 'express';
import { AforoClient, aforoExpress } from '../../src/index.js';
import { clientOptions, platform } from '../platform.mjs';
import { hit, listen } from './middleware.mjs';

describe('outage end to end', () => {
  let p;
  before(async () => { p = await platform(); });

  it('N requests with the web stopped in the middle → exactly N rated once it is back', async () => {
    const initech = p.customer('Initech');
    const client = new AforoClient(clientOptions(p));
    const app = express();
    app.use(aforoExpress(client));
    app.get('/work', (req, res) => res.send('done'));
    const server = await listen(app);
    const before = await p.units(initech.id, 'api_calls');
    try {
      await hit(`${server.url}/work`, initech.api_key, 20);
      await p.webStop();
      await hit(`${server.url}/work`, initech.api_key, 30); // the app keeps serving during the outage
      assert.equal(await client.flush({ timeoutMs: 1000 }), false, 'nothing can be delivered while Aforo is down');
      assert.ok(client.metrics().failedRequests > 0);
      assert.ok(client.pending > 0);
    } finally {
      await p.webStart();
    }
    assert.equal(await client.flush({ timeoutMs: 20_000 }), true);
    assert.equal(await p.unitsWhen(initech.id, 'api_calls', before + 50), before + 50);
    const metrics = client.metrics();
    assert.equal(metrics.accepted + metrics.duplicates, 50);
    assert.ok(metrics.retried > 0);
    assert.equal(metrics.rejected + metrics.dropped, 0);
    await server.close();
    await client.close();
  });
});
