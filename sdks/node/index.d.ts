// Types of @aforo/sdk (hand-written; the package is plain ESM JavaScript).

/** A decimal quantity or amount: a string such as "1.5", a bigint, or a safe integer. Never a
 * fractional number (floats are inexact; the API refuses them). */
export type Decimal = string | bigint | number;

export interface UsageEventInput {
  /** Defaults to a new UUIDv7, made when record() is called (retries reuse it). */
  eventId?: string;
  /** Exactly one subject: the caller's API key, Aforo's customer id or subscription id. */
  apiKey?: string;
  customerId?: number;
  subscriptionId?: number;
  metric: string;
  /** Default "1". */
  quantity?: Decimal;
  /** Default now. A Date, or an RFC 3339 string with an offset. */
  timestamp?: Date | string;
  dimensions?: Record<string, string | number | boolean>;
  metadata?: Record<string, unknown>;
}

/** An event as sent to Aforo (snake_case, quantity a string). */
export interface UsageEvent {
  event_id: string;
  api_key?: string;
  customer_id?: number;
  subscription_id?: number;
  metric: string;
  quantity: string;
  timestamp: string;
  dimensions: Record<string, unknown>;
  metadata: Record<string, unknown>;
}

/** One event's outcome, as the API reports it (plus `http_status` when a whole batch was refused). */
export interface EventResult {
  index: number;
  event_id: string;
  status: 'accepted' | 'duplicate' | 'rejected';
  late?: boolean;
  reason?: string;
  code?: string;
  field?: string | null;
  message?: string;
  http_status?: number;
}

export interface RetryPolicy {
  /** First backoff ceiling (ms); doubles per consecutive failure. Default 200. */
  baseMs?: number;
  /** Backoff ceiling cap (ms). Default 30000. A Retry-After longer than this is still honoured. */
  maxMs?: number;
}

export interface AforoClientOptions {
  /** Aforo's base URL, e.g. https://aforo.example.com */
  url: string;
  /** A tenant ingest token. */
  token: string;
  /** Events per request, at most 1000. Default 500. */
  batchSize?: number;
  /** Bytes per request body, below the API's 2 MiB. Default 1 MiB. */
  maxBatchBytes?: number;
  /** Background flush period (ms). Default 1000. */
  flushIntervalMs?: number;
  /** Events held in memory; past it record() drops the newest (returns null). Default 100000. */
  maxBufferEvents?: number;
  /** Concurrent ingest requests. Default 1. */
  maxInFlight?: number;
  /** Per-request timeout (ms). Default 10000. */
  requestTimeoutMs?: number;
  retry?: RetryPolicy;
  /** How long close() (and the beforeExit flush) keeps trying (ms). Default 5000. */
  shutdownTimeoutMs?: number;
  /** Flush (close) on the process's beforeExit. Default true. */
  flushOnExit?: boolean;
  /** Path of the on-disk spool (JSON lines); off when not given. */
  spoolPath?: string | null;
  /** Compact the spool past this many bytes. Default 16 MiB. */
  spoolCompactBytes?: number;
  /** Every event's outcome (accepted, duplicate, rejected). */
  onResult?: (event: UsageEvent, result: EventResult) => void;
  /** Events Aforo refused for good (never retried). Default: logger.warn. */
  onRejected?: (event: UsageEvent, result: EventResult) => void;
  /** Events dropped: 'buffer_full' (overflow) or 'shutdown' (undelivered at close, no spool). */
  onDropped?: (events: UsageEvent[], reason: 'buffer_full' | 'shutdown') => void;
  /** Transport errors that will be retried, callback failures. Default: logger.warn. */
  onError?: (error: Error) => void;
  /** Where the default callbacks write; null for silence. Default console. */
  logger?: { warn(message: string): void } | null;
  /** Entitlement answers are reused this long (ms). Default 1000. */
  entitlementCacheMs?: number;
  /** Entitlement request timeout (ms). Default 2000. */
  entitlementTimeoutMs?: number;
  /** The answer when Aforo cannot be reached (degraded: true). Default true (allow). */
  entitlementFailOpen?: boolean;
  /** The clock of the entitlement cache (tests). Default Date.now. */
  now?: () => number;
}

export interface ClientMetrics {
  recorded: number;
  /** Acknowledged by Aforo: accepted + duplicates. */
  sent: number;
  accepted: number;
  duplicates: number;
  rejected: number;
  dropped: number;
  /** Event sends that were retries. */
  retried: number;
  requests: number;
  failedRequests: number;
  /** Events read back from the spool at start. */
  replayed: number;
  entitlementChecks: number;
  entitlementCacheHits: number;
  buffered: number;
  inFlight: number;
}

export interface EntitlementCheckInput {
  apiKey?: string;
  customerId?: number;
  metric: string;
  /** Default "1". */
  units?: Decimal;
  dimensions?: Record<string, string>;
}

export interface EntitlementAnswer {
  allow: boolean;
  reason: string;
  limit?: string | null;
  used?: string;
  reserved?: string | null;
  remaining?: string | null;
  resets_at?: string;
  overage?: 'block' | 'bill' | null;
  subscription_id?: number;
  dimension_key?: string;
  degraded: boolean;
  /** Served from the local cache. */
  cached: boolean;
  [field: string]: unknown;
}

export interface SessionOptions {
  walletId: number;
  /** The amount to reserve. */
  amount: Decimal;
  /** Default 900. */
  ttlSeconds?: number;
  /** The hold's reference (events with dimensions.session_id = it draw from the hold). Default a new id. */
  reference?: string;
  /** Default `${reference}:open`. */
  idempotencyKey?: string;
  currency?: string;
}

export interface Hold {
  id: number;
  status: 'active' | 'committed' | 'released' | 'expired';
  amount: string;
  drawn: string;
  remaining: string;
  committed_amount: string | null;
  reference: string;
  [field: string]: unknown;
}

export class MeteredSession {
  readonly holdId: number;
  readonly reference: string;
  hold: Hold;
  status: 'active' | 'committed' | 'released';
  /** What commit() charges by default. */
  amount: string;
  add(amount: Decimal): string;
  set(amount: Decimal): string;
  /** record() with dimensions.session_id set to the hold's reference. */
  record(event: UsageEventInput): string | null;
  commit(amount?: Decimal): Promise<Hold>;
  release(): Promise<Hold>;
}

export class AforoClient {
  constructor(options: AforoClientOptions);
  readonly options: Required<AforoClientOptions>;
  /** Buffered + in flight. */
  readonly pending: number;
  /** Buffer one event; its event_id, or null when the buffer is full (dropped, counted, reported). */
  record(event: UsageEventInput): string | null;
  /** Resolves true once nothing is pending, false when timeoutMs passes first. */
  flush(options?: { timeoutMs?: number }): Promise<boolean>;
  /** Deliver what it can within timeoutMs, then stop. Undelivered events stay in the spool, or are dropped and reported. */
  close(options?: { timeoutMs?: number }): Promise<{ delivered: boolean; pending: number }>;
  metrics(): ClientMetrics;
  checkEntitlement(check: EntitlementCheckInput): Promise<EntitlementAnswer>;
  openSession(options: SessionOptions): Promise<MeteredSession>;
  /** Hold placed, work run, session.amount committed; released (and rethrown) when work throws. */
  meteredSession<T>(options: SessionOptions, work: (session: MeteredSession) => Promise<T> | T): Promise<T>;
}

export interface MeteringOptions<Req = any, Res = any> {
  /** Who pays. Default: the x-api-key header; a request without one is not metered. */
  apiKey?: (req: Req, res: Res) => string | undefined;
  /** Bill an Aforo customer id instead of an API key. */
  customerId?: (req: Req, res: Res) => number | undefined;
  /** Default 'api_calls'. */
  metric?: string | ((req: Req, res: Res) => string);
  /** Default "1". */
  quantity?: Decimal | ((req: Req, res: Res) => Decimal);
  dimensions?: (req: Req, res: Res) => Record<string, string>;
  /** Default { method, route, status, duration_ms }. */
  metadata?: (req: Req, res: Res) => Record<string, unknown>;
  /** True: do not meter this request (e.g. health checks, 5xx). */
  skip?: (req: Req, res: Res) => boolean;
  /** A metering callback threw. Default: the client's onError, else console.warn. */
  onError?: (error: Error) => void;
}

export function aforoExpress(client: AforoClient, options?: MeteringOptions): (req: any, res: any, next: (error?: unknown) => void) => void;
export function aforoFastify(fastify: any, options: MeteringOptions & { client: AforoClient }, done: (error?: Error) => void): void;

export class AforoHttpError extends Error {
  readonly status: number;
  readonly body: any;
  readonly code: string;
  retryAfterMs?: number;
}
export function isRetryable(error: unknown): boolean;
export function retryAfterMs(headerValue: string | null | undefined, now?: number): number;
export function backoffMs(attempt: number, policy: Required<RetryPolicy>, serverAskedMs?: number, random?: () => number): number;
export function uuidv7(now?: number): string;
export function decimalAdd(...values: Decimal[]): string;
export function toDecimalString(value: Decimal, name?: string): string;
export const VERSION: string;
