// Proof (7): the entitlement check, and its short local cache.
import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { AforoClient } from '../../src/index.js';
import { clientOptions, platform } from '../platform.mjs';

describe('entitlement checks end to end', () => {
  let p;
  before(async () => { p = await platform(); });

  it('answers from Aforo, then from the cache until it expires', async () => {
    const acme = p.customer('Acme Corp');
    let now = 1_000_000;
    const client = new AforoClient(clientOptions(p, { now: () => now, entitlementCacheMs: 1000 }));
    const first = await client.checkEntitlement({ apiKey: acme.api_key, metric: 'api_calls' });
    assert.equal(first.allow, true);
    assert.equal(first.reason, 'within_limit');
    assert.equal(first.cached, false);
    now += 999;
    const second = await client.checkEntitlement({ apiKey: acme.api_key, metric: 'api_calls' });
    assert.equal(second.cached, true);
    assert.equal(second.limit, first.limit);
    now += 2;
    const third = await client.checkEntitlement({ apiKey: acme.api_key, metric: 'api_calls' });
    assert.equal(third.cached, false);
    const denied = await client.checkEntitlement({ apiKey: 'sk_live_not_a_key', metric: 'api_calls' });
    assert.equal(denied.allow, false);
    assert.equal(denied.reason, 'unknown_api_key');
    assert.deepEqual([client.metrics().entitlementChecks, client.metrics().entitlementCacheHits], [4, 1]);
    await client.close();
  });
});
