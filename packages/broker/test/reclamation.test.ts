import { describe, expect, it } from '@jest/globals';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { type BrokerError, isBrokerError } from '@msg/wire';
import { FakeClock, sleep, waitFor } from '@msg/test-utils';
import { openTestBroker, readAll, text } from './helpers.js';
import type { Broker } from '../src/broker.js';

async function readError(broker: Broker, topicID: bigint, from: bigint): Promise<unknown> {
  try {
    const reader = await broker.openTopicReader(topicID, from);
    await readAll(reader.messages());
  } catch (error) {
    return error;
  }
  return undefined;
}

function topic(broker: Broker, id: bigint): { firstIndex: bigint; lastIndex: bigint; segments: number; bytes: number } {
  return broker.status().topics.find((t) => t.id === id)!;
}

describe('Broker reclamation', () => {
  it('reclaims the segments every registered reader has stored, never the active one', async () => {
    await using t = await openTestBroker({ maxSegmentSize: 128 });
    for (let i = 1; i <= 20; i++) await t.broker.publish(text(1n, `message-${String(i).padStart(3, '0')}`));
    const segments = topic(t.broker, 1n).segments;
    expect(segments).toBeGreaterThan(4);

    await t.broker.heartbeat(1n, 15n, undefined, 'a');
    const afterA = topic(t.broker, 1n);
    expect(afterA.firstIndex).toBeGreaterThan(1n);
    expect(afterA.firstIndex).toBeLessThanOrEqual(16n);

    // A second reader that lags holds back further reclamation.
    await t.broker.heartbeat(1n, 16n, undefined, 'b');
    await t.broker.heartbeat(1n, 20n, undefined, 'a');
    expect(topic(t.broker, 1n).firstIndex).toBeLessThanOrEqual(17n);
    await t.broker.heartbeat(1n, 20n, undefined, 'b');
    const last = topic(t.broker, 1n);
    expect(last.segments).toBeGreaterThanOrEqual(1);
    expect(last.lastIndex).toBe(20n);
    expect(await readAll((await t.broker.openTopicReader(1n, 20n)).messages())).toEqual([[20n, 'message-020']]);
    expect(t.logger.lines.some((l) => l.msg === 'reclaimed segments every reader has stored')).toBe(true);
  });

  it('answers a read below the first retained index with SEGMENT_RECLAIMED and that index', async () => {
    await using t = await openTestBroker({ maxSegmentSize: 128 });
    for (let i = 1; i <= 12; i++) await t.broker.publish(text(1n, `message-${String(i).padStart(3, '0')}`));
    await t.broker.heartbeat(1n, 12n, undefined, 'r');
    const { firstIndex } = topic(t.broker, 1n);
    expect(firstIndex).toBeGreaterThan(1n);
    const error = await readError(t.broker, 1n, 1n);
    expect(isBrokerError(error, 'SEGMENT_RECLAIMED')).toBe(true);
    expect((error as BrokerError).firstIndex).toBe(firstIndex);
    expect((await readAll((await t.broker.openTopicReader(1n, firstIndex)).messages()))[0]?.[0]).toBe(firstIndex);
  });

  it('keeps the data a slow identified reader still needs when a fast one reports far ahead', async () => {
    await using t = await openTestBroker({ maxSegmentSize: 128 });
    for (let i = 1; i <= 50; i++) await t.broker.publish(text(1n, `message-${String(i).padStart(3, '0')}`));
    expect(topic(t.broker, 1n).segments).toBeGreaterThan(10);

    await t.broker.heartbeat(1n, 4n, undefined, 'b');
    await t.broker.heartbeat(1n, 42n, undefined, 'a');
    expect(topic(t.broker, 1n).firstIndex).toBeLessThanOrEqual(5n);
    const fromB = await readAll((await t.broker.openTopicReader(1n, 5n)).messages());
    expect(fromB.map(([i]) => i)).toEqual(Array.from({ length: 46 }, (_, i) => BigInt(5 + i)));

    // B moves past some segments: those go, what B still needs stays.
    await t.broker.heartbeat(1n, 30n, undefined, 'b');
    const after = topic(t.broker, 1n);
    expect(after.firstIndex).toBeGreaterThan(5n);
    expect(after.firstIndex).toBeLessThanOrEqual(31n);
    expect(isBrokerError(await readError(t.broker, 1n, 5n), 'SEGMENT_RECLAIMED')).toBe(true);
    expect((await readAll((await t.broker.openTopicReader(1n, 31n)).messages()))[0]?.[0]).toBe(31n);
    expect(t.broker.status().topics[0]?.readers).toEqual([
      { id: 'b', index: 30n },
      { id: 'a', index: 42n },
    ]);
  });

  it('records the 16-byte reports of the original protocol as the anonymous report, which reclaims nothing by itself', async () => {
    const clock = new FakeClock(1_700_000_000_000);
    await using t = await openTestBroker({ clock, maxSegmentSize: 128 });
    for (let i = 1; i <= 12; i++) await t.broker.publish(text(1n, `message-${String(i).padStart(3, '0')}`));
    const segments = topic(t.broker, 1n).segments;
    await t.broker.heartbeat(1n, 10n);
    clock.advance(5_000);
    await t.broker.heartbeat(1n, 3n); // lower: the highest stays, and when it was reported
    expect(topic(t.broker, 1n)).toMatchObject({ firstIndex: 1n, segments });
    expect(t.broker.status().counters.segmentsReclaimed).toBe(0);
    expect(t.broker.status().topics[0]).toMatchObject({ readers: [], anonymous: { index: 10n, atMs: 1_700_000_000_000 } });
    expect(await readAll((await t.broker.openTopicReader(1n, 1n)).messages())).toHaveLength(12);

    await t.broker.heartbeat(1n, 12n);
    expect(t.broker.status().topics[0]?.anonymous).toEqual({ index: 12n, atMs: 1_700_000_005_000 });

    // With an identified reader, what every reader has passed goes.
    await t.broker.heartbeat(1n, 11n, undefined, 'a');
    expect(topic(t.broker, 1n).firstIndex).toBeGreaterThan(1n);
    expect(topic(t.broker, 1n).firstIndex).toBeLessThanOrEqual(12n);
    expect(t.broker.status().topics[0]?.readers).toEqual([{ id: 'a', index: 11n }]);
  });

  it('keeps readers reports and reclaimed state across a restart', async () => {
    const t = await openTestBroker({ maxSegmentSize: 128 });
    for (let i = 1; i <= 10; i++) await t.broker.publish(text(1n, `message-${String(i).padStart(3, '0')}`));
    await t.broker.heartbeat(1n, 9n, undefined, 'r');
    const before = topic(t.broker, 1n);
    await t.broker.close();
    await using again = await openTestBroker({ dir: t.dir, maxSegmentSize: 128 });
    expect(topic(again.broker, 1n).firstIndex).toBe(before.firstIndex);
    expect(again.broker.status().topics[0]?.readers).toEqual([{ id: 'r', index: 9n }]);
  });

  it('keeps the anonymous report apart from the readers through a snapshot, a restore and a restart', async () => {
    await using a = await openTestBroker({ maxSegmentSize: 128 });
    for (let i = 1; i <= 12; i++) await a.broker.publish(text(1n, `message-${String(i).padStart(3, '0')}`));
    await a.broker.heartbeat(1n, 9n);
    await a.broker.heartbeat(1n, 2n, undefined, 'slow');
    const stream = await a.broker.snapshot();
    const index = a.broker.status().appliedIndex;

    const b = await openTestBroker({ maxSegmentSize: 128 });
    await b.broker.restore(stream, index);
    const restored = b.broker.status().topics[0]!;
    expect(restored.readers).toEqual([{ id: 'slow', index: 2n }]);
    expect(restored.anonymous?.index).toBe(9n);
    await b.broker.close();
    await using again = await openTestBroker({ dir: b.dir, maxSegmentSize: 128 });
    expect(again.broker.status().topics[0]).toMatchObject({ firstIndex: restored.firstIndex, readers: [{ id: 'slow', index: 2n }], anonymous: { index: 9n } });
    expect(restored.firstIndex).toBeLessThanOrEqual(3n);
  });

  it('loads the anonymous reader of an existing meta file as the anonymous report, which reclaims nothing', async () => {
    const t = await openTestBroker({ maxSegmentSize: 128 });
    for (let i = 1; i <= 12; i++) await t.broker.publish(text(1n, `message-${String(i).padStart(3, '0')}`));
    await t.broker.close();
    // As written before reports were split: the anonymous reader is the id ''.
    const path = join(t.dir, 'meta');
    // (and before meta had its checksum line: a version 1 file).
    const meta = JSON.parse((await readFile(path, 'utf8')).split('\n')[0]!) as { version: number; readers: Record<string, Record<string, string>> };
    meta.version = 1;
    meta.readers = { '1': { '': '11' } };
    await writeFile(path, JSON.stringify(meta));
    await using again = await openTestBroker({ dir: t.dir, maxSegmentSize: 128 });
    expect(again.broker.status().topics[0]).toMatchObject({ firstIndex: 1n, readers: [], anonymous: { index: 11n } });
    again.log.base = again.broker.appliedIndex(); // the raft log continues after the state
    await again.broker.heartbeat(1n, 12n);
    expect(again.broker.status().topics[0]).toMatchObject({ firstIndex: 1n, anonymous: { index: 12n } });
  });
});

describe('Broker retention', () => {
  it('drops the oldest segments beyond the size limit', async () => {
    await using t = await openTestBroker({ maxSegmentSize: 128, retention: { maxBytes: 600 } });
    for (let i = 1; i <= 40; i++) await t.broker.publish(text(1n, `message-${String(i).padStart(3, '0')}`));
    const before = topic(t.broker, 1n);
    expect(before.bytes).toBeGreaterThan(600);
    const deleted = await t.broker.enforceRetention();
    expect(deleted).toBeGreaterThan(0);
    const after = topic(t.broker, 1n);
    expect(after.bytes).toBeLessThanOrEqual(600);
    expect(after.lastIndex).toBe(40n);
    expect(t.broker.status().counters.segmentsReclaimed).toBe(deleted);
  });

  it('drops segments older than the age limit on its timer', async () => {
    const clock = new FakeClock(1_000_000);
    await using t = await openTestBroker({ clock, maxSegmentSize: 128, retention: { maxAgeMs: 60_000 }, retentionIntervalMs: 10_000 });
    for (let i = 1; i <= 10; i++) await t.broker.publish(text(1n, `message-${String(i).padStart(3, '0')}`));
    clock.advance(30_000);
    await sleep(20);
    expect(topic(t.broker, 1n).firstIndex).toBe(1n);
    clock.advance(60_000);
    await waitFor(() => t.broker.status().counters.segmentsReclaimed > 0);
    // Every sealed segment is older than the limit; the active one (9, 10) stays.
    expect(topic(t.broker, 1n).firstIndex).toBe(9n);
    expect(topic(t.broker, 1n).lastIndex).toBe(10n);
    expect(t.logger.lines.some((l) => l.msg === 'retention reclaimed segments')).toBe(true);
  });

  it('does nothing without a retention policy', async () => {
    await using t = await openTestBroker({ maxSegmentSize: 128 });
    for (let i = 1; i <= 10; i++) await t.broker.publish(text(1n, `message-${String(i).padStart(3, '0')}`));
    expect(await t.broker.enforceRetention()).toBe(0);
    expect(topic(t.broker, 1n).firstIndex).toBe(1n);
  });
});
