// The shared test helper: starts ONE whole Aforo (python -m aforo.devserver.testplatform) for
// the run, drives its outage switch (web stop / web start) and reads results through the API.
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const PYTHON = process.env.AFORO_PYTHON ?? path.join(ROOT, '.venv/bin/python');
const START_TIMEOUT_MS = 120_000;

export class Platform {
  /** Spawn the platform and resolve once its JSON line is read. */
  static async start({ name = 'sdknode', redisDb = 4 } = {}) {
    const child = spawn(PYTHON, ['-m', 'aforo.devserver.testplatform', '--name', name, '--redis-db', String(redisDb)], {
      cwd: ROOT,
      stdio: ['pipe', 'pipe', 'inherit'],
    });
    const platform = new Platform(child);
    platform.info = await platform.#nextLine(START_TIMEOUT_MS).then(JSON.parse);
    return platform;
  }

  #lines = [];
  #waiting = [];

  constructor(child) {
    this.child = child;
    this.exited = new Promise((resolve) => child.once('exit', resolve));
    createInterface({ input: child.stdout }).on('line', (line) => {
      const waiter = this.#waiting.shift();
      if (waiter) waiter.resolve(line);
      else this.#lines.push(line);
    });
    child.once('exit', (code) => {
      for (const waiter of this.#waiting.splice(0)) waiter.reject(new Error(`testplatform exited (${code})`));
    });
  }

  #nextLine(timeoutMs) {
    if (this.#lines.length) return Promise.resolve(this.#lines.shift());
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('testplatform did not answer in time')), timeoutMs);
      this.#waiting.push({ resolve: (line) => { clearTimeout(timer); resolve(line); }, reject });
    });
  }

  async #command(command) {
    this.child.stdin.write(`${command}\n`);
    const answer = await this.#nextLine(90_000);
    if (answer !== 'ok') throw new Error(`testplatform answered ${answer} to ${command}`);
  }

  webStop() { return this.#command('web stop'); }
  webStart() { return this.#command('web start'); }

  async stop() {
    this.child.stdin.end();
    await this.exited;
  }

  get url() { return this.info.url; }
  get ingestToken() { return this.info.ingest_token; }
  customer(name) { return this.info.customers.find((customer) => customer.name === name); }

  async admin(pathname, { method = 'GET', body } = {}) {
    const response = await fetch(this.url + pathname, {
      method,
      headers: { authorization: `Bearer ${this.info.admin_token}`, 'content-type': 'application/json' },
      body: body && JSON.stringify(body),
    });
    if (!response.ok) throw new Error(`${method} ${pathname}: ${response.status} ${await response.text()}`);
    return response.json();
  }

  /** The running total of `metric` for the customer now, as a BigInt-comparable string. */
  async units(customerId, metric) {
    const usage = await this.admin(`/api/v1/customers/${customerId}/usage`);
    const rows = usage.subscriptions.flatMap((subscription) => subscription.metrics).filter((row) => row.metric === metric && row.dimension_key === '');
    return rows.length ? Number(rows[0].units) : 0;
  }

  /** Poll until the running total reaches `expected` (or the deadline passes); return the last
   * value seen, so the caller asserts exact equality (an overshoot fails too). */
  async unitsWhen(customerId, metric, expected, { timeoutMs = 20_000 } = {}) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const units = await this.units(customerId, metric);
      if (units >= expected || Date.now() > deadline) return units;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
}

let shared = null;
/** The one platform of this run (started by the first caller). */
export function platform() {
  shared ??= Platform.start();
  return shared;
}

/** A client option set with test-friendly retry timings. */
export function clientOptions(p, extra = {}) {
  return { url: p.url, token: p.ingestToken, flushIntervalMs: 50, retry: { baseMs: 50, maxMs: 400 }, logger: null, ...extra };
}
