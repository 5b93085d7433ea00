import type { Ledger } from './publishers.js';
import type { Seen } from './consumers.js';

/** A topic as one node serves it (a non-streaming GET from index 0). */
export interface NodeTopic {
  /** The node's URL. */
  readonly node: string;
  /** The body bytes. */
  readonly bytes: Buffer;
  /** Those bytes decoded. */
  readonly messages: readonly { readonly index: bigint; readonly data: Uint8Array }[];
}

/** The outcome of a probe: a publish into a minority, a catch-up after a heal. */
export interface Probe {
  /** `minority-publish` or `catch-up`. */
  readonly check: string;
  readonly ok: boolean;
  readonly detail: string;
  /** When it was made (`Date.now()`). */
  readonly at: number;
}

/** Everything the checker looks at, after healing and convergence. */
export interface CheckInput {
  readonly topics: readonly {
    readonly topicID: bigint;
    /** The topic as every node serves it. */
    readonly nodes: readonly NodeTopic[];
    /** The publishers of the topic. */
    readonly ledgers: readonly Ledger[];
    /** What each consumer of the topic saw. */
    readonly consumers: readonly { readonly name: string; readonly seen: readonly Seen[] }[];
  }[];
  readonly probes: readonly Probe[];
}

/** One broken promise. */
export interface Violation {
  /** The check: `identical-frames`, `acked-present`, `exactly-once`, `never-sent`, `consumer-order`, `minority-publish`, `catch-up`; from the runner also `restart`, `graceful-stop`, `convergence`, `harness`. */
  readonly check: string;
  readonly message: string;
  /** The indexes concerned. */
  readonly indexes: readonly bigint[];
  /** When it happened or was acknowledged (`Date.now()`), if known: the fault log is cut around it. */
  readonly at?: number;
}

/** What {@link check} found. */
export interface CheckResult {
  readonly violations: Violation[];
  /** Acknowledged publishes checked. */
  readonly acked: number;
  /** Acknowledged publishes missing (or elsewhere than acknowledged, or other bytes) on some node. Must be 0. */
  readonly lost: number;
  /** Payloads found more than once (raw: also a violation; client: at least once, counted only). */
  readonly duplicated: number;
}

const decoder = new TextDecoder();

/**
 * Checks the promises of a replicated log after the faults are healed:
 * every node serves identical frames for every topic; every acknowledged
 * publish is on every node exactly once, at its acknowledged index, with its
 * bytes; nothing served was never sent; every consumer saw its topic in
 * index order with no gap and no duplicate (a prefix of what the nodes
 * serve, byte for byte); every probe passed.
 */
export function check(input: CheckInput): CheckResult {
  const violations: Violation[] = [];
  let acked = 0;
  const lost = new Set<string>();
  const duplicated = new Set<string>();
  for (const topic of input.topics) {
    const id = topic.topicID;
    const [first, ...others] = topic.nodes;
    for (const other of others) {
      if (first && !other.bytes.equals(first.bytes)) {
        const at = firstDifference(first.messages, other.messages);
        violations.push({ check: 'identical-frames', message: `topic ${id}: ${other.node} serves other frames than ${first.node} (${other.messages.length} vs ${first.messages.length} messages; first difference at position ${at.position})`, indexes: at.indexes });
      }
    }
    const sentBy = new Map<string, Ledger>();
    for (const ledger of topic.ledgers) for (const payload of ledger.sent) sentBy.set(payload, ledger);
    for (const ledger of topic.ledgers) acked += ledger.acked.size;
    for (const node of topic.nodes) {
      const where = new Map<string, bigint[]>();
      for (const m of node.messages) {
        const payload = decoder.decode(m.data);
        where.set(payload, [...(where.get(payload) ?? []), m.index]);
        if (!sentBy.has(payload)) violations.push({ check: 'never-sent', message: `topic ${id} on ${node.node}: payload ${JSON.stringify(payload.slice(0, 60))} at ${m.index} was never sent`, indexes: [m.index] });
      }
      for (const [payload, indexes] of where) {
        if (indexes.length < 2) continue;
        duplicated.add(`${id}/${payload}`);
        if (sentBy.get(payload)?.kind === 'raw') violations.push({ check: 'exactly-once', message: `topic ${id} on ${node.node}: raw payload ${payload} is there ${indexes.length} times`, indexes });
      }
      for (const ledger of topic.ledgers) {
        for (const ack of ledger.acked.values()) {
          const found = where.get(ack.payload);
          if (found?.includes(ack.index)) continue;
          lost.add(`${id}/${ack.payload}`);
          violations.push({
            check: 'acked-present',
            message: `topic ${id} on ${node.node}: ${ledger.kind} payload ${ack.payload} acknowledged at ${ack.index} ${found ? `is at ${found.join(', ')} instead` : 'is missing'}`,
            indexes: [ack.index, ...(found ?? [])],
            at: ack.endedAt,
          });
        }
      }
    }
    for (const consumer of topic.consumers) {
      const truth = first?.messages ?? [];
      for (let i = 0; i < consumer.seen.length; i++) {
        const seen = consumer.seen[i]!;
        const previous = consumer.seen[i - 1];
        if (previous && seen.index <= previous.index) {
          violations.push({ check: 'consumer-order', message: `topic ${id}: consumer ${consumer.name} saw ${seen.index} after ${previous.index}`, indexes: [previous.index, seen.index] });
          break;
        }
        const want = truth[i];
        if (!want || want.index !== seen.index || !Buffer.from(want.data).equals(seen.data)) {
          violations.push({
            check: 'consumer-order',
            message: `topic ${id}: consumer ${consumer.name}'s message #${i} is ${seen.index} but the topic's is ${want ? want.index : 'absent'}${want && want.index === seen.index ? ' (other bytes)' : seen.index > (want?.index ?? -1n) ? ' (a gap)' : ''}`,
            indexes: want ? [want.index, seen.index] : [seen.index],
          });
          break;
        }
      }
    }
  }
  for (const probe of input.probes) if (!probe.ok) violations.push({ check: probe.check, message: probe.detail, indexes: [], at: probe.at });
  return { violations, acked, lost: lost.size, duplicated: duplicated.size };
}

function firstDifference(a: NodeTopic['messages'], b: NodeTopic['messages']): { position: number; indexes: bigint[] } {
  const n = Math.max(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a[i];
    const y = b[i];
    if (!x || !y || x.index !== y.index || !Buffer.from(x.data).equals(Buffer.from(y.data))) {
      return { position: i, indexes: [x?.index, y?.index].filter((v): v is bigint => v !== undefined) };
    }
  }
  return { position: n, indexes: [] };
}
