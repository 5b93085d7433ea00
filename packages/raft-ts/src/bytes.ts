import { crc32 } from 'node:zlib';

/** CRC-32 (IEEE) of `data`, continuing from `previous`, as an unsigned 32-bit number. Internal. */
export function checksum(data: Uint8Array, previous = 0): number {
  return crc32(data, previous) >>> 0;
}

/** Whether every byte of `bytes` is zero. Internal. */
export function isZero(bytes: Uint8Array): boolean {
  for (const b of bytes) if (b !== 0) return false;
  return true;
}

/** Writes a safe non-negative integer as 8 big-endian bytes at `offset`. Internal. */
export function writeU64(view: DataView, offset: number, value: number): void {
  view.setUint32(offset, Math.floor(value / 0x1_0000_0000));
  view.setUint32(offset + 4, value >>> 0);
}

/** Reads 8 big-endian bytes written by {@link writeU64}. Internal. */
export function readU64(view: DataView, offset: number): number {
  return view.getUint32(offset) * 0x1_0000_0000 + view.getUint32(offset + 4);
}

/** A DataView over exactly the bytes of `data`. Internal. */
export function viewOf(data: Uint8Array): DataView {
  return new DataView(data.buffer, data.byteOffset, data.byteLength);
}

/** Joins path segments with `/`. Internal. */
export function joinPath(dir: string, name: string): string {
  return dir.endsWith('/') ? dir + name : `${dir}/${name}`;
}

/** Concatenates chunks into one array. Internal. */
export function concat(chunks: readonly Uint8Array[]): Uint8Array {
  let size = 0;
  for (const c of chunks) size += c.length;
  const out = new Uint8Array(size);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}
