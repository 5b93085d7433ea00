import { asFrame, decodeMessage, encodeFrame, encodeMessage, MessageType, type Message } from '@msg/wire';
import type { SimApp } from 'raft-ts/simulation';
import { Broker } from '../../src/broker.js';
import { isBrokerStateError } from '../../src/errors.js';
import { decodeReaderReport, readerReportMessage } from '../../src/reader-report.js';
import { decodeProduced, encodeProduced } from '../../src/producers.js';

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const TOPICS = 3n;

/** The topic a write goes to: spread over {@link TOPICS} topics by its text. */
function topicOf(text: string): bigint {
  let h = 0;
  for (let i = 0; i < text.length; i++) h = (h * 31 + text.charCodeAt(i)) >>> 0;
  return 1n + (BigInt(h) % TOPICS);
}

function isReport(message: Message): boolean {
  return message.type === MessageType.SetTopicMaxIndex;
}

/** The number of a client write `c<n>` (NaN for others, such as the final write). */
function numberOf(text: string): number {
  return text.startsWith('c') ? Number(text.slice(1)) : NaN;
}

/** Whether a write lands in a topic: one in ten is a reader report instead. */
function stored(text: string): boolean {
  return numberOf(text) % 10 !== 0;
}

/**
 * Exactly-once publish: writes 3 and 4 of every ten claim the same (producer, sequence), as a retry of
 * write 3 would (with another text, so the checks can tell which was stored); write 5 has a producer of
 * its own. Only the first of a pair in log order may be stored.
 */
function producerOf(text: string): { id: string; seq: bigint } | undefined {
  const n = numberOf(text);
  if (n % 10 === 3) return { id: `p${n}`, seq: 0n };
  if (n % 10 === 4) return { id: `p${n - 1}`, seq: 0n };
  if (n % 10 === 5) return { id: `q${n}`, seq: 0n };
  return undefined;
}

/**
 * The real `@msg/broker` as the simulation's state machine, on the node's
 * simulated disk (`/data/broker`): topics, checkpoints (every 40 virtual ms),
 * reader reports and snapshots, with every file access through the disk, so
 * crashes, torn writes, holes, lost directory entries, I/O errors and bit
 * flips reach the broker's whole durability path: checkpoint, crash, roll
 * back, re-apply. A factory: one app per run (its checks span the nodes).
 *
 * Every write is a message on one of three topics; one in ten is a reader
 * report instead, in turn of a reader `r<k>` behind, of an
 * anonymous reader (the original's heartbeat) about at the newest index, and
 * of a slow reader `s<k>` far behind; topic 3 gets only the anonymous ones. Checker: what a topic reclaimed, every
 * identified reader had passed (an anonymous report never reclaims). Three in ten carry a producer id
 * (see `producerOf`), two of them the same (producer, sequence): every node must store the first in log order
 * and never the second, through crashes, restarts and snapshots (the producer table in `meta` and snapshots).
 */
export function brokerApp(): SimApp {
  /** Every index any node applied, per topic (ascending): those below a topic's first retained index were reclaimed. */
  const applied = new Map<bigint, number[]>();
  /** Per producer key, the first log index any node applied an entry of it at: the one that must be stored. */
  const firstOf = new Map<string, number>();
  /** What a message entry carries: its topic and text, and its producer key (none for a plain message). */
  const contentOf = (message: Message): { topicID: bigint; text: string; key?: string } => {
    if (message.type !== MessageType.ProducedMessage) return { topicID: message.topicID, text: decoder.decode(message.data) };
    const { producer, frame } = decodeProduced(message.data);
    const inner = decodeMessage(asFrame(frame));
    return { topicID: inner.topicID, text: decoder.decode(inner.data), key: `${producer.id} ${producer.seq}` };
  };
  /** Whether `text` at `index` is the stored one of its (producer, sequence): true for a plain write. */
  const firstClaim = (index: number, text: string): boolean => {
    const producer = producerOf(text);
    const first = producer === undefined ? undefined : firstOf.get(`${producer.id} ${producer.seq}`);
    return first === undefined || first === index;
  };
  return {
    name: 'broker',
    async open({ url, fs, clock, report, recordApplied }) {
      const broker = new Broker({ dir: '/data/broker', fs, clock, checkpointIntervalMs: 40, maxSegmentSize: 600 });
      await broker.open();
      // Checked when an apply reclaims (a reader that reports for the first time later cannot hold back
      // what was already gone: it counts from its first report).
      const checkReclaimed = (before: Map<bigint, bigint>): void => {
        for (const t of broker.status().topics) {
          if (t.firstIndex <= (before.get(t.id) ?? 0n)) continue;
          const indexes = applied.get(t.id) ?? [];
          let reclaimed: number | undefined;
          for (const i of indexes) if (BigInt(i) < t.firstIndex && t.lastIndex > 0n) reclaimed = i;
          if (reclaimed === undefined) continue;
          const passed = t.readers.length === 0 ? -1n : t.readers.reduce((m, r) => (r.index < m ? r.index : m), t.readers[0]!.index);
          if (BigInt(reclaimed) > passed) {
            report(`${url}: topic ${t.id} reclaimed its message ${reclaimed}, but its identified readers passed only ${passed < 0n ? 'nothing' : passed}`);
          }
        }
      };
      return {
        stateMachine: {
          // Records what is applied, as the state machine sees it, for the cross-node checks.
          apply: async (entries, upTo) => {
            const from = broker.appliedIndex();
            const before = new Map(broker.status().topics.map((t) => [t.id, t.firstIndex]));
            await broker.apply(entries, upTo);
            let reports = false;
            for (const e of entries) {
              if (e.index <= from) continue;
              const message = decodeMessage(e.data);
              if (isReport(message)) {
                reports = true;
                continue;
              }
              const content = contentOf(message);
              recordApplied(e.index, content.text);
              if (content.key !== undefined) {
                const first = firstOf.get(content.key);
                if (first === undefined || e.index < first) firstOf.set(content.key, e.index);
              }
              // A second claim of a producer sequence is not stored: nothing of the topic to reclaim.
              if (content.key !== undefined && firstOf.get(content.key) !== e.index) continue;
              const list = applied.get(content.topicID) ?? [];
              if (list.length === 0 || list[list.length - 1]! < e.index) list.push(e.index);
              applied.set(content.topicID, list);
            }
            if (reports) checkReclaimed(before);
          },
          appliedIndex: () => broker.appliedIndex(),
          checkpoint: () => broker.checkpoint(),
          snapshot: () => broker.snapshot(),
          restore: (snapshot, index) => broker.restore(snapshot, index),
        },
        async state() {
          const state = new Map<number, string>();
          for (const id of broker.topicIDs()) {
            const first = broker.status().topics.find((t) => t.id === id)?.firstIndex ?? 0n;
            const reader = await broker.openTopicReader(id, first);
            for await (const m of reader.messages()) state.set(Number(m.index), decoder.decode(m.data));
          }
          for (const [index, text] of state) {
            if (!firstClaim(index, text)) report(`${url}: stored "${text}" at ${index}, a second claim of its producer sequence (the first was at ${firstOf.get(`${producerOf(text)!.id} 0`)})`);
          }
          return state;
        },
        failure: () => broker.failure,
        covers(index, text) {
          if (!stored(text) || !firstClaim(index, text)) return false;
          const topic = broker.status().topics.find((t) => t.id === topicOf(text));
          return topic === undefined || BigInt(index) >= topic.firstIndex;
        },
        async close() {
          await broker.close().catch((err: unknown) => {
            if (!isBrokerStateError(err)) throw err;
          });
        },
      };
    },
    encode(text) {
      const k = topicOf(text);
      const n = numberOf(text);
      if (!stored(text)) {
        // Topics 1 and 2 have identified readers (and anonymous reports); topic 3 only anonymous ones, like
        // the original's clients: it must never reclaim anything.
        const kind = (n / 10) % 3;
        const topic = kind === 1 ? 3n : 1n + (k % 2n);
        // Op numbers grow faster than raft indexes (failed proposals use them up): report a fraction, below the topic end.
        const at = kind === 0 ? n / 3 : kind === 1 ? n / 2 : n / 8;
        const readerId = kind === 0 ? `r${topic}` : kind === 1 ? '' : `s${topic}`;
        return encodeMessage(readerReportMessage({ topicID: topic, index: BigInt(Math.max(0, Math.floor(at))), readerId }, 0));
      }
      const fields = { type: 1, topicID: k, data: encoder.encode(text) };
      const producer = producerOf(text);
      return producer === undefined ? encodeMessage({ ...fields, index: 0n }) : encodeProduced(producer, encodeFrame(fields), k);
    },
    decode(data) {
      const message = decodeMessage(data);
      if (!isReport(message)) return contentOf(message).text;
      const r = decodeReaderReport(message.data);
      return `report ${r.readerId}@${r.index}`;
    },
    stored,
    checkedFiles: /^meta$/,
  };
}
