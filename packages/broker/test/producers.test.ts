import { describe, expect, it } from '@jest/globals';
import { isBrokerError, type BrokerError } from '@msg/wire';
import { Broker } from '../src/broker.js';
import { ProducerTable } from '../src/producers.js';
import { FakeLog, openTestBroker, readAll, text } from './helpers.js';

function produced(topicID: bigint, data: string, id: string, seq: bigint) {
  return { ...text(topicID, data), producer: { id, seq } };
}

async function refusal(promise: Promise<unknown>): Promise<BrokerError> {
  try {
    await promise;
  } catch (error) {
    if (isBrokerError(error)) return error;
    throw error;
  }
  throw new Error('expected a BrokerError');
}

describe('ProducerTable', () => {
  it('accepts the next sequence, finds duplicates in the window, and names gaps and sequences too old', () => {
    const table = new ProducerTable({ maxRuns: 2 });
    expect(table.check('p', 5n)).toEqual({ kind: 'new' });
    table.accept('p', 5n, 10n);
    table.accept('p', 6n, 11n); // same run: consecutive sequence at the consecutive index
    table.accept('p', 7n, 20n); // a new run
    table.accept('p', 8n, 30n); // a third run: the first (5, 6) leaves the window
    expect(table.next('p')).toBe(9n);
    expect(table.check('p', 9n)).toEqual({ kind: 'new' });
    expect(table.check('p', 8n)).toEqual({ kind: 'duplicate', index: 30n });
    expect(table.check('p', 7n)).toEqual({ kind: 'duplicate', index: 20n });
    expect(table.check('p', 6n)).toEqual({ kind: 'old', next: 9n });
    expect(table.check('p', 11n)).toEqual({ kind: 'gap', next: 9n });
    expect(table.check('other', 1234n)).toEqual({ kind: 'new' });
  });

  it('forgets the producer that published least recently beyond its bound, and keeps that order through JSON', () => {
    const table = new ProducerTable({ maxProducers: 2 });
    table.accept('a', 0n, 1n);
    table.accept('b', 0n, 2n);
    table.accept('a', 1n, 3n); // a is now the most recent
    table.accept('c', 0n, 4n); // b goes
    expect([table.next('a'), table.next('b'), table.next('c')]).toEqual([2n, undefined, 1n]);
    expect(table.forgotten).toBe(1);
    const copy = new ProducerTable({ maxProducers: 2 });
    copy.load(JSON.parse(JSON.stringify(table.toJSON())), (why) => new Error(why));
    copy.accept('d', 0n, 5n); // a is the least recent in the copy too
    expect([copy.next('a'), copy.next('c'), copy.next('d')]).toEqual([undefined, 1n, 1n]);
  });

  it('refuses malformed JSON', () => {
    const table = new ProducerTable();
    const bad = (why: string) => new Error(`bad: ${why}`);
    expect(() => table.load({}, bad)).toThrow('bad: producers is not a list');
    expect(() => table.load([['p', '1', ['1', '2']]], bad)).toThrow('bad: bad producer');
    expect(() => table.load([['p', 'x', []]], bad)).toThrow('bad: bad u64');
    expect(() => table.load([['p', '1', ['1', '2', 0]]], bad)).toThrow('bad: bad run of producer p');
  });
});

describe('Broker: exactly-once publish', () => {
  it('commits a (producer, sequence) once: a retry gets the original index and writes nothing', async () => {
    await using t = await openTestBroker();
    expect(await t.broker.publish(produced(1n, 'a', 'p1', 0n))).toBe(1n);
    expect(await t.broker.publish(produced(1n, 'b', 'p1', 1n))).toBe(2n);
    // The leader answers a retry from its table, without a new entry.
    const entries = t.log.entries.length;
    expect(await t.broker.publish(produced(1n, 'a', 'p1', 0n))).toBe(1n);
    expect(t.log.entries.length).toBe(entries);
    expect(await readAll((await t.broker.openTopicReader(1n, 0n)).messages())).toEqual([
      [1n, 'a'],
      [2n, 'b'],
    ]);
    expect(t.broker.producerNext('p1')).toBe(2n);
    expect(t.broker.metrics().producers).toMatchObject({ held: 1, duplicates: 1 });
  });

  it('deduplicates on apply a retry whose original was still in flight when it was proposed', async () => {
    await using t = await openTestBroker();
    // Two entries of the same (producer, sequence) reach the log: as when a retry races its original.
    const [a, b] = await Promise.all([t.broker.publish(produced(3n, 'x', 'p', 7n)), t.broker.publish(produced(3n, 'x', 'p', 7n))]);
    expect([a, b]).toEqual([1n, 1n]);
    expect(t.log.entries.length).toBe(2);
    expect(await readAll((await t.broker.openTopicReader(3n, 0n)).messages())).toEqual([[1n, 'x']]);
  });

  it('refuses a sequence that skips ahead, and one below the window, naming the sequence expected; nothing is written', async () => {
    await using t = await openTestBroker({ producers: { maxRuns: 1 } });
    await t.broker.publish(produced(1n, 'a', 'p', 0n));
    await t.broker.publish(produced(2n, 'other topic', 'q', 0n));
    await t.broker.publish(produced(1n, 'b', 'p', 1n)); // not at the next index: a run of its own, the window's only one
    const gap = await refusal(t.broker.publish(produced(1n, 'c', 'p', 5n)));
    expect(gap.code).toBe('SEQUENCE_GAP');
    expect(gap.status).toBe(409);
    expect(gap.producerNext).toBe(2n);
    const old = await refusal(t.broker.publish(produced(1n, 'a', 'p', 0n)));
    expect(old.code).toBe('SEQUENCE_TOO_OLD');
    expect(old.producerNext).toBe(2n);
    expect(await readAll((await t.broker.openTopicReader(1n, 0n)).messages())).toEqual([
      [1n, 'a'],
      [3n, 'b'],
    ]);
    expect(t.broker.metrics().producers.refused).toBe(1); // the gap reached the log; the old one was refused before it
  });

  it('answers a batch whose first messages were committed before with every message’s index', async () => {
    await using t = await openTestBroker();
    // A first attempt committed only a prefix of the batch (as a leader that failed mid-batch can leave it).
    await t.broker.publishBatch([produced(1n, 'm0', 'p', 0n), produced(1n, 'm1', 'p', 1n)]);
    await t.broker.publish(text(1n, 'someone else'));
    const range = await t.broker.publishBatch([0n, 1n, 2n, 3n].map((seq) => produced(1n, `m${seq}`, 'p', seq)));
    // The whole batch is logged (indexes 4 to 7); the first two entries are duplicates and write nothing.
    expect(range).toEqual({ firstIndex: 1n, lastIndex: 7n, duplicates: 2, indexes: [1n, 2n, 6n, 7n] });
    // A retry of the whole batch is answered from the table.
    const entries = t.log.entries.length;
    expect(await t.broker.publishBatch([0n, 1n, 2n, 3n].map((seq) => produced(1n, `m${seq}`, 'p', seq)))).toEqual({ ...range, duplicates: 4 });
    expect(t.log.entries.length).toBe(entries);
    expect((await readAll((await t.broker.openTopicReader(1n, 0n)).messages())).map(([, d]) => d)).toEqual(['m0', 'm1', 'someone else', 'm2', 'm3']);
  });

  it('rejects a malformed producer before anything is logged, and serves messages without one as before', async () => {
    await using t = await openTestBroker();
    for (const id of ['', 'x'.repeat(65), 'has space', 'a/']) {
      expect((await refusal(t.broker.publish(produced(1n, 'a', id, 0n)))).code).toBe('INVALID_PRODUCER');
    }
    expect((await refusal(t.broker.publish(produced(1n, 'a', 'p', 2n ** 64n)))).code).toBe('INVALID_PRODUCER');
    expect(t.log.entries.length).toBe(0);
    expect(await t.broker.publish(text(1n, 'plain'))).toBe(1n);
    expect(await t.broker.publish(text(1n, 'plain'))).toBe(2n);
  });

  it('keeps the table through a restart (meta) and rebuilds it from the log entries after the checkpoint', async () => {
    await using t = await openTestBroker({ checkpointIntervalMs: 0 });
    await t.broker.publish(produced(1n, 'a', 'p', 0n));
    await t.broker.publish(produced(1n, 'b', 'p', 1n));
    await t.broker.close();
    const again = new Broker({ dir: t.dir });
    const log = new FakeLog(again);
    log.entries.push(...t.log.entries);
    again.attachLog(log);
    await again.open();
    try {
      expect(again.producerNext('p')).toBe(2n);
      expect(await again.publish(produced(1n, 'b', 'p', 1n))).toBe(2n);
      expect(await again.publish(produced(1n, 'c', 'p', 2n))).toBe(3n);
    } finally {
      await again.close();
    }
  });

  it('rebuilds the table by re-applying entries the checkpoint did not cover', async () => {
    // Checkpoints only by hand: the entries stay behind meta's applied index.
    await using t = await openTestBroker({ checkpointIntervalMs: 3_600_000 });
    await t.broker.publish(produced(1n, 'a', 'p', 0n));
    await t.broker.publish(produced(1n, 'b', 'p', 1n));
    const covered = t.broker.appliedIndex();
    await t.broker[Symbol.asyncDispose]();
    const again = new Broker({ dir: t.dir, checkpointIntervalMs: 3_600_000 });
    const log = new FakeLog(again);
    log.entries.push(...t.log.entries);
    again.attachLog(log);
    await again.open();
    try {
      await log.replayAfter(again.appliedIndex());
      expect(covered).toBeLessThanOrEqual(2);
      expect(again.producerNext('p')).toBe(2n);
      expect(await again.publish(produced(1n, 'a', 'p', 0n))).toBe(1n);
    } finally {
      await again.close();
    }
  });

  it('carries the table in snapshots', async () => {
    await using a = await openTestBroker();
    await using b = await openTestBroker();
    await a.broker.publish(produced(1n, 'a', 'p', 0n));
    await b.broker.restore(await a.broker.snapshot(), 1);
    expect(b.broker.producerNext('p')).toBe(1n);
    b.log.base = 1;
    expect(await b.broker.publish(produced(1n, 'a', 'p', 0n))).toBe(1n);
    expect(await b.broker.publish(produced(1n, 'b', 'p', 1n))).toBe(2n);
  });
});
