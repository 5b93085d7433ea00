import { describe, expect, it } from '@jest/globals';
import { readdir } from 'node:fs/promises';
import { NodeFileSystem, type FileHandle, type OpenOptions } from '@msg/segments';
import { FakeClock, waitFor } from '@msg/test-utils';
import { SNAPSHOT_HOLD_MS } from '../src/broker.js';
import { isBrokerStateError } from '../src/errors.js';
import { encodeSnapshotHeader } from '../src/snapshot-format.js';
import { concat, openTestBroker, readAll, text } from './helpers.js';
import type { Broker } from '../src/broker.js';

async function contents(broker: Broker): Promise<Map<bigint, [bigint, string][]>> {
  const out = new Map<bigint, [bigint, string][]>();
  for (const id of broker.topicIDs()) out.set(id, await readAll((await broker.openTopicReader(id, broker.status().topics.find((t) => t.id === id)!.firstIndex)).messages()));
  return out;
}

async function* once(bytes: Uint8Array): AsyncGenerator<Uint8Array> {
  yield bytes;
}

function upTo(all: Map<bigint, [bigint, string][]>, index: bigint): Map<bigint, [bigint, string][]> {
  const out = new Map<bigint, [bigint, string][]>();
  for (const [id, list] of all) {
    const kept = list.filter(([i]) => i <= index);
    if (kept.length > 0) out.set(id, kept);
  }
  return out;
}

describe('Broker snapshot and restore', () => {
  it('streams a consistent snapshot while writes and reclamation continue, and a new broker catches up from it', async () => {
    await using a = await openTestBroker({ maxSegmentSize: 256 });
    for (let i = 0; i < 30; i++) await a.broker.publish(text(BigInt(1 + (i % 3)), `before-${i}-${'x'.repeat(i)}`));
    await a.broker.heartbeat(1n, 4n, undefined, 'slow');
    const before = await contents(a.broker);
    const stream = await a.broker.snapshot();
    const snapIndex = a.broker.status().appliedIndex;
    expect(a.broker.appliedIndex()).toBe(snapIndex);
    // Writes continue; every reader of topic 1 moves on: its old segments are deleted once the snapshot is read.
    for (let i = 0; i < 30; i++) await a.broker.publish(text(BigInt(1 + (i % 4)), `after-${i}`));
    await a.broker.heartbeat(1n, a.broker.lastIndex(1n), undefined, 'slow');
    expect(a.broker.status().counters.segmentsReclaimed).toBe(0);

    await using b = await openTestBroker();
    await b.broker.restore(stream, snapIndex);
    await waitFor(() => a.broker.status().counters.segmentsReclaimed > 0);
    expect(b.broker.appliedIndex()).toBe(snapIndex);
    expect(await contents(b.broker)).toEqual(upTo(before, BigInt(snapIndex)));
    expect(b.broker.status().topics.find((t) => t.id === 1n)?.readers).toEqual([{ id: 'slow', index: 4n }]);

    // Catch up: apply the entries after the snapshot, as raft would (in one batch: segment
    // boundaries, so what reclamation can delete, differ between replicas; messages do not).
    await a.log.replayAfter(snapIndex, b.broker);
    const all = await contents(a.broker);
    const caughtUp = await contents(b.broker);
    expect([...caughtUp.keys()]).toEqual([...all.keys()]);
    for (const [id, list] of all) expect(caughtUp.get(id)!.filter(([i]) => i >= list[0]![0])).toEqual(list);
    expect(b.broker.status().appliedIndex).toBe(a.broker.status().appliedIndex);
    expect(b.broker.status().topics.find((t) => t.id === 1n)?.readers).toEqual([{ id: 'slow', index: a.broker.lastIndex(1n) }]);
  });

  it('restores a snapshot of a restored broker to the same bytes', async () => {
    await using a = await openTestBroker({ maxSegmentSize: 200 });
    for (let i = 0; i < 12; i++) await a.broker.publish(text(5n, `m-${i}`));
    await using b = await openTestBroker();
    await b.broker.restore(await a.broker.snapshot(), 12);
    await using c = await openTestBroker();
    await c.broker.restore(await b.broker.snapshot(), 12);
    expect(await concat(await c.broker.openTopicReader(5n, 0n))).toEqual(await concat(await a.broker.openTopicReader(5n, 0n)));
  });

  it('survives a restart after a restore, and removes the previous state folder', async () => {
    await using a = await openTestBroker();
    await a.broker.publish(text(5n, 'x'));
    const b = await openTestBroker();
    await b.broker.publish(text(6n, 'old'));
    await b.broker.restore(await a.broker.snapshot(), 1);
    expect(b.broker.topicIDs()).toEqual([5n]);
    await b.broker.close();
    expect((await readdir(b.dir)).sort()).toEqual(['meta', 'state-2']);
    await using again = await openTestBroker({ dir: b.dir });
    expect(again.broker.appliedIndex()).toBe(1);
    expect(await readAll((await again.broker.openTopicReader(5n, 0n)).messages())).toEqual([[1n, 'x']]);
  });

  it('keeps the previous state when a snapshot is corrupt', async () => {
    await using a = await openTestBroker();
    await a.broker.publish(text(5n, 'x'));
    const good = await concat(await a.broker.snapshot());
    await using b = await openTestBroker();
    await b.broker.publish(text(6n, 'mine'));
    const attempts: Uint8Array[] = [good.subarray(0, good.byteLength - 3), Buffer.concat([good, Buffer.from('zz')]), Buffer.from('garbage!')];
    for (const bytes of attempts) {
      let caught: unknown;
      try {
        await b.broker.restore(once(bytes), 9);
      } catch (error) {
        caught = error;
      }
      expect(isBrokerStateError(caught, 'CORRUPT_SNAPSHOT')).toBe(true);
    }
    expect(b.broker.topicIDs()).toEqual([6n]);
    expect(await b.broker.publish(text(6n, 'still'))).toBe(2n);
    expect((await readdir(b.dir)).filter((n) => n.startsWith('state-'))).toEqual(['state-1']);
  });

  it('ends streaming readers of the replaced state, and wakes readers waiting for a restored topic', async () => {
    await using a = await openTestBroker();
    await a.broker.publish(text(5n, 'x'));
    await using b = await openTestBroker();
    await b.broker.publish(text(6n, 'old'));
    const old = readAll((await b.broker.openTopicReader(6n, 0n, { streaming: true })).messages());
    const waiting = await b.broker.openTopicReader(5n, 0n, { streaming: true });
    const first = (async () => {
      for await (const m of waiting.messages()) return m.index;
      return undefined;
    })();
    await b.broker.restore(await a.broker.snapshot(), 1);
    expect(await old).toEqual([[1n, 'old']]);
    expect(await first).toBe(1n);
    await waiting.close();
  });

  it('restores an empty snapshot to an empty broker', async () => {
    await using b = await openTestBroker();
    await b.broker.publish(text(6n, 'old'));
    const empty = encodeSnapshotHeader({ index: 3, topics: [], readers: new Map() });
    await b.broker.restore(once(empty), 3);
    expect(b.broker.topicIDs()).toEqual([]);
    expect(b.broker.appliedIndex()).toBe(3);
  });

  it('holds no file open per segment: a snapshot of many topics opens one segment at a time', async () => {
    const fs = new CountingFileSystem();
    await using a = await openTestBroker({ fs });
    for (let id = 1n; id <= 40n; id++) await a.broker.publish(text(id, `m${id}`));
    const before = fs.handles;
    const stream = await a.broker.snapshot();
    expect(fs.handles - before).toBeLessThanOrEqual(1);
    let peak = 0;
    const chunks: Uint8Array[] = [];
    for await (const chunk of stream) {
      chunks.push(chunk);
      peak = Math.max(peak, fs.handles - before);
    }
    expect(peak).toBeLessThanOrEqual(1);
    expect(fs.handles).toBe(before);
    await using b = await openTestBroker();
    await b.broker.restore(once(Buffer.concat(chunks)), a.broker.appliedIndex());
    expect(await contents(b.broker)).toEqual(await contents(a.broker));
  });

  it('lets reclamation wait for a snapshot that is being read, not for one left unread', async () => {
    const clock = new FakeClock(1_000);
    await using a = await openTestBroker({ clock, maxSegmentSize: 256 });
    for (let i = 0; i < 30; i++) await a.broker.publish(text(1n, `m-${i}-${'x'.repeat(i)}`));
    const stream = await a.broker.snapshot();
    await a.broker.heartbeat(1n, a.broker.lastIndex(1n), undefined, 'r');
    expect(a.broker.status().counters.segmentsReclaimed).toBe(0);
    // Nobody reads the stream: after the hold expires, the next report reclaims.
    clock.advance(SNAPSHOT_HOLD_MS + 1);
    await a.broker.publish(text(1n, 'later'));
    await a.broker.heartbeat(1n, a.broker.lastIndex(1n), undefined, 'r');
    expect(a.broker.status().counters.segmentsReclaimed).toBeGreaterThan(0);
    void stream;
  });
});

/** The real file system, counting the handles open now. */
class CountingFileSystem extends NodeFileSystem {
  handles = 0;

  override async open(path: string, options?: OpenOptions): Promise<FileHandle> {
    const handle = await super.open(path, options);
    this.handles++;
    const close = handle.close.bind(handle);
    let closed = false;
    handle.close = async () => {
      if (!closed) this.handles--;
      closed = true;
      await close();
    };
    return handle;
  }
}
