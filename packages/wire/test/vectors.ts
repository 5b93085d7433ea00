import { readFileSync } from 'node:fs';
import { join } from 'node:path';

/** The folder of vectors written by the original broker (fixtures/original at the repository root). */
export const VECTORS_DIR = join(import.meta.dirname, '..', '..', '..', 'fixtures', 'original');

export interface MessageVector {
  type: number;
  topicID: string;
  index: string;
  dataHex: string;
  encodedHex: string;
}

export function loadMessageVectors(): MessageVector[] {
  return JSON.parse(readFileSync(join(VECTORS_DIR, 'messages.json'), 'utf8')) as MessageVector[];
}

export function fromHex(hex: string): Uint8Array {
  return Uint8Array.from(Buffer.from(hex, 'hex'));
}

export function toHex(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex');
}
