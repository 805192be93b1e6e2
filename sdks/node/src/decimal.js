// Quantities and amounts travel as decimal strings: JSON floats are inexact and the API refuses
// them. These helpers never go through a JavaScript number for a fraction.

const DECIMAL_RE = /^-?(?:\d+(?:\.\d*)?|\.\d+)$/;

/** A quantity as the API takes it: a decimal string. Integers and bigints are converted; a
 * non-integer number is a TypeError (0.1 + 0.2 is not a billable quantity). */
export function toDecimalString(value, name = 'quantity') {
  if (typeof value === 'string') return value;
  if (typeof value === 'bigint') return value.toString();
  if (typeof value === 'number' && Number.isSafeInteger(value)) return String(value);
  throw new TypeError(`${name} must be a decimal string (e.g. "1.5"), a bigint or a safe integer, not ${typeof value === 'number' ? value : typeof value}`);
}

function split(value) {
  if (!DECIMAL_RE.test(value)) throw new TypeError(`not a decimal string: ${JSON.stringify(value)}`);
  const negative = value.startsWith('-');
  const [whole, fraction = ''] = (negative ? value.slice(1) : value).split('.');
  return { negative, digits: (whole || '0') + fraction, scale: fraction.length };
}

/** The exact sum of decimal strings, as a plain decimal string. */
export function decimalAdd(...values) {
  const parts = values.map((value) => split(toDecimalString(value, 'amount')));
  const scale = Math.max(0, ...parts.map((part) => part.scale));
  let total = 0n;
  for (const part of parts) {
    const units = BigInt(part.digits) * 10n ** BigInt(scale - part.scale);
    total += part.negative ? -units : units;
  }
  const negative = total < 0n;
  let text = (negative ? -total : total).toString().padStart(scale + 1, '0');
  if (scale > 0) {
    text = `${text.slice(0, -scale)}.${text.slice(-scale)}`.replace(/\.?0+$/, '');
  }
  return negative ? `-${text}` : text;
}
