// The Aforo client: record() puts an event (its id made now, a UUIDv7) in a bounded in-memory
// buffer and returns at once; a background sender posts batches by size and by time, retries
// what may succeed later, and reports every event's outcome. See README.md for the policies.
import { uuidv7 } from './ids.js';
import { toDecimalString } from './decimal.js';
import { AforoHttpError, backoffMs, isRetryable, requestJson } from './http.js';
import { Spool } from './spool.js';
import { EntitlementChecker } from './entitlements.js';
import { MeteredSession, holdPlace } from './session.js';

export const VERSION = '0.1.0';
const MAX_BATCH_EVENTS = 1000; // the API's limit per request
const DEFAULTS = {
  batchSize: 500,
  maxBatchBytes: 1024 * 1024, // the API takes 2 MiB; half leaves room for any event's growth
  flushIntervalMs: 1000,
  maxBufferEvents: 100_000,
  maxInFlight: 1,
  requestTimeoutMs: 10_000,
  retry: { baseMs: 200, maxMs: 30_000 },
  shutdownTimeoutMs: 5000,
  flushOnExit: true,
  spoolPath: null,
  entitlementCacheMs: 1000,
  entitlementTimeoutMs: 2000,
  entitlementFailOpen: true,
};

export class AforoClient {
  #queue = []; // entries { event, json, bytes, attempts }, oldest first from #head
  #head = 0;
  #inFlight = new Map(); // batch being sent → its promise
  #shutdown = new AbortController(); // aborts requests still in flight when close() gives up
  #retryAt = 0;
  #failures = 0; // consecutive retryable failures: the backoff exponent
  #batchCap = MAX_BATCH_EVENTS;
  #timer = null;
  #retryTimer = null;
  #pumpScheduled = false;
  #idleWaiters = [];
  #closing = null;
  #stopped = false;
  #spool = null;
  #entitlements;
  #metrics = {
    recorded: 0, sent: 0, accepted: 0, duplicates: 0, rejected: 0, dropped: 0, retried: 0,
    requests: 0, failedRequests: 0, replayed: 0, entitlementChecks: 0, entitlementCacheHits: 0,
  };
  #onBeforeExit = () => {
    if (!this.#closing && this.pending > 0) this.close().catch((error) => this.#report('onError', error));
  };

  /**
   * @param {import('../index').AforoClientOptions} options
   */
  constructor(options = {}) {
    const merged = { ...DEFAULTS, ...options, retry: { ...DEFAULTS.retry, ...options.retry } };
    if (!merged.url) throw new TypeError('AforoClient needs `url` (the Aforo base URL)');
    if (!merged.token) throw new TypeError('AforoClient needs `token` (a tenant ingest token)');
    this.options = merged;
    this.baseUrl = merged.url.replace(/\/+$/, '');
    this.userAgent = `aforo-node/${VERSION} node/${process.versions.node}`;
    merged.batchSize = Math.max(1, Math.min(MAX_BATCH_EVENTS, merged.batchSize));
    if (merged.spoolPath) {
      this.#spool = new Spool(merged.spoolPath, { compactBytes: merged.spoolCompactBytes });
      const replayed = this.#spool.replay();
      for (const event of replayed) {
        const json = JSON.stringify(event);
        this.#queue.push({ event, json, bytes: Buffer.byteLength(json), attempts: 0 });
      }
      this.#metrics.replayed = replayed.length;
      this.#spool.compact(replayed);
    }
    this.#entitlements = new EntitlementChecker(this, merged);
    this.#timer = setInterval(() => this.#pump(), merged.flushIntervalMs);
    this.#timer.unref();
    if (merged.flushOnExit) process.on('beforeExit', this.#onBeforeExit);
    if (this.#queue.length) this.#schedulePump();
  }

  /** Events recorded and not yet settled (buffered or in flight). */
  get pending() {
    let inFlight = 0;
    for (const batch of this.#inFlight.keys()) inFlight += batch.length;
    return this.#queue.length - this.#head + inFlight;
  }

  /**
   * Buffer one usage event; returns its event_id, or null when the buffer is full (the event is
   * dropped, counted and passed to onDropped: the overflow policy is drop-newest).
   * @param {import('../index').UsageEventInput} input
   */
  record(input) {
    if (this.#closing) throw new Error('AforoClient is closed');
    if (!input || typeof input.metric !== 'string') throw new TypeError('record() needs an event with a `metric`');
    const event = {
      event_id: input.eventId ?? input.event_id ?? uuidv7(),
      ...(input.apiKey ?? input.api_key) != null ? { api_key: input.apiKey ?? input.api_key } : {},
      ...(input.customerId ?? input.customer_id) != null ? { customer_id: input.customerId ?? input.customer_id } : {},
      ...(input.subscriptionId ?? input.subscription_id) != null
        ? { subscription_id: input.subscriptionId ?? input.subscription_id } : {},
      metric: input.metric,
      quantity: toDecimalString(input.quantity ?? '1'),
      timestamp: toTimestamp(input.timestamp),
      dimensions: input.dimensions ?? {},
      metadata: input.metadata ?? {},
    };
    this.#metrics.recorded += 1;
    if (this.#queue.length - this.#head >= this.options.maxBufferEvents) {
      this.#metrics.dropped += 1;
      this.#report('onDropped', [event], 'buffer_full');
      return null;
    }
    const json = JSON.stringify(event);
    this.#spool?.append(json);
    this.#queue.push({ event, json, bytes: Buffer.byteLength(json), attempts: 0 });
    if (this.#queue.length - this.#head >= this.options.batchSize) this.#schedulePump();
    return event.event_id;
  }

  /** Send everything buffered now and resolve true once the buffer is empty and nothing is in
   * flight, or false when `timeoutMs` passes first (the events stay buffered and retried). */
  flush({ timeoutMs = Infinity } = {}) {
    if (this.pending === 0) return Promise.resolve(true);
    return new Promise((resolve) => {
      const waiter = { resolve, timer: null };
      if (Number.isFinite(timeoutMs)) {
        waiter.timer = setTimeout(() => {
          this.#idleWaiters = this.#idleWaiters.filter((other) => other !== waiter);
          resolve(false);
        }, timeoutMs);
      }
      this.#idleWaiters.push(waiter);
      this.#flushNow();
    });
  }

  /**
   * Stop the background sender after trying to deliver what is pending for up to `timeoutMs`.
   * With a spool, undelivered events stay in it for the next client; without one they are
   * reported to onDropped ('shutdown') and counted as dropped. Idempotent.
   * @returns {Promise<{delivered: boolean, pending: number}>}
   */
  close({ timeoutMs = this.options.shutdownTimeoutMs } = {}) {
    if (this.#closing) return this.#closing;
    this.#closing = (async () => {
      process.off('beforeExit', this.#onBeforeExit);
      const keepAlive = setInterval(() => {}, 1000); // shutdown work must finish even when nothing else is left
      try {
        const delivered = await this.flush({ timeoutMs });
        clearInterval(this.#timer);
        clearTimeout(this.#retryTimer);
        this.#stopped = true;
        this.#shutdown.abort(); // an abandoned request must not hold the process open for its timeout
        await Promise.allSettled(this.#inFlight.values()); // each puts its batch back in the queue
        const left = this.#pendingEntries();
        this.#queue = [];
        this.#head = 0;
        if (this.#spool) this.#spool.close(left.map((entry) => entry.event));
        else if (left.length) {
          this.#metrics.dropped += left.length;
          this.#report('onDropped', left.map((entry) => entry.event), 'shutdown');
        }
        return { delivered, pending: left.length };
      } finally {
        clearInterval(keepAlive);
      }
    })();
    return this.#closing;
  }

  /** Counters since the client was created, plus what is buffered now. */
  metrics() {
    return { ...this.#metrics, buffered: this.#queue.length - this.#head, inFlight: this.pending - (this.#queue.length - this.#head) };
  }

  /** May this subject use `units` more of `metric` now? Answers are cached for
   * `entitlementCacheMs` (concurrent identical checks share one request). */
  checkEntitlement(check) {
    return this.#entitlements.check(check);
  }

  /** Place an escrow hold on a wallet; returns a MeteredSession to commit or release. */
  async openSession(options) {
    const hold = await holdPlace(this, options);
    return new MeteredSession(this, hold, options);
  }

  /** Run `work(session)` inside a metered session: hold placed first, committed with
   * session.amount when `work` resolves, released when it throws (the error is rethrown). */
  async meteredSession(options, work) {
    const session = await this.openSession(options);
    let result;
    try {
      result = await work(session);
    } catch (error) {
      if (session.status === 'active') {
        await session.release().catch((releaseError) => this.#report('onError', releaseError));
      }
      throw error;
    }
    if (session.status === 'active') await session.commit();
    return result;
  }

  // --- internals ---------------------------------------------------------------------------

  /** @internal one API call with the client's credentials and timeouts */
  _request(pathname, { method = 'POST', body, timeoutMs = this.options.requestTimeoutMs, signal } = {}) {
    return requestJson({ url: this.baseUrl + pathname, token: this.options.token, method, body, timeoutMs, signal, userAgent: this.userAgent });
  }

  /** @internal */
  _count(name, by = 1) {
    this.#metrics[name] += by;
  }

  #report(hook, ...args) {
    const callback = this.options[hook];
    if (callback) {
      try {
        callback(...args);
      } catch (error) {
        if (hook !== 'onError') this.#report('onError', error);
      }
      return;
    }
    const logger = this.options.logger === undefined ? console : this.options.logger;
    if (!logger) return;
    if (hook === 'onRejected') logger.warn(`aforo: event ${args[0].event_id} rejected: ${args[1].code} ${args[1].message ?? ''}`);
    if (hook === 'onDropped') logger.warn(`aforo: ${args[0].length} event(s) dropped (${args[1]})`);
    if (hook === 'onError') logger.warn(`aforo: ${args[0]?.message ?? args[0]}`);
  }

  #pendingEntries() {
    const entries = [];
    for (const batch of this.#inFlight.keys()) entries.push(...batch);
    entries.push(...this.#queue.slice(this.#head));
    return entries;
  }

  #schedulePump() {
    if (this.#pumpScheduled) return;
    this.#pumpScheduled = true;
    setImmediate(() => {
      this.#pumpScheduled = false;
      this.#pump();
    });
  }

  #flushNow() {
    this.#pump();
    this.#armRetryTimer();
  }

  #pump() {
    while (!this.#stopped && this.#inFlight.size < this.options.maxInFlight && this.#queue.length > this.#head) {
      if (Date.now() < this.#retryAt) {
        this.#armRetryTimer();
        return;
      }
      const batch = this.#takeBatch();
      const sending = this.#send(batch).finally(() => {
        this.#inFlight.delete(batch);
        this.#afterSend();
      });
      this.#inFlight.set(batch, sending);
    }
  }

  #armRetryTimer() {
    clearTimeout(this.#retryTimer);
    const wait = this.#retryAt - Date.now();
    if (wait <= 0 || this.#queue.length === this.#head) return;
    this.#retryTimer = setTimeout(() => this.#pump(), wait);
    // In the background a retry never holds the process open; a flush() or close() someone
    // awaits does.
    if (!this.#idleWaiters.length && !this.#closing) this.#retryTimer.unref();
  }

  #takeBatch() {
    const limit = Math.min(this.options.batchSize, this.#batchCap);
    const batch = [];
    let bytes = 0;
    while (this.#queue.length > this.#head && batch.length < limit) {
      const entry = this.#queue[this.#head];
      if (batch.length && bytes + entry.bytes + 1 > this.options.maxBatchBytes) break;
      batch.push(entry);
      bytes += entry.bytes + 1;
      this.#head += 1;
    }
    if (this.#head > 1024 && this.#head * 2 > this.#queue.length) {
      this.#queue = this.#queue.slice(this.#head);
      this.#head = 0;
    }
    return batch;
  }

  #requeue(batch) {
    this.#queue = [...batch, ...this.#queue.slice(this.#head)];
    this.#head = 0;
  }

  async #send(batch) {
    const retried = batch.filter((entry) => entry.attempts > 0).length;
    this.#metrics.retried += retried;
    this.#metrics.requests += 1;
    for (const entry of batch) entry.attempts += 1;
    const body = `{"events":[${batch.map((entry) => entry.json).join(',')}]}`;
    try {
      const answer = await this._request('/api/v1/events', { body, signal: this.#shutdown.signal });
      this.#failures = 0;
      this.#settle(batch, answer.body?.results);
    } catch (error) {
      this.#metrics.failedRequests += 1;
      if (isRetryable(error)) {
        this.#failures += 1;
        this.#retryAt = Date.now() + backoffMs(this.#failures, this.options.retry, error.retryAfterMs ?? 0);
        this.#requeue(batch);
        this.#report('onError', error);
      } else if (error.status === 413 && batch.length > 1) {
        this.#batchCap = Math.max(1, Math.floor(batch.length / 2));
        this.#requeue(batch);
      } else if (Array.isArray(error.body?.results)) {
        this.#settle(batch, error.body.results); // 400 invalid_events: every event rejected, each with its code
      } else {
        const code = error instanceof AforoHttpError ? error.code : 'client_error';
        const message = error.body?.error?.message ?? error.message;
        this.#settle(batch, batch.map((entry, index) => ({ index, event_id: entry.event.event_id, status: 'rejected', code, message, http_status: error.status })));
      }
    }
  }

  #settle(batch, results) {
    const byIndex = new Map((results ?? []).map((result) => [result.index, result]));
    const settled = [];
    const rejected = [];
    for (const [index, entry] of batch.entries()) {
      const result = byIndex.get(index) ?? { index, event_id: entry.event.event_id, status: 'accepted' };
      settled.push(entry.event.event_id);
      if (result.status === 'rejected') {
        this.#metrics.rejected += 1;
        rejected.push([entry.event, result]);
      } else {
        this.#metrics.sent += 1;
        this.#metrics[result.status === 'duplicate' ? 'duplicates' : 'accepted'] += 1;
      }
      if (this.options.onResult) this.#report('onResult', entry.event, result);
    }
    this.#spool?.ack(settled);
    for (const [event, result] of rejected) this.#report('onRejected', event, result);
  }

  #afterSend() {
    if (this.#stopped) return;
    if (this.#spool?.wantsCompaction) this.#spool.compact(this.#pendingEntries().map((entry) => entry.event));
    if (this.pending === 0) {
      const waiters = this.#idleWaiters;
      this.#idleWaiters = [];
      for (const waiter of waiters) {
        clearTimeout(waiter.timer);
        waiter.resolve(true);
      }
      return;
    }
    if (this.#queue.length - this.#head >= this.options.batchSize || this.#idleWaiters.length || this.#retryAt > Date.now()) {
      this.#pump();
    }
  }
}

function toTimestamp(value) {
  if (value == null) return new Date().toISOString();
  if (value instanceof Date) return value.toISOString();
  if (typeof value === 'string') return value;
  throw new TypeError('timestamp must be a Date or an RFC 3339 string with an offset');
}
