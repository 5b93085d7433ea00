import { describe, expect, it } from '@jest/globals';
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
    await t.broker.heartbeat(1n, 12n);
    const { firstIndex } = topic(t.broker, 1n);
    expect(firstIndex).toBeGreaterThan(1n);
    const error = await readError(t.broker, 1n, 1n);
    expect(isBrokerError(error, 'SEGMENT_RECLAIMED')).toBe(true);
    expect((error as BrokerError).firstIndex).toBe(firstIndex);
    expect((await readAll((await t.broker.openTopicReader(1n, firstIndex)).messages()))[0]?.[0]).toBe(firstIndex);
  });

  it('counts the 16-byte reports of the original protocol as one anonymous reader', async () => {
    await using t = await openTestBroker({ maxSegmentSize: 128 });
    for (let i = 1; i <= 10; i++) await t.broker.publish(text(1n, `message-${String(i).padStart(3, '0')}`));
    await t.broker.heartbeat(1n, 3n);
    await t.broker.heartbeat(1n, 2n);
    expect(t.broker.status().topics[0]?.readers).toEqual([{ id: '', index: 3n }]);
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
