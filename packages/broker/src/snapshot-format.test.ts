import { describe, expect, it } from '@jest/globals';
import { readFile } from 'node:fs/promises';
import { isBrokerStateError } from './errors.js';
import { encodeSnapshotHeader, parseSnapshotHeader, readSnapshot, type SnapshotHeader } from './snapshot-format.js';

const VECTORS = new URL('../../../fixtures/original/', import.meta.url);

async function* chunked(bytes: Uint8Array, size: number): AsyncGenerator<Uint8Array> {
  for (let i = 0; i < bytes.byteLength; i += size) yield bytes.subarray(i, i + size);
}

async function collect(bytes: Uint8Array, chunkSize: number): Promise<{ header: SnapshotHeader; parts: Map<string, Uint8Array> }> {
  const parts = new Map<string, Uint8Array>();
  const header = await readSnapshot(chunked(bytes, chunkSize), async (topicID, segment, data) => {
    const pieces: Uint8Array[] = [];
    for await (const piece of data) pieces.push(piece);
    parts.set(`${topicID}/${segment.name}`, Buffer.concat(pieces));
  });
  return { header, parts };
}

async function failure(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error('expected a failure');
}

describe('snapshot format', () => {
  it("reads the original broker's snapshot.bin, every segment equal to the original's files", async () => {
    const bytes = new Uint8Array(await readFile(new URL('snapshot.bin', VECTORS)));
    for (const chunkSize of [1, 7, 4096]) {
      const { header, parts } = await collect(bytes, chunkSize);
      expect(header.index).toBe(31);
      expect(header.topics.map((t) => t.id)).toEqual([21n, 22n, 20n]);
      expect(parts.size).toBe(9);
      for (const topic of header.topics) {
        for (const segment of topic.segments) {
          const file = await readFile(new URL(`broker-dir/${topic.id}/${segment.index}`, VECTORS));
          expect(segment.name).toBe(String(segment.index));
          expect(Buffer.from(parts.get(`${topic.id}/${segment.name}`)!).equals(file)).toBe(true);
        }
      }
    }
  });

  it('round-trips our header with u64 ids above 2^53 and readers', () => {
    const header: SnapshotHeader = {
      index: 2 ** 40,
      topics: [{ id: 2n ** 64n - 1n, firstIndex: 2n ** 63n, segments: [{ index: 2n ** 63n, size: 10, name: 'seg-1' }] }, { id: 3n, segments: [] }],
      readers: new Map([[2n ** 64n - 1n, new Map([['', 3n], ['r', 2n ** 63n]])]]),
    };
    const bytes = encodeSnapshotHeader(header);
    const length = new DataView(bytes.buffer).getUint32(0);
    expect(length).toBe(bytes.byteLength - 4);
    expect(parseSnapshotHeader(new TextDecoder().decode(bytes.subarray(4)))).toEqual(header);
  });

  it('keeps bare integer ids above 2^53 exact', () => {
    const header = parseSnapshotHeader('{"topics":[{"id":18446744073709551615,"segments":[{"index":9007199254740993,"size":3}]}],"index":5}');
    expect(header.topics[0]?.id).toBe(18446744073709551615n);
    expect(header.topics[0]?.segments[0]?.index).toBe(9007199254740993n);
  });

  it('hands a sink that stops early only its own bytes, and skips the rest', async () => {
    const header = encodeSnapshotHeader({
      index: 2,
      topics: [{ id: 1n, segments: [{ index: 1n, size: 4, name: '1' }, { index: 2n, size: 2, name: '2' }] }],
      readers: new Map(),
    });
    const bytes = Buffer.concat([header, Buffer.from([1, 2, 3, 4, 5, 6])]);
    const seen: number[][] = [];
    await readSnapshot(chunked(bytes, 3), async (_topic, _segment, data) => {
      for await (const piece of data) {
        seen.push([...piece]);
        break;
      }
    });
    expect(seen.map((piece) => piece[0])).toEqual([1, 5]);
  });

  it('rejects truncated streams, trailing bytes and malformed headers with CORRUPT_SNAPSHOT', async () => {
    const good = new Uint8Array(await readFile(new URL('snapshot.bin', VECTORS)));
    const drain = async (_t: bigint, _s: unknown, data: AsyncIterable<Uint8Array>): Promise<void> => {
      for await (const _ of data) void _;
    };
    const header = (text: string): Uint8Array => {
      const body = new TextEncoder().encode(text);
      const out = new Uint8Array(4 + body.byteLength);
      new DataView(out.buffer).setUint32(0, body.byteLength);
      out.set(body, 4);
      return out;
    };
    const cases: Uint8Array[] = [
      good.subarray(0, 2),
      good.subarray(0, 100),
      good.subarray(0, good.byteLength - 1),
      Buffer.concat([good, Buffer.from([0])]),
      Uint8Array.from([0xff, 0xff, 0xff, 0xff]),
      header('{"topics":'),
      header('{"index":1}'),
      header('{"topics":[{"id":-1,"segments":[]}],"index":1}'),
      header('{"topics":[{"id":1,"segments":[{"index":1,"size":-3}]}],"index":1}'),
      header('{"topics":[{"id":1,"segments":[{"index":1,"size":0,"name":"../x"}]}],"index":1}'),
      header('{"topics":[{"id":1,"segments":[]},{"id":1,"segments":[]}],"index":1}'),
      header('{"topics":[],"index":99999999999999999999}'),
    ];
    for (const bytes of cases) {
      const error = await failure(readSnapshot(chunked(bytes, 5), drain));
      expect(isBrokerStateError(error, 'CORRUPT_SNAPSHOT')).toBe(true);
    }
  });
});
