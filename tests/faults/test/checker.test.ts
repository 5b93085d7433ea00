import { describe, expect, it } from '@jest/globals';
import { encodeFrame } from '@msg/wire';
import { check, type CheckInput, type NodeTopic } from '../src/checker.js';
import type { Seen } from '../src/consumers.js';
import type { Ack, Ledger } from '../src/publishers.js';
import { formatSummary, quantile, summarize } from '../src/summary.js';

const enc = new TextEncoder();

function topic(node: string, entries: readonly [bigint, string][]): NodeTopic {
  const messages = entries.map(([index, text]) => ({ index, data: enc.encode(text) }));
  const bytes = Buffer.concat(messages.map((m) => Buffer.from(encodeFrame({ type: 1, topicID: 1n, data: m.data }, m.index))));
  return { node, bytes, messages };
}

function ledger(kind: 'raw' | 'client', acked: readonly [string, bigint][], sent: readonly string[] = []): Ledger {
  const map = new Map<string, Ack>(acked.map(([payload, index]) => [payload, { payload, index, startedAt: 1000, endedAt: 2000 }]));
  return { kind, topicID: 1n, acked: map, sent: new Set([...map.keys(), ...sent]), failed: 0, lastFailures: [] };
}

const seen = (entries: readonly [bigint, string][]): Seen[] => entries.map(([index, text]) => ({ index, data: Buffer.from(text) }));

function input(nodes: NodeTopic[], ledgers: Ledger[], consumed: Seen[] = []): CheckInput {
  return { topics: [{ topicID: 1n, nodes, ledgers, consumers: [{ name: 'c', seen: consumed }] }], probes: [] };
}

const good: [bigint, string][] = [
  [3n, 'a'],
  [5n, 'b'],
  [6n, 'c'],
];

describe('check', () => {
  it('passes a converged cluster with every acknowledged publish in place', () => {
    const result = check(input([topic('n1', good), topic('n2', good)], [ledger('raw', [['a', 3n], ['c', 6n]], ['b', 'lost-answer'])], seen(good.slice(0, 2))));
    expect(result.violations).toEqual([]);
    expect(result).toMatchObject({ acked: 2, lost: 0, duplicated: 0 });
  });

  it('finds an acknowledged publish missing on one node, or at another index', () => {
    const result = check(input([topic('n1', good), topic('n2', [[3n, 'a'], [5n, 'b']]), topic('n3', [[3n, 'a'], [5n, 'b'], [7n, 'c']])], [ledger('raw', [['c', 6n]], ['a', 'b'])]));
    const checks = result.violations.map((v) => v.check);
    expect(checks).toContain('identical-frames');
    expect(result.violations.filter((v) => v.check === 'acked-present').map((v) => v.indexes)).toEqual([[6n], [6n, 7n]]);
    expect(result.lost).toBe(1);
    expect(result.violations.find((v) => v.check === 'acked-present')?.at).toBe(2000);
  });

  it('finds a raw payload twice and a payload never sent; counts a client duplicate without failing', () => {
    const twice: [bigint, string][] = [...good, [7n, 'a'], [8n, 'ghost']];
    const raw = check(input([topic('n1', twice)], [ledger('raw', [['a', 3n]], ['b', 'c'])]));
    expect(raw.violations.map((v) => v.check).sort()).toEqual(['exactly-once', 'never-sent']);
    expect(raw.violations.find((v) => v.check === 'exactly-once')?.indexes).toEqual([3n, 7n]);
    const client = check(input([topic('n1', [...good, [7n, 'a']])], [ledger('client', [['a', 3n]], ['b', 'c'])]));
    expect(client.violations).toEqual([]);
    expect(client.duplicated).toBe(1);
  });

  it('finds a consumer that skipped, repeated or reordered an index', () => {
    const nodes = [topic('n1', good)];
    const led = [ledger('raw', [], ['a', 'b', 'c'])];
    const gap = check(input(nodes, led, seen([[3n, 'a'], [6n, 'c']])));
    expect(gap.violations).toMatchObject([{ check: 'consumer-order', indexes: [5n, 6n] }]);
    const dup = check(input(nodes, led, seen([[3n, 'a'], [3n, 'a']])));
    expect(dup.violations).toMatchObject([{ check: 'consumer-order', indexes: [3n, 3n] }]);
    const bytes = check(input(nodes, led, seen([[3n, 'x']])));
    expect(bytes.violations[0]?.message).toContain('other bytes');
  });

  it('turns a failed probe into a violation', () => {
    const result = check({ topics: [], probes: [{ check: 'minority-publish', ok: false, detail: 'hung', at: 5 }, { check: 'catch-up', ok: true, detail: 'fine', at: 6 }] });
    expect(result.violations).toEqual([{ check: 'minority-publish', message: 'hung', indexes: [], at: 5 }]);
  });
});

describe('summary', () => {
  it('takes nearest-rank quantiles', () => {
    expect(quantile([], 0.5)).toBe(0);
    expect(quantile([5, 1, 3, 2, 4], 0.5)).toBe(3);
    expect(quantile(Array.from({ length: 100 }, (_v, i) => i + 1), 0.99)).toBe(99);
  });

  it('prints every row of the table', () => {
    const text = formatSummary(summarize([]));
    for (const row of ['faults: kill', 'faults: disk-full', 'publishes acknowledged', 'messages lost (must be 0)', 'messages duplicated', 'leader changes', 'failover p50 / p99 / max', 'longest unavailability']) {
      expect(text).toContain(row);
    }
  });
});
