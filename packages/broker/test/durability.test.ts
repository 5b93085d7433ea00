import { describe, expect, it } from '@jest/globals';
import { appendFile, cp, readdir, rm, stat, truncate } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { FakeClock, makeTempDir, waitFor } from '@msg/test-utils';
import { Broker } from '../src/broker.js';
import { isBrokerStateError } from '../src/errors.js';
import { readMeta } from '../src/meta.js';
import { NodeFileSystem, type FileHandle, type OpenOptions } from '@msg/segments';
import { FaultyFileSystem, segmentOf } from './faulty-fs.js';
import { memoryLogger, openTestBroker, readAll, text } from './helpers.js';

/**
 * Copies a running broker's data dir: what a crash would leave (plus any
 * unsynced bytes). Topic lock files are left out: a crashed process holds none.
 */
async function crashImage(dir: string): Promise<string> {
  const copy = await makeTempDir('msg-broker-crash-');
  await cp(dir, copy, { recursive: true, filter: (source) => basename(source) !== '.lock' });
  return copy;
}

async function stateDir(dir: string): Promise<string> {
  const [state] = (await readdir(dir)).filter((n) => n.startsWith('state-'));
  return join(dir, state!);
}

describe('Broker durability', () => {
  it('resumes at its applied index after a restart', async () => {
    const t = await openTestBroker();
    for (let i = 0; i < 5; i++) await t.broker.publish(text(1n, `m${i}`));
    await t.broker.heartbeat(1n, 2n, undefined, 'r1');
    await t.broker.close();
    const again = new Broker({ dir: t.dir });
    await again.open();
    expect(again.appliedIndex()).toBe(6);
    expect(again.status().topics[0]?.readers).toEqual([{ id: 'r1', index: 2n }]);
    t.log.machine = again;
    again.attachLog(t.log);
    // raft re-applies nothing (everything is durable) and continues at 7
    expect(await again.publish(text(1n, 'after'))).toBe(7n);
    expect((await readAll((await again.openTopicReader(1n, 0n)).messages())).map(([i]) => i)).toEqual([1n, 2n, 3n, 4n, 5n, 7n]);
    await again.close();
  });

  it('re-applying entries it already has is idempotent', async () => {
    await using t = await openTestBroker({ checkpointIntervalMs: 0 });
    for (let i = 0; i < 4; i++) await t.broker.publish(text(1n, `m${i}`));
    await t.log.replayAfter(0);
    expect((await readAll((await t.broker.openTopicReader(1n, 0n)).messages())).map(([i]) => i)).toEqual([1n, 2n, 3n, 4n]);
  });

  it('after a crash, rolls topics back to the checkpoint and gets the rest from the log again', async () => {
    const clock = new FakeClock(1_000);
    const t = await openTestBroker({ clock, checkpointIntervalMs: 1000, maxSegmentSize: 200 });
    for (let i = 0; i < 5; i++) await t.broker.publish(text(1n, `early-${i}`));
    clock.advance(1000); // the checkpoint timer
    await waitFor(() => t.broker.appliedIndex() === 5);
    await t.broker.publish(text(1n, 'checkpointed'));
    const durable = t.broker.appliedIndex();
    expect(durable).toBe(5);
    for (let i = 0; i < 20; i++) await t.broker.publish(text(i % 2 === 0 ? 1n : 2n, `late-${i}`));
    expect(t.broker.appliedIndex()).toBe(durable);
    const image = await crashImage(t.dir);
    await t.broker.close();
    // Unsynced writes may leave garbage after the checkpoint: the rollback never reads it.
    const segments = await readdir(join(await stateDir(image), '1'));
    await appendFile(join(await stateDir(image), '1', segments.sort((a, b) => Number(a) - Number(b)).at(-1)!), Buffer.alloc(100, 0xee));

    const logger = memoryLogger();
    const crashed = new Broker({ dir: image, logger, maxSegmentSize: 200 });
    await crashed.open();
    expect(crashed.appliedIndex()).toBe(durable);
    expect(crashed.lastIndex(1n)).toBe(5n);
    expect(crashed.lastIndex(2n)).toBe(0n);
    expect(logger.lines.some((l) => l.msg === 'removing a topic created after the last checkpoint')).toBe(true);
    await t.log.replayAfter(crashed.appliedIndex(), crashed);
    expect(await readAll((await crashed.openTopicReader(1n, 0n)).messages())).toEqual([
      ...Array.from({ length: 5 }, (_, i): [bigint, string] => [BigInt(i + 1), `early-${i}`]),
      [6n, 'checkpointed'],
      ...Array.from({ length: 10 }, (_, i): [bigint, string] => [BigInt(7 + 2 * i), `late-${2 * i}`]),
    ]);
    expect((await readAll((await crashed.openTopicReader(2n, 0n)).messages())).map(([i]) => i)).toEqual(Array.from({ length: 10 }, (_, i) => BigInt(8 + 2 * i)));
    await crashed.close();
  });

  it('refuses to open with DATA_LOST when a topic holds less than its checkpoint', async () => {
    const t = await openTestBroker({ maxSegmentSize: 200 });
    for (let i = 0; i < 10; i++) await t.broker.publish(text(1n, `m${i}`));
    await t.broker.publish(text(2n, 'other'));
    await t.broker.close();
    const state = await stateDir(t.dir);
    const names = (await readdir(join(state, '1'))).filter((n) => /^[0-9]+$/.test(n)).sort((a, b) => Number(a) - Number(b));
    const active = join(state, '1', names.at(-1)!);
    await truncate(active, (await stat(active)).size - 3);

    const logger = memoryLogger();
    const broken = new Broker({ dir: t.dir, logger });
    let error: unknown;
    try {
      await broken.open();
    } catch (caught) {
      error = caught;
    }
    expect(isBrokerStateError(error, 'DATA_LOST')).toBe(true);
    expect((error as Error).message).toContain(join(state, '1'));
    expect(logger.lines.some((l) => l.level === 'error' && l.msg === 'a topic lost data its checkpoint covers')).toBe(true);

    // A missing topic folder is lost data too.
    await rm(join(state, '1'), { recursive: true });
    await expect(new Broker({ dir: t.dir }).open()).rejects.toMatchObject({ code: 'DATA_LOST' });
  });

  it('writes a checkpoint on a timer when writes stop', async () => {
    const clock = new FakeClock(0);
    await using t = await openTestBroker({ clock, checkpointIntervalMs: 500 });
    await t.broker.publish(text(1n, 'a'));
    await t.broker.publish(text(1n, 'b'));
    expect(t.broker.appliedIndex()).toBe(0);
    clock.advance(500);
    await waitFor(() => t.broker.appliedIndex() === 2, { timeoutMs: 5000 });
  });

  it('checkpoints after every apply with checkpointIntervalMs 0', async () => {
    await using t = await openTestBroker({ checkpointIntervalMs: 0 });
    await t.broker.publish(text(1n, 'a'));
    expect(t.broker.appliedIndex()).toBe(1);
    await t.broker.heartbeat(1n, 1n);
    expect(t.broker.appliedIndex()).toBe(2);
  });
});


describe('Broker storage failures', () => {
  it('fails for good when a checkpoint fsync of a segment fails, never writes meta covering it, and restarts from the old checkpoint', async () => {
    const fs = new FaultyFileSystem();
    const clock = new FakeClock(1_000);
    const t = await openTestBroker({ fs, clock, checkpointIntervalMs: 1000 });
    for (let i = 0; i < 3; i++) await t.broker.publish(text(1n, `durable-${i}`));
    clock.advance(1000);
    await waitFor(() => t.broker.appliedIndex() === 3);
    for (let i = 0; i < 2; i++) await t.broker.publish(text(1n, `lost-${i}`));
    // The fsync fails; a later fsync of the same file (even through a fresh fd) would succeed.
    fs.failNext('sync', segmentOf(1n));
    clock.advance(1000);
    await waitFor(() => fs.pendingFaults === 0);
    await waitFor(() => t.broker.failure !== undefined);
    expect(isBrokerStateError(t.broker.failure, 'STORAGE_FAILED')).toBe(true);
    expect((t.broker.failure as Error).cause).toBeDefined();
    expect(t.broker.appliedIndex()).toBe(3);
    expect((await readMeta(t.dir))?.appliedIndex).toBe(3);
    // No second try: the timer does not checkpoint again, and applies reject.
    clock.advance(5000);
    await expect(t.broker.publish(text(1n, 'after'))).rejects.toMatchObject({ code: 'STORAGE_FAILED' });
    await expect(t.broker.snapshot()).rejects.toMatchObject({ code: 'STORAGE_FAILED' });
    expect((await readMeta(t.dir))?.appliedIndex).toBe(3);
    await t.broker.close().catch(() => undefined);
    expect((await readMeta(t.dir))?.appliedIndex).toBe(3);

    const again = new Broker({ dir: t.dir });
    await again.open();
    expect(again.appliedIndex()).toBe(3); // raft applies 4 and 5 again
    expect(again.lastIndex(1n)).toBe(3n);
    await t.log.replayAfter(again.appliedIndex(), again);
    expect((await readAll((await again.openTopicReader(1n, 0n)).messages())).map(([, s]) => s)).toEqual(['durable-0', 'durable-1', 'durable-2', 'lost-0', 'lost-1', 'after']);
    await again.close();
  });

  it('fails for good when a write fails during apply: that apply and every later one reject', async () => {
    const fs = new FaultyFileSystem();
    await using t = await openTestBroker({ fs });
    await t.broker.publish(text(1n, 'a'));
    fs.failNext('append', segmentOf(1n));
    await expect(t.broker.publish(text(1n, 'b'))).rejects.toMatchObject({ code: 'STORAGE_FAILED' });
    expect(isBrokerStateError(t.broker.failure, 'STORAGE_FAILED')).toBe(true);
    // Another topic, healthy files: still refused.
    await expect(t.broker.publish(text(2n, 'c'))).rejects.toMatchObject({ code: 'STORAGE_FAILED' });
    expect(t.broker.lastIndex(2n)).toBe(0n);
    expect(t.broker.appliedIndex()).toBe(0);
  });

  it('fails for good when an fsync fails while a snapshot is taken', async () => {
    const fs = new FaultyFileSystem();
    await using t = await openTestBroker({ fs });
    await t.broker.publish(text(1n, 'a'));
    fs.failNext('sync', segmentOf(1n));
    await expect(t.broker.snapshot()).rejects.toMatchObject({ code: 'STORAGE_FAILED' });
    expect(isBrokerStateError(t.broker.failure, 'STORAGE_FAILED')).toBe(true);
    expect(t.broker.appliedIndex()).toBe(0);
    await expect(t.broker.snapshot()).rejects.toMatchObject({ code: 'STORAGE_FAILED' });
    await expect(t.broker.publish(text(1n, 'b'))).rejects.toMatchObject({ code: 'STORAGE_FAILED' });
  });

  it('fails for good when an fsync fails during a retention pass', async () => {
    const fs = new FaultyFileSystem();
    await using t = await openTestBroker({ fs, maxSegmentSize: 200, retention: { maxBytes: 1 }, checkpointIntervalMs: 0 });
    for (let i = 0; i < 6; i++) await t.broker.publish(text(1n, `m${i}`.padEnd(100, '.')));
    expect(t.broker.status().topics[0]!.segments).toBeGreaterThan(1);
    // The reclamation's own fsyncs (the mark file, the folder) fail.
    fs.failNext('sync', (path) => path.endsWith('.first-index.tmp'));
    fs.failNext('syncDir', (path) => /\/1$/.test(path));
    await expect(t.broker.enforceRetention()).rejects.toMatchObject({ code: 'STORAGE_FAILED' });
    expect(isBrokerStateError(t.broker.failure, 'STORAGE_FAILED')).toBe(true);
    await expect(t.broker.enforceRetention()).rejects.toMatchObject({ code: 'STORAGE_FAILED' });
    await expect(t.broker.publish(text(1n, 'b'))).rejects.toMatchObject({ code: 'STORAGE_FAILED' });
  });

  it('fails for good when the checkpoint before a retention pass cannot fsync', async () => {
    const fs = new FaultyFileSystem();
    await using t = await openTestBroker({ fs, maxSegmentSize: 200, retention: { maxBytes: 1 }, checkpointIntervalMs: 60_000 });
    for (let i = 0; i < 6; i++) await t.broker.publish(text(1n, `m${i}`.padEnd(100, '.')));
    fs.failNext('sync', segmentOf(1n));
    await expect(t.broker.enforceRetention()).rejects.toMatchObject({ code: 'STORAGE_FAILED' });
    expect(t.broker.appliedIndex()).toBe(0);
    expect(t.broker.status().topics[0]!.firstIndex).toBe(1n); // nothing reclaimed
  });

  it('applies and acknowledges on while a checkpoint is fsyncing, and records the checkpoint once its fsyncs are done', async () => {
    const fs = new FaultyFileSystem();
    const clock = new FakeClock(1_000);
    await using t = await openTestBroker({ fs, clock, checkpointIntervalMs: 1000 });
    await t.broker.publish(text(1n, 'first'));
    clock.advance(1000); // the checkpoint timer
    await waitFor(() => t.broker.appliedIndex() === 1);
    fs.holdSyncs();
    clock.advance(1000); // the next apply starts a checkpoint
    try {
      // The checkpoint after this apply fsyncs the topic (held): the publish is acknowledged all the same.
      const second = t.broker.publish(text(1n, 'second'));
      const answer = await Promise.race([second.then(() => 'acknowledged'), new Promise((resolve) => setTimeout(() => resolve('held back'), 1000))]);
      expect(answer).toBe('acknowledged');
      expect(fs.heldSyncs).toBeGreaterThan(0);
      expect(t.broker.appliedIndex()).toBe(1); // not durable yet: meta still says 1
      expect(await t.broker.publish(text(1n, 'third'))).toBe(3n);
    } finally {
      fs.releaseSyncs();
    }
    await waitFor(() => t.broker.appliedIndex() === 2); // the checkpoint started by the second apply
    clock.advance(1000); // the timer's, for the third
    await waitFor(() => t.broker.appliedIndex() === 3);
    expect((await readAll((await t.broker.openTopicReader(1n, 0n)).messages())).map(([, m]) => m)).toEqual(['first', 'second', 'third']);
  });

  it('starts a checkpoint for raft at a fixed point (the index at once, durable once fsynced), and a failed fsync rejects it', async () => {
    const fs = new FaultyFileSystem();
    const clock = new FakeClock(1_000);
    await using t = await openTestBroker({ fs, clock, checkpointIntervalMs: 60_000 });
    await t.broker.publish(text(1n, 'a'));
    fs.holdSyncs();
    let durable: Promise<void>;
    try {
      const started = await t.broker.checkpoint();
      durable = started.durable;
      expect(started.index).toBe(1);
      expect(t.broker.appliedIndex()).toBe(0); // not durable yet
      expect(await t.broker.publish(text(1n, 'b'))).toBe(2n); // applies go on meanwhile
      await waitFor(() => fs.heldSyncs > 0);
    } finally {
      fs.releaseSyncs();
    }
    await durable;
    expect(t.broker.appliedIndex()).toBe(1); // the point it started at, not the apply after it

    fs.failNext('sync', segmentOf(1n));
    const failing = await t.broker.checkpoint();
    expect(failing.index).toBe(2);
    await expect(failing.durable).rejects.toMatchObject({ code: 'STORAGE_FAILED' });
    expect(t.broker.appliedIndex()).toBe(1);
    await expect(t.broker.checkpoint()).rejects.toMatchObject({ code: 'STORAGE_FAILED' });
  });

  it('does not take a snapshot on top of a checkpoint that failed while it waited for it', async () => {
    const fs = new FaultyFileSystem();
    const clock = new FakeClock(1_000);
    await using t = await openTestBroker({ fs, clock, checkpointIntervalMs: 1000 });
    await t.broker.publish(text(1n, 'first'));
    clock.advance(1000);
    await waitFor(() => t.broker.appliedIndex() === 1);
    fs.holdSyncs();
    fs.failNext('sync', segmentOf(1n));
    clock.advance(1000); // the next apply starts a checkpoint; its fsync is held, then fails
    await t.broker.publish(text(1n, 'second'));
    await waitFor(() => fs.heldSyncs > 0);
    // Nothing applied since: the snapshot waits for that checkpoint instead of starting one.
    const snapshot = t.broker.snapshot();
    fs.releaseSyncs();
    await expect(snapshot).rejects.toMatchObject({ code: 'STORAGE_FAILED' });
  });

  it('fsyncs at most two topics at a time in a checkpoint, leaving the thread pool to the raft log', async () => {
    const fs = new ConcurrentSyncs();
    await using t = await openTestBroker({ fs, checkpointIntervalMs: 0 });
    await t.broker.publishBatch(Array.from({ length: 20 }, (_, i) => text(BigInt(i + 1), `m${i}`)));
    expect(t.broker.appliedIndex()).toBe(20);
    expect(fs.syncs).toBeGreaterThanOrEqual(20);
    expect(fs.peak).toBeLessThanOrEqual(2);
  });
});

/** The real file system whose file fsyncs take 5 ms, counting how many run at once. */
class ConcurrentSyncs extends NodeFileSystem {
  syncs = 0;
  peak = 0;
  #running = 0;

  override async open(path: string, options?: OpenOptions): Promise<FileHandle> {
    const handle = await super.open(path, options);
    const sync = handle.sync.bind(handle);
    handle.sync = async () => {
      this.syncs++;
      this.peak = Math.max(this.peak, ++this.#running);
      try {
        await new Promise((resolve) => setTimeout(resolve, 5));
        await sync();
      } finally {
        this.#running--;
      }
    };
    return handle;
  }
}
