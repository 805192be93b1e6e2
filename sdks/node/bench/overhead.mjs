// The Node SDK's overhead (not a test): what the Express middleware adds to a request, and how
// many events per second one process can record and deliver to a running Aforo.
//
//   node bench/overhead.mjs                 # starts its own testplatform (~30 s)
//   AFORO_URL=… AFORO_TOKEN=… AFORO_API_KEY=… node bench/overhead.mjs   # against a running Aforo
//
// Latency: the same Express app with and without aforoExpress, each request timed in-process
// from the start of the handling to the response's 'finish' (the middleware's work, building
// and buffering the event, happens in 'finish' listeners, so it is inside the window), and the
// added latency is the difference of the distributions' percentiles. Throughput: record() alone
// (the caller's cost), then record + delivery to Aforo until every event is acknowledged.
import os from 'node:os';
import http from 'node:http';
import { performance } from 'node:perf_hooks';
import express from 'express';
import { AforoClient, aforoExpress } from '../src/index.js';
import { fork } from 'node:child_process';
import { Platform } from '../test/platform.mjs';

const REQUESTS = Number(process.env.REQUESTS ?? 20_000);
const EVENTS = Number(process.env.EVENTS ?? 50_000);

function percentile(sorted, q) {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

/** Time REQUESTS requests through `app` (keep-alive, one at a time), server-side, in ms. */
async function timeRequests(app, apiKey) {
  const samples = [];
  const timed = (req, res) => {
    const started = performance.now();
    res.once('finish', () => samples.push(performance.now() - started));
    app(req, res);
  };
  const server = http.createServer(timed);
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const get = () => new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port: server.address().port, path: '/v1/search', agent, headers: { 'x-api-key': apiKey } }, (res) => {
      res.resume();
      res.on('end', resolve);
    }).on('error', reject);
  });
  for (let i = 0; i < REQUESTS; i += 1) await get();
  agent.destroy();
  await new Promise((resolve) => server.close(resolve));
  const warm = samples.slice(Math.floor(samples.length / 10)).sort((a, b) => a - b); // drop the JIT warm-up
  return { p50: percentile(warm, 0.5), p99: percentile(warm, 0.99), mean: warm.reduce((a, b) => a + b, 0) / warm.length };
}

/** A local sink in a child process answering 202 at once (no per-event results: the batch was
 * taken whole), so the A/B measures the SDK and not a busy Aforo sharing the machine's CPUs. */
async function startSink() {
  const child = fork(new URL(import.meta.url), ['--sink'], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const port = await new Promise((resolve, reject) => { child.once('message', resolve); child.once('error', reject); });
  return { url: `http://127.0.0.1:${port}`, stop: () => child.kill() };
}

function serveSink() {
  const server = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => res.writeHead(202, { 'content-type': 'application/json', 'content-length': 2 }).end('{}'));
  });
  server.listen(0, '127.0.0.1', () => process.send(server.address().port));
}

/** Interleaved rounds of the plain and the metered app (so drift in the machine's load hits
 * both), the best round of each kept. */
async function abLatency(client, apiKey) {
  const rounds = [];
  for (let round = 0; round < 3; round += 1) {
    rounds.push({ plain: await timeRequests(buildApp(null), apiKey), metered: await timeRequests(buildApp(client), apiKey) });
  }
  const best = (kind, key) => Math.min(...rounds.map((r) => r[kind][key]));
  return { plain: { p50: best('plain', 'p50'), p99: best('plain', 'p99') }, metered: { p50: best('metered', 'p50'), p99: best('metered', 'p99') } };
}

/** The metering middleware wrapped so that its own work per request is timed: the synchronous
 * call (up to its next()) plus its 'finish' listener (between a listener registered just before
 * it and one just after: listeners run in registration order). */
function timedMetering(client, costs, cpuCosts) {
  const metering = aforoExpress(client, { metric: 'api_calls' });
  const cpuMs = (since) => { const used = process.cpuUsage(since); return (used.user + used.system) / 1000; };
  return (req, res, next) => {
    let spent = 0;
    let cpuSpent = 0;
    let finishStarted = 0;
    let finishCpu = null;
    res.once('finish', () => { finishCpu = process.cpuUsage(); finishStarted = performance.now(); });
    const cpu = process.cpuUsage();
    const called = performance.now();
    metering(req, res, () => {
      spent += performance.now() - called;
      cpuSpent += cpuMs(cpu);
      res.once('finish', () => {
        costs.push(spent + performance.now() - finishStarted);
        cpuCosts.push(cpuSpent + cpuMs(finishCpu));
      });
      next();
    });
  };
}

function buildApp(client, costs, cpuCosts) {
  const app = express();
  if (client) app.use(costs ? timedMetering(client, costs, cpuCosts) : aforoExpress(client, { metric: 'api_calls' }));
  app.get('/v1/search', (req, res) => res.json({ results: [] }));
  return app;
}

async function main() {
  let platform = null;
  let url = process.env.AFORO_URL;
  let token = process.env.AFORO_TOKEN;
  let apiKey = process.env.AFORO_API_KEY;
  if (!url) {
    platform = await Platform.start({ name: 'sdknode_bench', redisDb: 4 });
    ({ url } = platform);
    token = platform.ingestToken;
    apiKey = platform.customer('Acme Corp').api_key;
  }
  try {
    // 1. Added latency per request. The metered app's client flushes in the background to the
    // real Aforo while the requests run, as in production.
    const client = new AforoClient({ url, token, logger: null });
    const costs = [];
    const cpuCosts = [];
    await timeRequests(buildApp(client, costs, cpuCosts), apiKey);
    const cost = costs.slice(Math.floor(costs.length / 10)).sort((a, b) => a - b);
    const cpuCost = cpuCosts.slice(Math.floor(cpuCosts.length / 10)).sort((a, b) => a - b);
    const real = await abLatency(client, apiKey);
    await client.flush({ timeoutMs: 60_000 });
    const latency = client.metrics();
    await client.close();
    const sink = await startSink();
    const sinkClient = new AforoClient({ url: sink.url, token, logger: null });
    const local = await abLatency(sinkClient, apiKey);
    await sinkClient.close();
    sink.stop();

    // 2. record() alone: the caller's cost (the sender is held back by a long interval and a
    // buffer big enough for everything).
    const idle = new AforoClient({ url, token, logger: null, flushIntervalMs: 3_600_000, batchSize: 1000, maxBufferEvents: EVENTS + 1 });
    let started = performance.now();
    for (let i = 0; i < EVENTS; i += 1) idle.record({ apiKey, metric: 'api_calls', metadata: { route: '/v1/search' } });
    const recordPerSecond = EVENTS / ((performance.now() - started) / 1000);
    await idle.close({ timeoutMs: 60_000 });

    // 3. End to end: record EVENTS and wait until Aforo acknowledged every one.
    const sender = new AforoClient({ url, token, logger: null, batchSize: 1000, maxInFlight: 2, maxBufferEvents: EVENTS + 1 });
    started = performance.now();
    for (let i = 0; i < EVENTS; i += 1) sender.record({ apiKey, metric: 'api_calls', metadata: { route: '/v1/search' } });
    const delivered = await sender.flush({ timeoutMs: 120_000 });
    const deliveredPerSecond = EVENTS / ((performance.now() - started) / 1000);
    const sent = sender.metrics();
    await sender.close();

    const f = (ms) => `${(ms * 1000).toFixed(1)} µs`;
    console.log('Aforo Node SDK overhead');
    console.log(`setup: node ${process.version}, ${os.cpus().length} × ${os.cpus()[0]?.model ?? 'cpu'}, load average ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`);
    console.log(`       Express ${(await import('express/package.json', { with: { type: 'json' } })).default.version}, ${REQUESTS} sequential keep-alive requests × 3 rounds per variant (best round, first 10% dropped), Aforo at ${url}`);
    console.log(`the middleware's own work per request (its call + its 'finish' listener: build and buffer the event), ${cost.length} requests:`);
    console.log(`  wall clock  p50 ${f(percentile(cost, 0.5))}  p99 ${f(percentile(cost, 0.99))}  p99.9 ${f(percentile(cost, 0.999))}  (target p99 < 200 µs; includes being descheduled)`);
    console.log(`  CPU time    p50 ${f(percentile(cpuCost, 0.5))}  p99 ${f(percentile(cpuCost, 0.99))}  p99.9 ${f(percentile(cpuCost, 0.999))}  (process CPU, all threads; getrusage µs resolution)`);
    const ab = (title, { plain, metered }) => {
      console.log(`latency per request, ${title} (server-side, handler start → response finish; A/B):`);
      console.log(`  without middleware  p50 ${f(plain.p50)}  p99 ${f(plain.p99)}`);
      console.log(`  with aforoExpress   p50 ${f(metered.p50)}  p99 ${f(metered.p99)}`);
      console.log(`  difference          p50 ${f(metered.p50 - plain.p50)}  p99 ${f(metered.p99 - plain.p99)}`);
    };
    ab('events to a local sink (child process, 202 at once)', local);
    ab('events to the running Aforo (its web server, consumer and PostgreSQL share the CPUs)', real);
    console.log(`  events delivered by the metered runs: ${latency.accepted}, rejected ${latency.rejected}, dropped ${latency.dropped}`);
    console.log(`record() alone: ${Math.round(recordPerSecond).toLocaleString('en')} events/s (${EVENTS} events)`);
    console.log(`record + delivered to Aforo (acknowledged): ${Math.round(deliveredPerSecond).toLocaleString('en')} events/s (${EVENTS} events, batches of 1000, 2 in flight; all delivered: ${delivered}, accepted ${sent.accepted}, retried ${sent.retried})`);
  } finally {
    await platform?.stop();
  }
}

if (process.argv.includes('--sink')) serveSink(); else await main();
