export { AforoClient, VERSION } from './client.js';
export { AforoHttpError, backoffMs, isRetryable, retryAfterMs } from './http.js';
export { MeteredSession } from './session.js';
export { aforoExpress, aforoFastify } from './middleware.js';
export { uuidv7 } from './ids.js';
export { decimalAdd, toDecimalString } from './decimal.js';
