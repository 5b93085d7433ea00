import { BrokerError, encodeFrame, isU64, MessageType, type Frame } from '@msg/wire';

const U64_SIZE = 8;

/**
 * Exactly-once publish: the producer table of the state machine.
 *
 * A publish may carry a producer id and a sequence number. The broker logs
 * it as a {@link MessageType.ProducedMessage} entry (the producer, the
 * sequence and the message's own frame); applying it checks the table:
 *
 * - a producer the table does not hold starts at whatever sequence it sends;
 * - the next sequence expected is accepted: the message goes to its topic;
 * - a sequence already accepted, within the window, is a duplicate: the
 *   topic gets nothing and the publish is answered with the original index;
 * - one that skips ahead is `SEQUENCE_GAP`, one older than the window is
 *   `SEQUENCE_TOO_OLD`; both write nothing and name the sequence expected.
 *
 * The window is the producer's last {@link ProducerLimits.maxRuns} runs of
 * accepted sequences (a run: consecutive sequences at consecutive indexes,
 * as one batch request gives). The table holds at most
 * {@link ProducerLimits.maxProducers} producers; beyond that the one that
 * published least recently (in log order) is forgotten. Every decision
 * depends on the log alone, so every node takes the same one.
 */
export interface ProducerLimits {
  /** Most producers remembered; default {@link DEFAULT_PRODUCER_LIMITS}. */
  maxProducers: number;
  /** Runs of accepted sequences remembered per producer (the deduplication window). */
  maxRuns: number;
}

/** 10,000 producers, 16 runs each: measured at most about 1.8 KiB of heap and 270 bytes of `meta` per producer (a producer of batches: about 60 bytes), so at most some 18 MiB and 2.7 MB in all. */
export const DEFAULT_PRODUCER_LIMITS: Readonly<ProducerLimits> = { maxProducers: 10_000, maxRuns: 16 };

/** Longest producer id, in characters (ASCII). */
export const MAX_PRODUCER_ID_LENGTH = 64;

/** Longest key in the table: the authenticated identity's name, `/`, and the producer id. */
const MAX_KEY_BYTES = 255;

const PRODUCER_ID = /^[A-Za-z0-9._:-]{1,64}$/;

/** A producer's claim on one message: its id and its sequence. */
export interface ProducerSequence {
  /**
   * The producer's key in the table: its id (`A-Z a-z 0-9 . _ : -`, 1 to 64 characters), prefixed
   * with the authenticated identity and `/` by `@msg/http` so that no identity can claim another's sequences.
   */
  id: string;
  /** The message's sequence number (u64). */
  seq: bigint;
}

/** What the table says of a sequence. */
export type ProducerVerdict =
  | { kind: 'new' }
  | { kind: 'duplicate'; index: bigint }
  | { kind: 'gap'; next: bigint }
  | { kind: 'old'; next: bigint };

interface Run {
  seq: bigint;
  index: bigint;
  count: number;
}

interface Producer {
  next: bigint;
  runs: Run[];
}

/** The table as JSON (in `meta` and snapshot headers): `[id, next, [seq, index, count, ...]]` per producer, least recent first. */
export type ProducersJson = [string, string, (string | number)[]][];

/** True when `id` is a valid producer id (without an identity prefix). */
export function isProducerId(id: string): boolean {
  return PRODUCER_ID.test(id);
}

/** `INVALID_PRODUCER` unless `producer` has a valid key and a u64 sequence. */
export function validProducer(producer: ProducerSequence): void {
  const { id, seq } = producer;
  const slash = id.lastIndexOf('/');
  const own = id.slice(slash + 1);
  // At most 3 UTF-8 bytes per UTF-16 unit: most keys need no encoding to be measured.
  if (typeof id !== 'string' || !isProducerId(own) || (id.length * 3 > MAX_KEY_BYTES && new TextEncoder().encode(id).byteLength > MAX_KEY_BYTES)) {
    throw new BrokerError('INVALID_PRODUCER', { message: `invalid producer: the id must be 1 to ${MAX_PRODUCER_ID_LENGTH} characters of A-Z a-z 0-9 . _ : -` });
  }
  if (typeof seq !== 'bigint' || !isU64(seq)) throw new BrokerError('INVALID_PRODUCER', { message: 'invalid producer: the sequence must be a u64' });
}

/** The error a publish gets for a gap or a sequence older than the window. */
export function sequenceError(verdict: { kind: 'gap' | 'old'; next: bigint }, producer: ProducerSequence): BrokerError {
  const own = producer.id.slice(producer.id.lastIndexOf('/') + 1);
  return verdict.kind === 'gap'
    ? new BrokerError('SEQUENCE_GAP', {
        message: `producer sequence gap: producer ${own} sent ${producer.seq}, the next expected is ${verdict.next}`,
        details: { producerNext: verdict.next },
      })
    : new BrokerError('SEQUENCE_TOO_OLD', {
        message: `producer sequence too old: producer ${own} sent ${producer.seq}, below the deduplication window (next expected ${verdict.next})`,
        details: { producerNext: verdict.next },
      });
}

/** See the module's documentation. */
export class ProducerTable {
  readonly #limits: ProducerLimits;
  /** In order of last accepted message, least recent first. */
  #producers = new Map<string, Producer>();
  #forgotten = 0;

  constructor(limits: Partial<ProducerLimits> = {}) {
    this.#limits = { ...DEFAULT_PRODUCER_LIMITS, ...limits };
  }

  /** Producers held. */
  get size(): number {
    return this.#producers.size;
  }

  /** Producers forgotten since this table was made, to stay within `maxProducers`. */
  get forgotten(): number {
    return this.#forgotten;
  }

  /** The sequence `id` must send next, or `undefined` for a producer the table does not hold. */
  next(id: string): bigint | undefined {
    return this.#producers.get(id)?.next;
  }

  /** What applying `seq` of producer `id` would do (see the module's documentation). */
  check(id: string, seq: bigint): ProducerVerdict {
    const producer = this.#producers.get(id);
    if (producer === undefined || seq === producer.next) return { kind: 'new' };
    if (seq > producer.next) return { kind: 'gap', next: producer.next };
    for (let i = producer.runs.length - 1; i >= 0; i--) {
      const run = producer.runs[i]!;
      if (seq >= run.seq && seq < run.seq + BigInt(run.count)) return { kind: 'duplicate', index: run.index + (seq - run.seq) };
    }
    return { kind: 'old', next: producer.next };
  }

  /** Records that `seq` of `id` (checked `new`) was accepted at `index`. */
  accept(id: string, seq: bigint, index: bigint): void {
    let producer = this.#producers.get(id);
    if (producer === undefined) producer = { next: seq, runs: [] };
    else this.#producers.delete(id);
    const last = producer.runs.at(-1);
    if (last !== undefined && last.seq + BigInt(last.count) === seq && last.index + BigInt(last.count) === index) last.count++;
    else producer.runs.push({ seq, index, count: 1 });
    if (producer.runs.length > this.#limits.maxRuns) producer.runs.shift();
    producer.next = seq + 1n;
    this.#producers.set(id, producer);
    if (this.#producers.size > this.#limits.maxProducers) {
      const oldest = this.#producers.keys().next().value!;
      this.#producers.delete(oldest);
      this.#forgotten++;
    }
  }

  /** The table as JSON, in its order (which decides what is forgotten next). */
  toJSON(): ProducersJson {
    return [...this.#producers].map(([id, p]) => [id, String(p.next), p.runs.flatMap((r) => [String(r.seq), String(r.index), r.count])]);
  }

  /** Replaces the table with `json` (of {@link toJSON}); a malformed value throws what `bad` makes. */
  load(json: unknown, bad: (why: string) => Error): void {
    if (!Array.isArray(json)) throw bad('producers is not a list');
    const producers = new Map<string, Producer>();
    for (const item of json) {
      if (!Array.isArray(item) || item.length !== 3 || typeof item[0] !== 'string' || !Array.isArray(item[2]) || item[2].length % 3 !== 0) {
        throw bad('bad producer');
      }
      const [id, next, flat] = item as [string, unknown, unknown[]];
      const runs: Run[] = [];
      for (let i = 0; i < flat.length; i += 3) {
        const count = flat[i + 2];
        if (typeof count !== 'number' || !Number.isSafeInteger(count) || count < 1) throw bad(`bad run of producer ${id}`);
        runs.push({ seq: u64(flat[i], bad), index: u64(flat[i + 1], bad), count });
      }
      producers.set(id, { next: u64(next, bad), runs });
    }
    this.#producers = producers;
  }
}

function u64(value: unknown, bad: (why: string) => Error): bigint {
  if (typeof value !== 'string' || !/^[0-9]{1,20}$/.test(value) || !isU64(BigInt(value))) throw bad(`bad u64 ${JSON.stringify(value)}`);
  return BigInt(value);
}

/**
 * The log entry of a produced message: a {@link MessageType.ProducedMessage} frame on the message's topic whose
 * data is `u8 key length ‖ key (UTF-8) ‖ u64 sequence ‖ the message's own frame`.
 */
export function encodeProduced(producer: ProducerSequence, frame: Frame, topicID: bigint): Uint8Array {
  const key = new TextEncoder().encode(producer.id);
  const data = new Uint8Array(1 + key.byteLength + U64_SIZE + frame.byteLength);
  data[0] = key.byteLength;
  data.set(key, 1);
  new DataView(data.buffer).setBigUint64(1 + key.byteLength, producer.seq);
  data.set(frame, 1 + key.byteLength + U64_SIZE);
  return encodeFrame({ type: MessageType.ProducedMessage, topicID, data });
}

/** Splits a produced message's data (see {@link encodeProduced}); throws on malformed data. */
export function decodeProduced(data: Uint8Array): { producer: ProducerSequence; frame: Uint8Array } {
  const length = data[0];
  if (length === undefined || length === 0 || data.byteLength < 1 + length + U64_SIZE) throw new Error('produced message too short');
  const id = new TextDecoder('utf-8', { fatal: true }).decode(data.subarray(1, 1 + length));
  const seq = new DataView(data.buffer, data.byteOffset, data.byteLength).getBigUint64(1 + length);
  return { producer: { id, seq }, frame: data.subarray(1 + length + U64_SIZE) };
}
