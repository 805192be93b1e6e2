// Proof (4): rejected events reach the callback, with the API's code, and are not retried.
import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { AforoClient } from '../../src/index.js';
import { clientOptions, platform } from '../platform.mjs';

describe('rejected events end to end', () => {
  let p;
  before(async () => { p = await platform(); });

  it('a bad event in a batch is reported with its code; the good one is accepted', async () => {
    const acme = p.customer('Acme Corp');
    const rejected = [];
    const client = new AforoClient(clientOptions(p, { onRejected: (event, result) => rejected.push({ event, result }) }));
    const good = client.record({ apiKey: acme.api_key, metric: 'agent_sessions', quantity: '1' });
    const bad = client.record({ apiKey: acme.api_key, metric: 'agent_sessions', quantity: '-5' });
    assert.equal(await client.flush({ timeoutMs: 10_000 }), true);
    assert.equal(rejected.length, 1);
    assert.equal(rejected[0].event.event_id, bad);
    assert.equal(rejected[0].result.code, 'negative_quantity');
    assert.notEqual(good, bad);
    const metrics = client.metrics();
    assert.deepEqual([metrics.accepted, metrics.rejected, metrics.requests, metrics.retried], [1, 1, 1, 0]);
    await client.close();
  });

  it('a batch the API refuses whole (400 invalid_events) reports every event, once, without retrying', async () => {
    const acme = p.customer('Acme Corp');
    const rejected = [];
    const client = new AforoClient(clientOptions(p, { onRejected: (event, result) => rejected.push(result.code) }));
    client.record({ apiKey: acme.api_key, metric: 'bad metric with spaces', quantity: '1' });
    client.record({ apiKey: acme.api_key, metric: 'agent_sessions', quantity: '1', timestamp: '2001-01-01T00:00:00Z' });
    assert.equal(await client.flush({ timeoutMs: 10_000 }), true);
    assert.deepEqual(rejected.sort(), ['invalid_metric', 'timestamp_too_old']);
    assert.equal(client.metrics().requests, 1);
    await client.close();
  });

  it('a wrong token (401) rejects the batch to the callback and is not retried', async () => {
    const acme = p.customer('Acme Corp');
    const rejected = [];
    const client = new AforoClient(clientOptions(p, { token: 'aft_ingest_wrong', onRejected: (event, result) => rejected.push(result) }));
    client.record({ apiKey: acme.api_key, metric: 'agent_sessions' });
    assert.equal(await client.flush({ timeoutMs: 10_000 }), true);
    assert.equal(rejected.length, 1);
    assert.equal(rejected[0].http_status, 401);
    assert.equal(client.metrics().requests, 1);
    await client.close();
  });
});
