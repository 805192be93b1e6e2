// Unit tests of the client's policies against a tiny local fake of the ingest API (retries,
// Retry-After, 4xx, overflow, batching) and of the pure helpers. The end-to-end proof of the
// same behaviour against a real Aforo is in all.test.mjs.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { AforoClient, backoffMs, decimalAdd, retryAfterMs, toDecimalString, uuidv7 } from '../src/index.js';
import { Spool } from '../src/spool.js';

const HERE = path.dirname(fileURLToPath(import.meta.url));

/** A fake ingest endpoint answering from a script of (body) → [status, headers, json]. */
async function fakeAforo(script) {
  const requests = [];
  const server = http.createServer((req, res) => {
    let text = '';
    req.on('data', (chunk) => { text += chunk; });
    req.on('end', () => {
      const body = text ? JSON.parse(text) : null;
      requests.push({ at: Date.now(), url: req.url, body, authorization: req.headers.authorization });
      const answer = script(body, requests.length, req, res);
      if (answer === 'reset') { req.socket.destroy(); return; }
      if (answer === 'hang') return;
      const [status, headers, json] = answer;
      res.writeHead(status, { 'content-type': 'application/json', ...headers });
      res.end(JSON.stringify(json));
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  server.unref(); // a failed test must not keep the test process alive
  return { url: `http://127.0.0.1:${server.address().port}`, requests, close: () => new Promise((resolve) => { server.closeAllConnections(); server.close(resolve); }) };
}

const accepted = (body) => [202, {}, { results: body.events.map((event, index) => ({ index, event_id: event.event_id, status: 'accepted' })) }];
const options = (fake, extra = {}) => ({ url: fake.url, token: 'aft_ingest_test', flushIntervalMs: 20, retry: { baseMs: 10, maxMs: 40 }, logger: null, ...extra });

describe('retry policy', () => {
  it('retries 5xx and 429 with the same event ids until accepted', async () => {
    const fake = await fakeAforo((body, n) => (n === 1 ? [503, {}, { error: { code: 'broker_unavailable' } }] : n === 2 ? [429, {}, {}] : accepted(body)));
    const client = new AforoClient(options(fake));
    const id = client.record({ apiKey: 'k', metric: 'm' });
    assert.equal(await client.flush({ timeoutMs: 5000 }), true);
    assert.equal(fake.requests.length, 3);
    assert.deepEqual(fake.requests.map((r) => r.body.events[0].event_id), [id, id, id]);
    assert.equal(fake.requests[0].authorization, 'Bearer aft_ingest_test');
    assert.deepEqual([client.metrics().accepted, client.metrics().retried, client.metrics().failedRequests], [1, 2, 2]);
    await client.close();
    await fake.close();
  });

  it('retries a reset connection (network error)', async () => {
    const fake = await fakeAforo((body, n) => (n === 1 ? 'reset' : accepted(body)));
    const client = new AforoClient(options(fake));
    client.record({ apiKey: 'k', metric: 'm' });
    assert.equal(await client.flush({ timeoutMs: 5000 }), true);
    assert.equal(fake.requests.length, 2);
    await client.close();
    await fake.close();
  });

  it('waits at least Retry-After before retrying', async () => {
    const fake = await fakeAforo((body, n) => (n === 1 ? [429, { 'retry-after': '1' }, { error: { code: 'throttled' } }] : accepted(body)));
    const client = new AforoClient(options(fake));
    client.record({ apiKey: 'k', metric: 'm' });
    assert.equal(await client.flush({ timeoutMs: 5000 }), true);
    assert.ok(fake.requests[1].at - fake.requests[0].at >= 990, `retried after ${fake.requests[1].at - fake.requests[0].at} ms`);
    await client.close();
    await fake.close();
  });

  for (const status of [400, 401, 403, 415, 422]) {
    it(`never retries a ${status}: every event of the batch goes to onRejected`, async () => {
      const fake = await fakeAforo(() => [status, {}, { error: { code: `code_${status}`, message: 'no' } }]);
      const rejected = [];
      const client = new AforoClient(options(fake, { onRejected: (event, result) => rejected.push([event.event_id, result.code]) }));
      const ids = [client.record({ apiKey: 'k', metric: 'm' }), client.record({ apiKey: 'k', metric: 'm' })];
      assert.equal(await client.flush({ timeoutMs: 5000 }), true);
      assert.equal(fake.requests.length, 1);
      assert.deepEqual(rejected, ids.map((id) => [id, `code_${status}`]));
      assert.equal(client.metrics().rejected, 2);
      await client.close();
      await fake.close();
    });
  }

  it('splits a batch the API finds too large (413) instead of rejecting it', async () => {
    const fake = await fakeAforo((body) => (body.events.length > 2 ? [413, {}, { error: { code: 'payload_too_large' } }] : accepted(body)));
    const client = new AforoClient(options(fake));
    for (let i = 0; i < 5; i += 1) client.record({ apiKey: 'k', metric: 'm' });
    assert.equal(await client.flush({ timeoutMs: 5000 }), true);
    assert.equal(client.metrics().accepted, 5);
    assert.equal(client.metrics().rejected, 0);
    await client.close();
    await fake.close();
  });

  it('backoff grows exponentially with jitter, capped, never below Retry-After', () => {
    const policy = { baseMs: 100, maxMs: 1000 };
    assert.equal(backoffMs(1, policy, 0, () => 0), 50);
    assert.equal(backoffMs(1, policy, 0, () => 1), 100);
    assert.equal(backoffMs(3, policy, 0, () => 1), 400);
    assert.equal(backoffMs(30, policy, 0, () => 1), 1000);
    assert.equal(backoffMs(1, policy, 5000, () => 1), 5000);
    assert.equal(retryAfterMs('2'), 2000);
    assert.equal(retryAfterMs(new Date(Date.now() + 3000).toUTCString()) > 1000, true);
    assert.equal(retryAfterMs('soon'), 0);
  });
});

describe('buffering', () => {
  it('flushes by size without waiting for the timer, in batches of at most batchSize', async () => {
    const fake = await fakeAforo(accepted);
    const client = new AforoClient(options(fake, { flushIntervalMs: 60_000, batchSize: 10 }));
    for (let i = 0; i < 25; i += 1) client.record({ apiKey: 'k', metric: 'm' });
    assert.equal(await client.flush({ timeoutMs: 5000 }), true);
    assert.ok(fake.requests.every((r) => r.body.events.length <= 10));
    assert.equal(fake.requests.reduce((sum, r) => sum + r.body.events.length, 0), 25);
    await client.close();
    await fake.close();
  });

  it('flushes by time', async () => {
    const fake = await fakeAforo(accepted);
    const client = new AforoClient(options(fake, { flushIntervalMs: 30, batchSize: 1000 }));
    client.record({ apiKey: 'k', metric: 'm' });
    const deadline = Date.now() + 5000;
    while (fake.requests.length === 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
    assert.equal(fake.requests.length, 1);
    await client.close();
    await fake.close();
  });

  it('overflow: drops the newest event when the buffer is full, counts it and reports it', async () => {
    const fake = await fakeAforo(() => [503, {}, {}]);
    const dropped = [];
    const client = new AforoClient(options(fake, { maxBufferEvents: 3, onDropped: (events, reason) => dropped.push([events.length, reason]) }));
    const ids = [1, 2, 3, 4].map(() => client.record({ apiKey: 'k', metric: 'm' }));
    assert.equal(ids[3], null);
    assert.ok(ids.slice(0, 3).every(Boolean));
    assert.deepEqual(dropped, [[1, 'buffer_full']]);
    assert.equal(client.metrics().dropped, 1);
    const closed = await client.close({ timeoutMs: 100 });
    assert.equal(closed.delivered, false);
    assert.deepEqual(dropped[1], [3, 'shutdown'], 'without a spool, what shutdown could not deliver is reported');
    await fake.close();
  });

  it('quantities are decimal strings: floats are refused at record time', async () => {
    const fake = await fakeAforo(accepted);
    const client = new AforoClient(options(fake));
    assert.throws(() => client.record({ apiKey: 'k', metric: 'm', quantity: 0.1 }), TypeError);
    client.record({ apiKey: 'k', metric: 'm', quantity: 7 });
    client.record({ apiKey: 'k', metric: 'm', quantity: 12n });
    await client.flush({ timeoutMs: 5000 });
    assert.deepEqual(fake.requests.flatMap((r) => r.body.events.map((e) => e.quantity)), ['7', '12']);
    await client.close();
    await fake.close();
  });

  it('flushes on beforeExit: a script that only records still delivers', async () => {
    const fake = await fakeAforo(accepted);
    const child = spawn(process.execPath, [path.join(HERE, 'exiting-producer.mjs')], { env: { ...process.env, AFORO_URL: fake.url }, stdio: 'inherit' });
    assert.equal(await new Promise((resolve) => child.once('exit', resolve)), 0);
    assert.equal(fake.requests.reduce((sum, r) => sum + r.body.events.length, 0), 3);
    await fake.close();
  });

  it('close() gives up on time even when Aforo never answers, and the process can exit', async () => {
    const fake = await fakeAforo(() => 'hang');
    const started = Date.now();
    const child = spawn(process.execPath, [path.join(HERE, 'exiting-producer.mjs')], { env: { ...process.env, AFORO_URL: fake.url }, stdio: 'inherit' });
    assert.equal(await new Promise((resolve) => child.once('exit', resolve)), 0);
    assert.ok(Date.now() - started < 6000, `exited after ${Date.now() - started} ms (shutdown budget 2 s, request timeout 10 s)`);
    assert.equal(fake.requests.length, 1);
    await fake.close();
  });

  it('entitlement check fails open (degraded) when Aforo is unreachable, and does not cache it', async () => {
    const fake = await fakeAforo(() => [503, {}, {}]);
    const client = new AforoClient(options(fake));
    const answer = await client.checkEntitlement({ apiKey: 'k', metric: 'm' });
    assert.deepEqual([answer.allow, answer.degraded, answer.reason], [true, true, 'aforo_unreachable']);
    await client.checkEntitlement({ apiKey: 'k', metric: 'm' });
    assert.equal(fake.requests.length, 2);
    const strict = new AforoClient(options(fake, { entitlementFailOpen: false }));
    assert.equal((await strict.checkEntitlement({ apiKey: 'k', metric: 'm' })).allow, false);
    await client.close();
    await strict.close();
    await fake.close();
  });
});

describe('helpers', () => {
  it('uuidv7: version 7, RFC 4122 variant, time-ordered', () => {
    const a = uuidv7(1_700_000_000_000);
    const b = uuidv7(1_700_000_000_001);
    assert.match(a, /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    assert.equal(a.slice(0, 13).replace('-', ''), (1_700_000_000_000).toString(16).padStart(12, '0'));
    assert.ok(a < b);
    assert.equal(new Set(Array.from({ length: 10_000 }, () => uuidv7())).size, 10_000);
  });

  it('decimal strings add exactly', () => {
    assert.equal(decimalAdd('0.1', '0.2'), '0.3');
    assert.equal(decimalAdd('1.25', '2', '0.75'), '4');
    assert.equal(decimalAdd('-1', '0.5'), '-0.5');
    assert.equal(toDecimalString(3), '3');
    assert.throws(() => toDecimalString(1.5), TypeError);
  });

  it('spool: replays unacknowledged events in order, skips a torn last line, one owner at a time', () => {
    const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'aforo-spool-')), 's.jsonl');
    const spool = new Spool(file);
    spool.compact([]);
    for (const id of ['a', 'b', 'c']) spool.append(JSON.stringify({ event_id: id }));
    spool.ack(['b']);
    assert.throws(() => new Spool(file), /already open/);
    fs.appendFileSync(file, '{"e":{"event_id":"tor');
    assert.deepEqual(spool.replay().map((e) => e.event_id), ['a', 'c']);
    spool.close(spool.replay());
    const reopened = new Spool(file);
    assert.deepEqual(reopened.replay().map((e) => e.event_id), ['a', 'c']);
    reopened.close([]);
  });
});

describe('packaging', () => {
  it('loads from CommonJS through the package name (require of an ES module, Node >= 20.19)', async () => {
    const here = path.dirname(fileURLToPath(import.meta.url));
    const child = spawn(process.execPath, ['-e', "const sdk = require('@aforo/sdk'); console.log(JSON.stringify([typeof sdk.AforoClient, typeof sdk.aforoExpress, typeof sdk.aforoFastify]))"], { cwd: path.join(here, '..') });
    let out = '';
    let err = '';
    child.stdout.on('data', (chunk) => { out += chunk; });
    child.stderr.on('data', (chunk) => { err += chunk; });
    const code = await new Promise((resolve) => child.on('close', resolve));
    assert.equal(code, 0, err);
    assert.deepEqual(JSON.parse(out), ['function', 'function', 'function']);
  });
});
