// Entitlement checks (POST /api/v1/entitlements/check) with a short local cache: a gateway or
// middleware may ask on every request, and Aforo's answer only moves as fast as its rating
// (~100 ms), so answers are reused for `entitlementCacheMs` (default 1 s) and concurrent
// identical checks share one request. One attempt, no retries: the caller is waiting.
import { toDecimalString } from './decimal.js';
import { AforoHttpError } from './http.js';

const MAX_ENTRIES = 10_000;

export class EntitlementChecker {
  #cache = new Map(); // key → { expiresAt, answer: Promise }

  constructor(client, { entitlementCacheMs, entitlementTimeoutMs, entitlementFailOpen, now = Date.now }) {
    this.client = client;
    this.ttlMs = entitlementCacheMs;
    this.timeoutMs = entitlementTimeoutMs;
    this.failOpen = entitlementFailOpen;
    this.now = now;
  }

  /** @param {import('../index').EntitlementCheckInput} check */
  async check({ apiKey, customerId, metric, units = '1', dimensions = {} }) {
    const body = {
      ...(apiKey != null ? { api_key: apiKey } : { customer_id: customerId }),
      metric,
      units: toDecimalString(units, 'units'),
      dimensions,
    };
    const key = JSON.stringify(body);
    const now = this.now();
    this.client._count('entitlementChecks');
    const cached = this.#cache.get(key);
    if (cached && cached.expiresAt > now) {
      this.client._count('entitlementCacheHits');
      return { ...(await cached.answer), cached: true };
    }
    if (this.#cache.size >= MAX_ENTRIES) this.#prune(now);
    const answer = this.client._request('/api/v1/entitlements/check', { body, timeoutMs: this.timeoutMs }).then((response) => response.body);
    const entry = { expiresAt: now + this.ttlMs, answer };
    this.#cache.set(key, entry);
    try {
      return { ...(await answer), cached: false };
    } catch (error) {
      if (this.#cache.get(key) === entry) this.#cache.delete(key);
      const unreachable = !(error instanceof AforoHttpError) || error.status === 429 || error.status >= 500;
      if (!unreachable) throw error;
      // Aforo unreachable: the documented fail mode answers, marked degraded, and is not cached.
      return { allow: this.failOpen, reason: 'aforo_unreachable', degraded: true, cached: false, error: error.message };
    }
  }

  #prune(now) {
    for (const [key, entry] of this.#cache) if (entry.expiresAt <= now) this.#cache.delete(key);
    if (this.#cache.size >= MAX_ENTRIES) this.#cache.clear();
  }
}
