// Metered sessions over escrow holds: a hold reserves money on the customer's wallet when the
// session starts (POST /api/v1/wallets/{id}/holds); the session commits the actual amount at the
// end (POST /api/v1/holds/{id}/commit, the rest is released) or releases it all on error
// (POST /api/v1/holds/{id}/release). Placing is retried safely under its idempotency key; a
// commit or release whose answer was lost is recognised on retry (409 hold_committed /
// hold_released) and answered with the hold as it is.
import { uuidv7 } from './ids.js';
import { decimalAdd, toDecimalString } from './decimal.js';
import { AforoHttpError, requestJsonWithRetry } from './http.js';

const CALL_BUDGET_MS = 15_000;

function call(client, pathname, body) {
  return requestJsonWithRetry(
    { url: client.baseUrl + pathname, token: client.options.token, body, timeoutMs: client.options.requestTimeoutMs, userAgent: client.userAgent },
    { retry: client.options.retry, deadlineMs: Date.now() + CALL_BUDGET_MS },
  );
}

export async function holdPlace(client, { walletId, amount, ttlSeconds = 900, reference, idempotencyKey, currency }) {
  if (walletId == null) throw new TypeError('a metered session needs `walletId`');
  const ref = reference ?? `session-${uuidv7()}`;
  const body = {
    amount: toDecimalString(amount, 'amount'),
    ttl_seconds: ttlSeconds,
    reference: ref,
    idempotency_key: idempotencyKey ?? `${ref}:open`,
    ...(currency ? { currency } : {}),
  };
  const answer = await call(client, `/api/v1/wallets/${encodeURIComponent(walletId)}/holds`, body);
  return answer.body;
}

export class MeteredSession {
  constructor(client, hold, options) {
    this.client = client;
    this.hold = hold;
    this.holdId = hold.id;
    this.reference = hold.reference;
    this.status = 'active';
    this.amount = '0';
    this.options = options;
  }

  /** Add to the amount the session will commit. */
  add(amount) {
    this.amount = decimalAdd(this.amount, amount);
    return this.amount;
  }

  /** Set the amount the session will commit. */
  set(amount) {
    this.amount = decimalAdd(amount);
    return this.amount;
  }

  /** Record a usage event tagged with this session (dimensions.session_id = the hold's
   * reference), so that rating draws it from the hold first. */
  record(event) {
    return this.client.record({ ...event, dimensions: { ...event.dimensions, session_id: this.reference } });
  }

  /** Charge `amount` (default: what add()/set() gathered) and release the rest of the hold. */
  async commit(amount = this.amount) {
    this.hold = await this.#finish('commit', { amount: toDecimalString(amount, 'amount') }, 'hold_committed');
    this.status = 'committed';
    return this.hold;
  }

  /** Release the whole hold: nothing is charged by the session itself. */
  async release() {
    this.hold = await this.#finish('release', {}, 'hold_released');
    this.status = 'released';
    return this.hold;
  }

  async #finish(action, body, doneCode) {
    try {
      return (await call(this.client, `/api/v1/holds/${this.holdId}/${action}`, body)).body;
    } catch (error) {
      if (error instanceof AforoHttpError && error.status === 409 && error.code === doneCode) {
        return (await this.client._request(`/api/v1/holds/${this.holdId}`, { method: 'GET' })).body;
      }
      throw error;
    }
  }
}
