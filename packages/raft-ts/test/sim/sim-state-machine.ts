import type { StateMachine } from '../../src/state-machine.js';
import type { LogEntry } from '../../src/types.js';
import type { SimFileSystem } from './sim-disk.js';

/** Called with each violation a state machine sees. */
export type Report = (message: string) => void;

const CHECKPOINT = 'sm-checkpoint.json';

/**
 * The simulation's state machine: an ordered record of applied commands
 * (index → text). Every apply is reported to `recordApplied` (which checks
 * it against what any node applied at that index) and checked against its own order.
 *
 * Without a file system it lives in memory, so a crash loses it and raft must
 * restore the snapshot and re-apply the log. With one it is durable like the
 * broker: now and then it checkpoints its state (write, fsync, rename, fsync
 * the directory) and {@link SimStateMachine.load} starts from the last
 * checkpoint, so raft trusts an applied index that survived the crash.
 */
export class SimStateMachine implements StateMachine {
  readonly state = new Map<number, string>();
  #upTo = 0;
  readonly #recordApplied: (index: number, text: string) => void;
  readonly #report: Report;
  readonly #name: string;
  readonly #durable: { fs: SimFileSystem; dir: string; every: () => boolean } | undefined;
  /** The checkpoint being written: checkpoints are written one after another, in the order their states were taken. */
  #writing: Promise<void> = Promise.resolve();
  /** `StateMachine.checkpoint`, offered only when constructed with `compactBehindCheckpoints`. */
  readonly checkpoint?: () => Promise<{ index: number; durable: Promise<void> }>;

  /**
   * @param durable where and how often to checkpoint: `every()` is asked after each apply.
   * @param compactBehindCheckpoints offer `checkpoint()` (durable machines only), so raft compacts its log
   *   behind the machine's checkpoints and takes a full snapshot only for a follower that needs one.
   */
  constructor(
    name: string,
    recordApplied: (index: number, text: string) => void,
    report: Report,
    durable?: { fs: SimFileSystem; dir: string; every: () => boolean },
    compactBehindCheckpoints = false,
  ) {
    this.#name = name;
    this.#recordApplied = recordApplied;
    this.#report = report;
    this.#durable = durable;
    if (durable && compactBehindCheckpoints) {
      this.checkpoint = async () => {
        const index = this.#upTo;
        const durable = this.#checkpoint();
        durable.catch(() => undefined);
        return { index, durable };
      };
    }
  }

  /** Loads the last checkpoint (durable state machines only). */
  async load(): Promise<void> {
    if (!this.#durable) return;
    const { fs, dir } = this.#durable;
    await fs.mkdir(dir);
    const bytes = await fs.readFile(`${dir}/${CHECKPOINT}`);
    if (!bytes) return;
    const parsed = JSON.parse(new TextDecoder().decode(bytes)) as { upTo: number; state: [number, string][] };
    for (const [i, t] of parsed.state) this.state.set(i, t);
    this.#upTo = parsed.upTo;
  }

  /** Writes the state as of now (taken at once) after the checkpoints before it; rejects when that fails. */
  #checkpoint(): Promise<void> {
    if (!this.#durable) return Promise.resolve();
    const { fs, dir } = this.#durable;
    const bytes = new TextEncoder().encode(JSON.stringify({ upTo: this.#upTo, state: [...this.state] }));
    const write = this.#writing.then(async () => {
      const temp = `${dir}/${CHECKPOINT}.tmp`;
      await fs.remove(temp);
      const h = await fs.open(temp);
      await h.append(bytes);
      await h.sync();
      await h.close();
      await fs.rename(temp, `${dir}/${CHECKPOINT}`);
      await fs.syncDir(dir);
    });
    // A failed write fails every later one: the disk lost data, and a later checkpoint must not pass for durable.
    this.#writing = write;
    return write;
  }

  async apply(entries: readonly LogEntry[], upTo: number): Promise<void> {
    let last = this.#upTo;
    for (const e of entries) {
      if (e.index <= last) this.#report(`${this.#name} applied index ${e.index} after ${last}`);
      last = e.index;
      const text = new TextDecoder().decode(e.data);
      this.#record(e.index, text);
    }
    if (upTo < last || upTo < this.#upTo) this.#report(`${this.#name} apply upTo ${upTo} behind ${last}`);
    this.#upTo = upTo;
    if (this.#durable?.every()) await this.#checkpoint();
  }

  #record(index: number, text: string): void {
    this.#recordApplied(index, text);
    this.state.set(index, text);
  }

  appliedIndex(): number {
    return this.#upTo;
  }

  async snapshot(): Promise<AsyncIterable<Uint8Array>> {
    const bytes = new TextEncoder().encode(JSON.stringify({ upTo: this.#upTo, state: [...this.state] }));
    return (async function* () {
      for (let at = 0; at < bytes.length; at += 100) yield bytes.subarray(at, at + 100);
    })();
  }

  async restore(snapshot: AsyncIterable<Uint8Array>, index: number): Promise<void> {
    const chunks: Uint8Array[] = [];
    for await (const c of snapshot) chunks.push(c);
    const text = Buffer.concat(chunks).toString('utf8');
    const parsed = JSON.parse(text) as { upTo: number; state: [number, string][] };
    if (parsed.upTo !== index) this.#report(`${this.#name} restored a snapshot of ${parsed.upTo} labelled ${index}`);
    this.state.clear();
    for (const [i, t] of parsed.state) this.#record(i, t);
    this.#upTo = index;
    await this.#checkpoint();
  }
}
