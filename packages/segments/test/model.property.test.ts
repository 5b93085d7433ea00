import { describe, expect, it } from '@jest/globals';
import { truncate } from 'node:fs/promises';
import { join } from 'node:path';
import fc from 'fast-check';
import { encodeMessages, type Message } from '@msg/wire';
import { makeTempDir } from '@msg/test-utils';
import { FILE_HEADER_SIZE, RECORD_HEADER_SIZE } from '../src/format.js';
import { Topic, type RecoveryEvent, type SyncPolicy } from '../src/index.js';
import { collect, collectFrames, msg, plain } from './helpers.js';

/*
 * Model-based test: random sequences of appends (one at a time, concurrent,
 * batched), reopens, torn-tail truncations, reclamations and reads from
 * random indexes, checked after every step against an in-memory model of
 * the segments and their records.
 */

type Op =
  | { kind: 'append'; mode: 'sequential' | 'concurrent' | 'batch'; gaps: number[]; sizes: number[] }
  | { kind: 'reopen' }
  | { kind: 'truncate'; at: number }
  | { kind: 'reclaim'; at: number; boundary: boolean }
  | { kind: 'read'; at: number; frames: boolean; streaming: boolean }
  | { kind: 'stale' };

interface ModelRecord {
  size: number;
  messages: Message[];
}
interface ModelSegment {
  start: bigint;
  size: number;
  records: ModelRecord[];
}

class Model {
  segments: ModelSegment[] = [];
  mark = 0n;
  readonly maxSegmentSize: number;

  constructor(maxSegmentSize: number) {
    this.maxSegmentSize = maxSegmentSize;
  }

  messages(): Message[] {
    return this.segments.flatMap((s) => s.records.flatMap((r) => r.messages));
  }

  get lastIndex(): bigint {
    return this.messages().at(-1)?.index ?? 0n;
  }

  /** Smallest index an append may use. */
  get nextIndex(): bigint {
    const last = this.lastIndex;
    const floor = this.mark > 0n ? this.mark - 1n : 0n;
    return (last > floor ? last : floor) + 1n;
  }

  write(messages: Message[]): void {
    let active = this.segments.at(-1);
    if (active === undefined || active.size >= this.maxSegmentSize) {
      active = { start: messages[0]!.index, size: FILE_HEADER_SIZE, records: [] };
      this.segments.push(active);
    }
    const size = RECORD_HEADER_SIZE + messages.reduce((n, m) => n + 22 + m.data.byteLength, 0);
    active.records.push({ size, messages });
    active.size += size;
  }

  reclaim(index: bigint): number {
    let count = 0;
    while (count < this.segments.length - 1 && this.segments[count]!.records.at(-1)!.messages.at(-1)!.index < index) count++;
    if (count > 0) {
      this.mark = this.segments[count]!.start;
      this.segments.splice(0, count);
    }
    return count;
  }

  /** What a read from `from` gives: the messages, or the first index when reclaimed. */
  read(from: bigint): Message[] | { reclaimed: bigint } {
    if (from < this.mark) return { reclaimed: this.segments[0]?.start ?? this.mark };
    return this.messages().filter((m) => m.index >= from);
  }
}

const opArb: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.record({
      kind: fc.constant('append' as const),
      mode: fc.constantFrom('sequential' as const, 'concurrent' as const, 'batch' as const),
      gaps: fc.array(fc.integer({ min: 0, max: 3 }), { minLength: 1, maxLength: 4 }),
      sizes: fc.array(fc.integer({ min: 0, max: 150 }), { minLength: 4, maxLength: 4 }),
    }),
  },
  { weight: 1, arbitrary: fc.constant({ kind: 'reopen' as const }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('truncate' as const), at: fc.double({ min: 0, max: 1, noNaN: true, maxExcluded: true }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('reclaim' as const), at: fc.double({ min: 0, max: 1.2, noNaN: true }), boundary: fc.boolean() }) },
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant('read' as const),
      at: fc.double({ min: 0, max: 1.1, noNaN: true }),
      frames: fc.boolean(),
      streaming: fc.boolean(),
    }),
  },
  { weight: 1, arbitrary: fc.constant({ kind: 'stale' as const }) },
);

async function run(maxSegmentSize: number, sync: SyncPolicy, ops: readonly Op[]): Promise<void> {
  const dir = join(await makeTempDir('model-'), 'topic');
  const events: RecoveryEvent[] = [];
  const open = async (): Promise<Topic> => {
    const t = new Topic(dir, { maxSegmentSize, sync, onRecovery: (e) => events.push(e) });
    await t.open();
    return t;
  };
  const model = new Model(maxSegmentSize);
  let topic = await open();
  try {
    for (const op of ops) {
      switch (op.kind) {
        case 'append': {
          let next = model.nextIndex;
          const messages = op.gaps.map((gap, k) => {
            const m = msg(next + BigInt(gap), op.sizes[k]);
            next = m.index + 1n;
            return m;
          });
          if (op.mode === 'sequential') {
            for (const m of messages) {
              await topic.append(m);
              model.write([m]);
            }
          } else {
            await (op.mode === 'batch' ? topic.appendBatch(messages) : Promise.all(messages.map((m) => topic.append(m))));
            model.write(messages);
          }
          break;
        }
        case 'reopen':
          await topic.close();
          topic = await open();
          expect(events).toEqual([]);
          break;
        case 'truncate': {
          const active = model.segments.at(-1);
          if (active === undefined) break;
          await topic.close();
          const last = active.records.at(-1)!;
          const recordStart = active.size - last.size;
          const cut = recordStart + Math.floor(op.at * last.size);
          await truncate(join(dir, String(active.start)), cut);
          active.records.pop();
          active.size = recordStart;
          const emptied = active.records.length === 0;
          if (emptied) model.segments.pop();
          topic = await open();
          expect(events.map((e) => e.kind)).toEqual(emptied ? ['empty-segment'] : cut > recordStart ? ['torn-tail'] : []);
          events.length = 0;
          break;
        }
        case 'reclaim': {
          // Either any index, or just past the end of a segment (the edge of a deletion).
          const segment = model.segments[Math.floor(Math.min(op.at, 0.99) * model.segments.length)];
          const index = op.boundary && segment ? segment.records.at(-1)!.messages.at(-1)!.index + 1n : BigInt(Math.floor(op.at * Number(model.lastIndex + 1n)));
          expect(await topic.reclaimBefore(index)).toBe(model.reclaim(index));
          break;
        }
        case 'read': {
          const from = BigInt(Math.floor(op.at * Number(model.lastIndex + 1n)));
          const expected = model.read(from);
          const reader = topic.reader(from, { streaming: op.streaming });
          if (op.streaming) {
            // A streaming reader delivers everything up to the end, then waits; close() ends it.
            if ('reclaimed' in expected) {
              await expect(collect(reader)).rejects.toMatchObject({ code: 'SEGMENT_RECLAIMED', firstIndex: expected.reclaimed });
              break;
            }
            const seen: Message[] = [];
            const iterator = reader[Symbol.asyncIterator]();
            for (let k = 0; k < expected.length; k++) {
              const step = await iterator.next();
              if (step.done === true) break;
              seen.push(step.value);
            }
            await reader.close();
            expect((await iterator.next()).done).toBe(true);
            expect(plain(seen)).toEqual(plain(expected));
          } else if ('reclaimed' in expected) {
            await expect(op.frames ? collectFrames(reader) : collect(reader)).rejects.toMatchObject({
              code: 'SEGMENT_RECLAIMED',
              firstIndex: expected.reclaimed,
            });
          } else if (op.frames) {
            expect(Buffer.from(await collectFrames(reader)).equals(Buffer.from(encodeMessages(expected)))).toBe(true);
          } else {
            expect(plain(await collect(reader))).toEqual(plain(expected));
          }
          break;
        }
        case 'stale': {
          const last = model.nextIndex - 1n;
          if (last > 0n) await expect(topic.append(msg(last))).rejects.toMatchObject({ code: 'STALE_WRITE' });
          break;
        }
      }
      expect(topic.lastIndex).toBe(model.lastIndex);
      expect(topic.segments().map((s) => [s.startIndex, s.size])).toEqual(model.segments.map((s) => [s.start, s.size]));
      expect(topic.firstIndex).toBe(model.segments[0]?.start ?? 0n);
    }
  } finally {
    await topic[Symbol.asyncDispose]();
  }
}

describe('Topic against an in-memory model', () => {
  it('agrees with the model over random appends, rolls, reopens, truncations, reclamations and reads', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(60, 200, 700),
        fc.constantFrom<SyncPolicy>('always', 'never'),
        fc.array(opArb, { minLength: 10, maxLength: 40, size: 'max' }),
        run,
      ),
      { numRuns: 50 },
    );
  }, 60_000);
});
