import { NodeFileSystem, type FileHandle, type OpenOptions } from '@msg/segments';

/** Which operation a {@link FaultyFileSystem} fault hits. */
export type FaultOp = 'sync' | 'append' | 'syncDir' | 'rename';

interface Fault {
  op: FaultOp;
  matches: (path: string) => boolean;
  /** How many matching calls still fail. */
  remaining: number;
}

/**
 * The real file system with injected faults: the next matching call of an
 * operation fails with EIO (once, or `times` times), after which the same
 * operation succeeds again, also through a fresh descriptor. That models
 * Linux after a failed fsync: the failed pages are marked clean, so a later
 * fsync reports success although their data never reached the disk.
 * Every call is recorded in {@link FaultyFileSystem.calls}.
 */
export class FaultyFileSystem extends NodeFileSystem {
  readonly calls: { op: string; path: string }[] = [];
  readonly #faults: Fault[] = [];
  #held: (() => void)[] | undefined;

  /** Holds every later fsync of a file (not of a folder) until {@link FaultyFileSystem.releaseSyncs}. */
  holdSyncs(): void {
    this.#held ??= [];
  }

  /** Lets the held fsyncs go on, and stops holding. */
  releaseSyncs(): void {
    const held = this.#held ?? [];
    this.#held = undefined;
    for (const go of held) go();
  }

  /** How many fsyncs wait for {@link FaultyFileSystem.releaseSyncs}. */
  get heldSyncs(): number {
    return this.#held?.length ?? 0;
  }

  /** Makes the next `times` calls of `op` on a path that `matches` fail with EIO. */
  failNext(op: FaultOp, matches: (path: string) => boolean, times = 1): void {
    this.#faults.push({ op, matches, remaining: times });
  }

  /** How many injected faults have not fired yet. */
  get pendingFaults(): number {
    return this.#faults.reduce((n, f) => n + f.remaining, 0);
  }

  #hit(op: FaultOp, path: string): void {
    this.calls.push({ op, path });
    const fault = this.#faults.find((f) => f.op === op && f.remaining > 0 && f.matches(path));
    if (!fault) return;
    fault.remaining--;
    throw Object.assign(new Error(`EIO: i/o error, ${op} '${path}'`), { code: 'EIO', errno: -5, syscall: op });
  }

  override async open(path: string, options?: OpenOptions): Promise<FileHandle> {
    this.calls.push({ op: 'open', path });
    const handle = await super.open(path, options);
    const sync = handle.sync.bind(handle);
    const append = handle.append.bind(handle);
    handle.sync = async () => {
      // A held fsync fails (or not) once released, as a slow one would.
      const held = this.#held;
      if (held) await new Promise<void>((resolve) => held.push(resolve));
      this.#hit('sync', path);
      await sync();
    };
    handle.append = async (data: Uint8Array) => {
      this.#hit('append', path);
      await append(data);
    };
    return handle;
  }

  override async syncDir(dir: string): Promise<void> {
    this.#hit('syncDir', dir);
    await super.syncDir(dir);
  }

  override async rename(from: string, to: string): Promise<void> {
    this.#hit('rename', from);
    await super.rename(from, to);
  }
}

/** True for the path of a segment file (a file named by a decimal index) of topic `topicID`. */
export function segmentOf(topicID: bigint): (path: string) => boolean {
  return (path) => new RegExp(`/${topicID}/[0-9]+$`).test(path);
}
