// UUIDv7 (RFC 9562): 48-bit Unix milliseconds, version 7, 74 random bits. Generated when an
// event is recorded, so every retry of it carries the same id and the API counts it once.
import { randomFillSync } from 'node:crypto';

const POOL_SIZE = 16 * 512;
const pool = Buffer.allocUnsafe(POOL_SIZE);
let poolOffset = POOL_SIZE;
const HEX = Array.from({ length: 256 }, (_, byte) => byte.toString(16).padStart(2, '0'));

/** @returns {string} a new UUIDv7, lower-case hex with dashes */
export function uuidv7(now = Date.now()) {
  if (poolOffset + 10 > POOL_SIZE) {
    randomFillSync(pool);
    poolOffset = 0;
  }
  const r = poolOffset;
  poolOffset += 10;
  const high = Math.floor(now / 0x10000); // the upper 32 of the 48 timestamp bits
  const low = now % 0x10000;
  return (
    HEX[(high >>> 24) & 0xff] + HEX[(high >>> 16) & 0xff] + HEX[(high >>> 8) & 0xff] + HEX[high & 0xff] + '-' +
    HEX[(low >>> 8) & 0xff] + HEX[low & 0xff] + '-' +
    HEX[0x70 | (pool[r] & 0x0f)] + HEX[pool[r + 1]] + '-' +
    HEX[0x80 | (pool[r + 2] & 0x3f)] + HEX[pool[r + 3]] + '-' +
    HEX[pool[r + 4]] + HEX[pool[r + 5]] + HEX[pool[r + 6]] + HEX[pool[r + 7]] + HEX[pool[r + 8]] + HEX[pool[r + 9]]
  );
}
