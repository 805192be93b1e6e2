// Proof (1): N requests through an instrumented Express / Fastify app → exactly N events rated.
import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import express from 'express';
import Fastify from 'fastify';
import { AforoClient, aforoExpress, aforoFastify } from '../../src/index.js';
import { clientOptions, platform } from '../platform.mjs';

const N = 40;

export async function listen(app) {
  const server = await new Promise((resolve) => { const s = app.listen(0, '127.0.0.1', () => resolve(s)); });
  return { url: `http://127.0.0.1:${server.address().port}`, close: () => new Promise((resolve) => server.close(resolve)) };
}

export async function hit(url, apiKey, count) {
  for (let i = 0; i < count; i += 1) {
    const response = await fetch(url, { headers: { 'x-api-key': apiKey } });
    assert.equal(response.status, 200);
    await response.arrayBuffer();
  }
}

describe('middleware end to end', () => {
  let p;
  before(async () => { p = await platform(); });

  it('Express: N requests → exactly N api_calls rated', async () => {
    const acme = p.customer('Acme Corp');
    const client = new AforoClient(clientOptions(p));
    const app = express();
    app.use(aforoExpress(client, { metric: 'api_calls' }));
    app.get('/search', (req, res) => res.json({ ok: true }));
    app.get('/anonymous', (req, res) => res.json({ ok: true }));
    const server = await listen(app);
    const before = await p.units(acme.id, 'api_calls');
    await hit(`${server.url}/search`, acme.api_key, N);
    await fetch(`${server.url}/anonymous`).then((response) => response.arrayBuffer()); // no key: not metered
    assert.equal(await client.flush({ timeoutMs: 15_000 }), true);
    assert.equal(await p.unitsWhen(acme.id, 'api_calls', before + N), before + N);
    const metrics = client.metrics();
    assert.equal(metrics.accepted, N);
    assert.equal(metrics.rejected + metrics.dropped + metrics.duplicates, 0);
    await server.close();
    assert.deepEqual(await client.close(), { delivered: true, pending: 0 });
  });

  it('Fastify: N requests → exactly N llm_tokens rated (quantity from the handler)', async () => {
    const acme = p.customer('Acme Corp');
    const client = new AforoClient(clientOptions(p));
    const app = Fastify();
    await app.register(aforoFastify, { client, metric: 'llm_tokens', quantity: (request, reply) => reply.getHeader('x-tokens') });
    app.get('/complete', async (request, reply) => { reply.header('x-tokens', '3'); return { ok: true }; });
    await app.listen({ port: 0, host: '127.0.0.1' });
    const url = `http://127.0.0.1:${app.server.address().port}/complete`;
    const before = await p.units(acme.id, 'llm_tokens');
    await hit(url, acme.api_key, N);
    assert.equal(await client.flush({ timeoutMs: 15_000 }), true);
    assert.equal(await p.unitsWhen(acme.id, 'llm_tokens', before + 3 * N), before + 3 * N);
    assert.equal(client.metrics().accepted, N);
    await app.close();
    await client.close();
  });
});
