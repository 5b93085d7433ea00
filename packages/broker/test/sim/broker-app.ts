import { decodeMessage, encodeMessage, MessageType, type Message } from '@msg/wire';
import type { SimApp } from 'raft-ts/simulation';
import { Broker } from '../../src/broker.js';
import { isBrokerStateError } from '../../src/errors.js';
import { decodeReaderReport, readerReportMessage } from '../../src/reader-report.js';

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

/** Whether a write lands in a topic: one in ten is a reader report instead. */
function stored(text: string): boolean {
  return !(text.startsWith('c') && Number(text.slice(1)) % 10 === 0);
}

/**
 * The real `@msg/broker` as the simulation's state machine, on the node's
 * simulated disk (`/data/broker`): topics, checkpoints (every 40 virtual ms),
 * reader reports and snapshots, with every file access through the disk, so
 * crashes, torn writes, holes, lost directory entries, I/O errors and bit
 * flips reach the broker's whole durability path: checkpoint, crash, roll
 * back, re-apply.
 *
 * Every write is a message on one of three topics; one in ten is a reader
 * report of a reader `r<k>` instead (it reclaims nothing the others still
 * read: the state compared after healing starts at each topic's first
 * retained index on every node alike).
 */
export const brokerApp: SimApp = {
  name: 'broker',
  async open({ fs, clock, recordApplied }) {
    const broker = new Broker({ dir: '/data/broker', fs, clock, checkpointIntervalMs: 40, maxSegmentSize: 600 });
    await broker.open();
    return {
      stateMachine: {
        // Records what is applied, as the state machine sees it, for the cross-node checks.
        apply: async (entries, upTo) => {
          const from = broker.appliedIndex();
          await broker.apply(entries, upTo);
          for (const e of entries) {
            const message = decodeMessage(e.data);
            if (e.index > from && !isReport(message)) recordApplied(e.index, decoder.decode(message.data));
          }
        },
        appliedIndex: () => broker.appliedIndex(),
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
        return state;
      },
      failure: () => broker.failure,
      covers(index, text) {
        if (!stored(text)) return false;
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
    const k = Number(topicOf(text));
    if (!stored(text)) {
      // A reader report of reader r<k> at a low index: recorded through raft, reclaiming (if anything) what it passed.
      return encodeMessage(readerReportMessage({ topicID: BigInt(k), index: BigInt(Math.max(0, Number(text.slice(1)) - 40)), readerId: `r${k}` }, 0));
    }
    return encodeMessage({ type: 1, topicID: BigInt(k), index: 0n, data: encoder.encode(text) });
  },
  decode(data) {
    const message = decodeMessage(data);
    if (!isReport(message)) return decoder.decode(message.data);
    const report = decodeReaderReport(message.data);
    return `report ${report.readerId}@${report.index}`;
  },
  stored,
  checkedFiles: /^meta$/,
};
