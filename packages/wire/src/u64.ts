/** The largest u64: 2^64 - 1. */
export const MAX_U64 = 0xffff_ffff_ffff_ffffn;

const DECIMAL = /^[0-9]+$/;

/**
 * Parses a base-10 u64 the way the original's query parsing did (digits only,
 * leading zeros allowed, no sign, no prefix, at most 2^64 - 1). Returns
 * `undefined` for anything else, including `undefined` and the empty string.
 */
export function parseU64(text: string | null | undefined): bigint | undefined {
  if (typeof text !== 'string' || text.length === 0 || text.length > 64 || !DECIMAL.test(text)) return undefined;
  const value = BigInt(text);
  return value <= MAX_U64 ? value : undefined;
}

/** Parses a base-10 u16 (0..65535) like {@link parseU64}. */
export function parseU16(text: string | null | undefined): number | undefined {
  const value = parseU64(text);
  return value !== undefined && value <= 0xffffn ? Number(value) : undefined;
}

/** True when `value` is a bigint in 0..2^64-1. */
export function isU64(value: unknown): value is bigint {
  return typeof value === 'bigint' && value >= 0n && value <= MAX_U64;
}
