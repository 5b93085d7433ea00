import { TextDecoder } from 'node:util';
import { crc32 } from 'node:zlib';
import { RaftError } from '../errors.js';

/** 2^32, to split a safe integer into two u32 halves. */
const TWO_32 = 0x1_0000_0000;

/** The largest high half of a safe integer (2^53 - 1 = 0x1f_ffff_ffff_ffff). */
const MAX_SAFE_HIGH = 0x1f_ffff;

/** Bytes of the CRC-32 trailer that ends every binary body. */
export const CRC_SIZE = 4;

/** The largest string {@link BinaryWriter.str16} can write: 65535 UTF-8 bytes. */
export const MAX_STR16_BYTES = 0xffff;

let utf8: TextDecoder | undefined;

/**
 * Decodes UTF-8, refusing invalid sequences (throws a `TypeError`) instead of
 * replacing them. The decoder is made on first use.
 */
export function decodeUtf8Strict(bytes: Uint8Array): string {
  utf8 ??= new TextDecoder('utf-8', { fatal: true });
  return utf8.decode(bytes);
}

/** Throws `BAD_REQUEST` unless `value` is a safe integer >= 0. */
export function assertSafeU64(value: unknown, field: string, what: string): asserts value is number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    throw new RaftError('BAD_REQUEST', `invalid ${what}: ${field} must be a safe integer >= 0, got ${String(value)}`);
  }
}

/** UTF-8 length of `value`, or `BAD_REQUEST` when it is not a string or longer than 65535 bytes. */
export function str16Length(value: unknown, field: string, what: string): number {
  if (typeof value !== 'string') throw new RaftError('BAD_REQUEST', `invalid ${what}: ${field} must be a string`);
  const length = Buffer.byteLength(value, 'utf8');
  if (length > MAX_STR16_BYTES) {
    throw new RaftError('BAD_REQUEST', `invalid ${what}: ${field} is ${length} bytes, more than ${MAX_STR16_BYTES}`);
  }
  return 2 + length;
}

/**
 * Writes big-endian fields into a buffer sized in advance. Values are
 * validated by the caller (see {@link assertSafeU64}, {@link str16Length}).
 */
export class BinaryWriter {
  /** The output, filled by the writes. */
  readonly buffer: Buffer;
  #offset = 0;

  /** @param size the exact number of bytes that will be written, CRC trailer included. */
  constructor(size: number) {
    this.buffer = Buffer.allocUnsafe(size);
  }

  /** The kind and version bytes that open every body. */
  header(kind: number, version: number): void {
    this.u8(kind);
    this.u8(version);
  }

  /** One byte, 0..255. */
  u8(value: number): void {
    this.buffer[this.#offset++] = value;
  }

  /** A big-endian u16, 0..65535. */
  u16(value: number): void {
    this.buffer.writeUInt16BE(value, this.#offset);
    this.#offset += 2;
  }

  /** A big-endian u32, 0..2^32 - 1. */
  u32(value: number): void {
    this.buffer.writeUInt32BE(value, this.#offset);
    this.#offset += 4;
  }

  /** A safe integer as a big-endian u64. */
  u64(value: number): void {
    this.buffer.writeUInt32BE(Math.floor(value / TWO_32), this.#offset);
    this.buffer.writeUInt32BE(value % TWO_32, this.#offset + 4);
    this.#offset += 8;
  }

  /** A string as u16 byte length + UTF-8. */
  str16(value: string): void {
    const written = this.buffer.write(value, this.#offset + 2, 'utf8');
    this.buffer.writeUInt16BE(written, this.#offset);
    this.#offset += 2 + written;
  }

  /** Raw bytes, as u32 length + bytes. */
  bytes32(value: Uint8Array): void {
    this.u32(value.byteLength);
    this.buffer.set(value, this.#offset);
    this.#offset += value.byteLength;
  }

  /** Appends the CRC-32 of everything written so far and returns the buffer. */
  finish(): Buffer {
    this.u32(crc32(this.buffer.subarray(0, this.#offset)));
    if (this.#offset !== this.buffer.byteLength) {
      throw new Error(`BinaryWriter: wrote ${this.#offset} of ${this.buffer.byteLength} bytes`);
    }
    return this.buffer;
  }
}

/**
 * Reads big-endian fields and throws `RaftError('BAD_REQUEST')` on anything
 * out of bounds, so a truncated or hostile body is a typed error, never a
 * crash or a huge allocation.
 */
export class BinaryReader {
  readonly #bytes: Uint8Array;
  readonly #view: DataView;
  readonly #end: number;
  readonly #what: string;
  #offset = 0;

  /**
   * Checks the CRC-32 trailer of `bytes` and prepares to read what it covers.
   * @param what names the body in error messages (for example `AppendEntries request`).
   */
  constructor(bytes: Uint8Array, what: string) {
    this.#what = what;
    if (bytes.byteLength < CRC_SIZE) this.fail(`${bytes.byteLength} bytes is too short`);
    this.#bytes = bytes;
    this.#view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.#end = bytes.byteLength - CRC_SIZE;
    const expected = this.#view.getUint32(this.#end);
    const actual = crc32(bytes.subarray(0, this.#end));
    if (expected !== actual) this.fail('checksum mismatch (corrupt or truncated body)');
  }

  /** Reads the kind and version bytes that open every body; `BAD_REQUEST` unless they are `kind` and `version`. */
  header(kind: number, version: number): void {
    const got = this.u8('kind');
    if (got !== kind) this.fail(`kind byte is ${got}, expected ${kind}`);
    const gotVersion = this.u8('version');
    if (gotVersion !== version) this.fail(`unsupported version ${gotVersion}`);
  }

  /** Throws `BAD_REQUEST` with `reason`. */
  fail(reason: string): never {
    throw new RaftError('BAD_REQUEST', `malformed ${this.#what}: ${reason}`);
  }

  /** Bytes left before the CRC trailer. */
  get remaining(): number {
    return this.#end - this.#offset;
  }

  #need(n: number, field: string): void {
    if (this.#end - this.#offset < n) this.fail(`truncated at ${field} (offset ${this.#offset})`);
  }

  /** One byte. `field` names it in errors, here and below. */
  u8(field: string): number {
    this.#need(1, field);
    return this.#view.getUint8(this.#offset++);
  }

  /** A big-endian u16. */
  u16(field: string): number {
    this.#need(2, field);
    const value = this.#view.getUint16(this.#offset);
    this.#offset += 2;
    return value;
  }

  /** A big-endian u32. */
  u32(field: string): number {
    this.#need(4, field);
    const value = this.#view.getUint32(this.#offset);
    this.#offset += 4;
    return value;
  }

  /** A big-endian u64 that must be a safe integer (<= 2^53 - 1). */
  u64(field: string): number {
    this.#need(8, field);
    const high = this.#view.getUint32(this.#offset);
    const low = this.#view.getUint32(this.#offset + 4);
    if (high > MAX_SAFE_HIGH) this.fail(`${field} is above 2^53 - 1 (offset ${this.#offset})`);
    this.#offset += 8;
    return high * TWO_32 + low;
  }

  /** A u8 that must be 0 or 1. */
  bool(field: string): boolean {
    const value = this.u8(field);
    if (value > 1) this.fail(`${field} must be 0 or 1, got ${value}`);
    return value === 1;
  }

  /** A u16 length + strict UTF-8 string. */
  str16(field: string): string {
    const length = this.u16(field);
    this.#need(length, field);
    const start = this.#offset;
    this.#offset += length;
    try {
      return decodeUtf8Strict(this.#bytes.subarray(start, start + length));
    } catch (cause) {
      throw new RaftError('BAD_REQUEST', `malformed ${this.#what}: ${field} is not valid UTF-8`, { cause });
    }
  }

  /** A u32 length + raw bytes, returned as a view into the body (no copy). */
  bytes32(field: string): Uint8Array {
    const length = this.u32(field);
    this.#need(length, field);
    const start = this.#offset;
    this.#offset += length;
    return new Uint8Array(this.#bytes.buffer, this.#bytes.byteOffset + start, length);
  }

  /** Throws unless every byte before the CRC trailer was read. */
  end(): void {
    if (this.#offset !== this.#end) this.fail(`${this.#end - this.#offset} unexpected bytes at offset ${this.#offset}`);
  }
}
