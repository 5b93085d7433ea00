import { describe, expect, it } from '@jest/globals';
import { readdir, stat } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { makeTempDir } from '@msg/test-utils';
import { isSegmentError, NodeFileSystem, Topic, type FileHandle, type FileSystem, type OpenOptions, type RecoveryEvent } from '../src/index.js';
import { collect, msg } from './helpers.js';

/**
 * The real file system, counting syncs per file and failing the next sync of a
 * chosen file once with EIO (as Linux does, later syncs of it succeed: the
 * failed pages are then clean although their data never reached the disk).
 */
class FaultyFileSystem extends NodeFileSystem {
  readonly syncs = new Map<string, number>();
  readonly opens: string[] = [];
  failNextSyncOf: string | undefined;

  override async open(path: string, options?: OpenOptions): Promise<FileHandle> {
    this.opens.push(path);
    const handle = await super.open(path, options);
    const sync = handle.sync.bind(handle);
    handle.sync = async () => {
      this.syncs.set(basename(path), (this.syncs.get(basename(path)) ?? 0) + 1);
      if (this.failNextSyncOf === basename(path)) {
        this.failNextSyncOf = undefined;
        throw Object.assign(new Error(`EIO: i/o error, fsync ${path}`), { code: 'EIO' });
      }
      await sync();
    };
    return handle;
  }
}

async function openTopic(fs: FileSystem, options: { maxSegmentSize?: number } = {}): Promise<Topic> {
  const dir = join(await makeTempDir('segments-fault-'), 'topic');
  const topic = new Topic(dir, { sync: 'never', fs, onRecovery: () => undefined, ...options });
  await topic.open();
  return topic;
}

describe('Topic.checkpoint', () => {
  it('fsyncs the segments written since the last checkpoint through the handles that wrote them, the rolled-away one included', async () => {
    const fs = new FaultyFileSystem();
    const topic = await openTopic(fs, { maxSegmentSize: 150 });
    for (let i = 1; i <= 3; i++) await topic.append(msg(i, 100));
    expect(topic.segments().map((s) => basename(s.path))).toEqual(['1', '2', '3']);
    const opened = fs.opens.length;
    const point = await topic.checkpoint();
    expect(point).toEqual({ lastIndex: 3n, segment: '3', size: topic.segments().at(-1)!.size });
    expect(fs.opens.length).toBe(opened); // no file opened again to sync it
    expect(Object.fromEntries(fs.syncs)).toEqual({ '1': 1, '2': 1, '3': 1 });
    // Nothing new: nothing synced again.
    expect(await topic.checkpoint()).toEqual(point);
    expect(Object.fromEntries(fs.syncs)).toEqual({ '1': 1, '2': 1, '3': 1 });
    await topic.close();
  });

  it('fails the topic for good when an fsync fails: later appends and checkpoints reject, and the fsync is never retried', async () => {
    const fs = new FaultyFileSystem();
    const topic = await openTopic(fs, { maxSegmentSize: 200 });
    for (let i = 1; i <= 2; i++) await topic.append(msg(i, 100));
    fs.failNextSyncOf = '1'; // the segment rolled away
    const error = await topic.checkpoint().catch((e: unknown) => e);
    expect(isSegmentError(error, 'WRITE_FAILED')).toBe(true);
    expect((error as Error).cause).toMatchObject({ code: 'EIO' });
    expect(topic.failure).toBe(error);
    const syncs = fs.syncs.get('1');
    await expect(topic.checkpoint()).rejects.toBe(error);
    await expect(topic.sync()).rejects.toBe(error);
    await expect(topic.append(msg(3, 10))).rejects.toBe(error);
    await expect(topic.reclaimBefore(2n)).rejects.toBe(error);
    expect(fs.syncs.get('1')).toBe(syncs);
    await topic.close();
  });
});

describe('Topic.open({ rollBackTo })', () => {
  it('deletes later segments and truncates the checkpoint segment without reading them, and reports it', async () => {
    const fs = new FaultyFileSystem();
    const topic = await openTopic(fs, { maxSegmentSize: 300 });
    for (let i = 1; i <= 3; i++) await topic.append(msg(i, 100));
    const point = await topic.checkpoint();
    for (let i = 4; i <= 9; i++) await topic.append(msg(i, 100));
    const dir = topic.dir;
    await topic.close();
    const events: RecoveryEvent[] = [];
    const again = new Topic(dir, { sync: 'never', fs, onRecovery: (e) => events.push(e) });
    await again.open({ rollBackTo: point });
    expect(again.lastIndex).toBe(3n);
    expect((await collect(again.reader(0n))).map((m) => m.index)).toEqual([1n, 2n, 3n]);
    expect(events.length).toBeGreaterThan(0);
    expect(events.every((e) => e.kind === 'rolled-back')).toBe(true);
    expect((await stat(join(dir, point.segment!))).size).toBe(point.size);
    expect((await readdir(dir)).filter((n) => /^[0-9]+$/.test(n)).map(Number).every((n) => n <= 3)).toBe(true);
    await again.append(msg(4, 10));
    await again.close();
  });

  it('is CORRUPT_SEGMENT when the checkpoint segment is shorter than its checkpointed size', async () => {
    const fs = new FaultyFileSystem();
    const topic = await openTopic(fs);
    await topic.append(msg(1, 100));
    const point = await topic.checkpoint();
    const dir = topic.dir;
    await topic.close();
    const again = new Topic(dir, { fs, onRecovery: () => undefined });
    await expect(again.open({ rollBackTo: { ...point, size: point.size + 10 } })).rejects.toMatchObject({ code: 'CORRUPT_SEGMENT', offset: point.size });
  });
});

/** The real file system whose fsyncs wait until {@link GatedFileSystem.release} while `gated` is set. */
class GatedFileSystem extends NodeFileSystem {
  gated = false;
  readonly closedWhileSyncing: string[] = [];
  #waiting: (() => void)[] = [];
  #syncing = new Map<string, number>();

  /** Lets every waiting fsync go on (and the later ones, until `gated` is set again). */
  release(): void {
    this.gated = false;
    for (const go of this.#waiting.splice(0)) go();
  }

  get waitingSyncs(): number {
    return this.#waiting.length;
  }

  override async open(path: string, options?: OpenOptions): Promise<FileHandle> {
    const handle = await super.open(path, options);
    const sync = handle.sync.bind(handle);
    const close = handle.close.bind(handle);
    handle.sync = async () => {
      this.#syncing.set(path, (this.#syncing.get(path) ?? 0) + 1);
      try {
        if (this.gated) await new Promise<void>((resolve) => this.#waiting.push(resolve));
        await sync();
      } finally {
        this.#syncing.set(path, this.#syncing.get(path)! - 1);
      }
    };
    handle.close = async () => {
      if ((this.#syncing.get(path) ?? 0) > 0) this.closedWhileSyncing.push(basename(path));
      await close();
    };
    return handle;
  }
}

describe('Topic.checkpoint while appends go on', () => {
  it('does not hold appends back during its fsync, and covers exactly what was appended before the call', async () => {
    const fs = new GatedFileSystem();
    const topic = await openTopic(fs);
    await topic.append(msg(1, 100));
    fs.gated = true;
    const checkpoint = topic.checkpoint();
    // The fsync is under way (and held): an append made now completes all the same.
    for (let i = 0; i < 50 && fs.waitingSyncs === 0; i++) await new Promise((resolve) => setTimeout(resolve, 2));
    expect(fs.waitingSyncs).toBe(1);
    const appended = await Promise.race([topic.append(msg(2, 100)).then(() => 'appended'), new Promise((resolve) => setTimeout(() => resolve('held back'), 1000))]);
    expect(appended).toBe('appended');
    fs.release();
    const point = await checkpoint;
    expect(point.lastIndex).toBe(1n);
    expect(point.size).toBeLessThan(topic.segments().at(-1)!.size);
    // The next checkpoint covers the later append.
    expect((await topic.checkpoint()).lastIndex).toBe(2n);
    await topic.close();
  });

  it('never closes a handle while a checkpoint fsyncs it: not on a roll, not on close', async () => {
    const fs = new GatedFileSystem();
    const topic = await openTopic(fs, { maxSegmentSize: 150 });
    await topic.append(msg(1, 100));
    fs.gated = true;
    const checkpoint = topic.checkpoint();
    for (let i = 0; i < 50 && fs.waitingSyncs === 0; i++) await new Promise((resolve) => setTimeout(resolve, 2));
    // This append rolls to segment 2 while segment 1 is being synced.
    const append = topic.append(msg(2, 100));
    const closing = append.then(() => topic.close());
    await new Promise((resolve) => setTimeout(resolve, 20));
    fs.release();
    await checkpoint;
    await append;
    await closing;
    expect(fs.closedWhileSyncing).toEqual([]);
  });
});
