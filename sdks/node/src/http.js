// One HTTP exchange with Aforo and the retry policy every call shares: network errors, 429 and
// 5xx are retried with exponential backoff and full jitter (at least Retry-After when the answer
// carries one); any other 4xx is final and never retried.

export class AforoHttpError extends Error {
  /** @param {number} status @param {any} body */
  constructor(status, body, message) {
    super(message ?? `Aforo answered ${status}${body?.error?.code ? ` ${body.error.code}` : ''}`);
    this.name = 'AforoHttpError';
    this.status = status;
    this.body = body;
    this.code = body?.error?.code ?? `http_${status}`;
  }
}

/** True for what may succeed when sent again unchanged. */
export function isRetryable(error) {
  return !(error instanceof AforoHttpError) || error.status === 429 || error.status >= 500;
}

/** Milliseconds the server asked to wait (`Retry-After`: seconds or an HTTP date), or 0. */
export function retryAfterMs(headerValue, now = Date.now()) {
  if (!headerValue) return 0;
  const seconds = Number(headerValue);
  if (Number.isFinite(seconds)) return Math.max(0, seconds * 1000);
  const moment = Date.parse(headerValue);
  return Number.isNaN(moment) ? 0 : Math.max(0, moment - now);
}

/** The wait before retry number `attempt` (1-based): full jitter over an exponential ceiling,
 * never below what the server asked for. */
export function backoffMs(attempt, { baseMs, maxMs }, serverAskedMs = 0, random = Math.random) {
  const ceiling = Math.min(maxMs, baseMs * 2 ** Math.min(attempt - 1, 30));
  return Math.max(serverAskedMs, Math.round(ceiling / 2 + (random() * ceiling) / 2));
}

/**
 * POST (or GET) JSON; resolves to { status, body, headers } for a 2xx, throws AforoHttpError
 * for any other status (with `retryAfterMs`) and the fetch error for a network failure.
 */
export async function requestJson({ url, token, method = 'POST', body, timeoutMs, signal, userAgent }) {
  const headers = { authorization: `Bearer ${token}`, accept: 'application/json', 'user-agent': userAgent };
  if (body !== undefined) headers['content-type'] = 'application/json';
  const response = await fetch(url, {
    method,
    headers,
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
    signal: signal ? AbortSignal.any([signal, AbortSignal.timeout(timeoutMs)]) : AbortSignal.timeout(timeoutMs),
  });
  const text = await response.text();
  let parsed = null;
  try {
    parsed = text ? JSON.parse(text) : null;
  } catch {
    parsed = { error: { code: 'non_json_answer', message: text.slice(0, 200) } };
  }
  if (response.status >= 200 && response.status < 300) {
    return { status: response.status, body: parsed, headers: response.headers };
  }
  const error = new AforoHttpError(response.status, parsed);
  error.retryAfterMs = retryAfterMs(response.headers.get('retry-after'));
  throw error;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms).unref());

/** requestJson retried by the shared policy until it succeeds, fails for good, or `deadlineMs`
 * (absolute, Date.now() based) would be passed. For idempotent calls only. */
export async function requestJsonWithRetry(options, { retry, deadlineMs, onRetry }) {
  for (let attempt = 1; ; attempt += 1) {
    try {
      return await requestJson(options);
    } catch (error) {
      if (!isRetryable(error)) throw error;
      const wait = backoffMs(attempt, retry, error.retryAfterMs ?? 0);
      if (Date.now() + wait > deadlineMs) throw error;
      onRetry?.(error, attempt, wait);
      await sleep(wait);
    }
  }
}
