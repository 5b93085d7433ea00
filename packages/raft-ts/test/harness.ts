import { FakeClock, makeTempDir, waitFor } from '@msg/test-utils';
import { RaftError, isRaftError, type RaftErrorCode } from '../src/errors.js';
import { NodeFileSystem, type FileSystem } from '../src/file-system.js';
import { RaftNode, type RaftNodeOptions } from '../src/raft-node.js';
import type { StateMachine } from '../src/state-machine.js';
import type { Transport } from '../src/transport.js';
import { EntryType, type AppendEntriesRequest, type ClusterConfig, type LogEntry, type RequestVoteRequest } from '../src/types.js';

/** A state machine keeping applied commands as text in memory. */
export class MemStateMachine implements StateMachine {
  readonly applied: { index: number; text: string }[] = [];
  upTo = 0;
  /** Throw when applying this text. */
  failOn: string | undefined;

  async apply(entries: readonly LogEntry[], upTo: number): Promise<void> {
    for (const e of entries) {
      const text = new TextDecoder().decode(e.data);
      if (text === this.failOn) throw new Error(`cannot apply ${text}`);
      this.applied.push({ index: e.index, text });
    }
    this.upTo = upTo;
  }
  appliedIndex(): number {
    return this.upTo;
  }
  async snapshot(): Promise<AsyncIterable<Uint8Array>> {
    const bytes = new TextEncoder().encode(JSON.stringify(this.applied));
    return (async function* () {
      yield bytes;
    })();
  }
  async restore(snapshot: AsyncIterable<Uint8Array>, index: number): Promise<void> {
    const chunks: Uint8Array[] = [];
    for await (const c of snapshot) chunks.push(c);
    this.applied.length = 0;
    this.applied.push(...(JSON.parse(Buffer.concat(chunks).toString()) as { index: number; text: string }[]));
    this.upTo = index;
  }
  texts(): string[] {
    return this.applied.map((a) => a.text);
  }
}

/**
 * A {@link MemStateMachine} that keeps its own state durable, as the broker does: `checkpoint()` writes it to
 * `<dir>/sm.json` (temp file, fsync, rename), and {@link CheckpointedStateMachine.load} reads it back, so raft
 * compacts its log behind these checkpoints. Counts the full snapshots raft asks for.
 */
export class CheckpointedStateMachine extends MemStateMachine {
  readonly #fs = new NodeFileSystem();
  readonly #file: string;
  /** Calls of `snapshot()`: raft takes a full snapshot only for a follower that needs one. */
  snapshots = 0;
  /** Calls of `restore()`. */
  restores = 0;
  /** Make the next checkpoints' `durable` reject with this. */
  failDurable: Error | undefined;

  readonly dir: string;
  /** Checkpoints are written one after another, in the order their states were taken. */
  #writing: Promise<void> = Promise.resolve();

  constructor(dir: string) {
    super();
    this.dir = dir;
    this.#file = `${dir}/sm.json`;
  }

  /** A machine with the state of the last checkpoint in `dir` (none: empty). */
  static async load(dir: string): Promise<CheckpointedStateMachine> {
    const sm = new CheckpointedStateMachine(dir);
    const bytes = await sm.#fs.readFile(sm.#file);
    if (bytes) {
      const saved = JSON.parse(new TextDecoder().decode(bytes)) as { upTo: number; applied: { index: number; text: string }[] };
      sm.applied.push(...saved.applied);
      sm.upTo = saved.upTo;
    }
    return sm;
  }

  async checkpoint(): Promise<{ index: number; durable: Promise<void> }> {
    const index = this.upTo;
    const bytes = new TextEncoder().encode(JSON.stringify({ upTo: index, applied: this.applied }));
    const failure = this.failDurable;
    const durable = this.#writing.then(async () => {
      if (failure) throw failure;
      await this.#fs.mkdir(this.dir);
      const temp = `${this.#file}.tmp`;
      const h = await this.#fs.open(temp);
      await h.append(bytes);
      await h.sync();
      await h.close();
      await this.#fs.rename(temp, this.#file);
      await this.#fs.syncDir(this.dir);
    });
    this.#writing = durable.catch(() => undefined);
    return { index, durable };
  }

  override async snapshot(): Promise<AsyncIterable<Uint8Array>> {
    this.snapshots++;
    return super.snapshot();
  }

  override async restore(snapshot: AsyncIterable<Uint8Array>, index: number): Promise<void> {
    this.restores++;
    await super.restore(snapshot, index);
    await (await this.checkpoint()).durable;
  }
}

type Method = 'requestVote' | 'appendEntries' | 'installSnapshot' | 'timeoutNow' | 'join' | 'leave';

/** The fields of the RPC requests that tests inspect. */
export type HeldRequest = AppendEntriesRequest & RequestVoteRequest;

/** One outgoing RPC held until the test answers it. */
export interface HeldCall {
  method: Method;
  target: string;
  /** The request as sent; typed with the fields of the RPCs tests read (only those of `method` are present). */
  req: HeldRequest;
  resolve(res: unknown): void;
  reject(err: unknown): void;
}

/** A transport that records every call and lets the test answer (or fail) each one. */
export class HeldTransport implements Transport {
  readonly calls: HeldCall[] = [];
  #call(method: Method, target: string, req: unknown): Promise<never> {
    return new Promise((resolve, reject) => this.calls.push({ method, target, req: req as HeldRequest, resolve, reject }));
  }
  requestVote = (t: string, r: unknown) => this.#call('requestVote', t, r);
  appendEntries = (t: string, r: unknown) => this.#call('appendEntries', t, r);
  installSnapshot = (t: string, r: unknown) => this.#call('installSnapshot', t, r);
  timeoutNow = (t: string, r: unknown) => this.#call('timeoutNow', t, r);
  join = (t: string, r: unknown) => this.#call('join', t, r);
  leave = (t: string, r: unknown) => this.#call('leave', t, r);
  async close(): Promise<void> {}

  /** Removes and returns the held calls of `method` (to `target` when given). */
  take(method: Method, target?: string): HeldCall[] {
    const out = this.calls.filter((c) => c.method === method && (target === undefined || c.target === target));
    for (const c of out) this.calls.splice(this.calls.indexOf(c), 1);
    return out;
  }

  /** Waits for a call of `method` (to `target`) and removes it. */
  async next(method: Method, target?: string): Promise<HeldCall> {
    return waitFor(() => this.take(method, target)[0], { message: `a ${method} call${target ? ` to ${target}` : ''}` });
  }

  /** Fails every held call as unreachable. */
  dropAll(): void {
    for (const c of this.calls.splice(0)) c.reject(new RaftError('UNREACHABLE', 'dropped'));
  }
}

/** A file system counting fsyncs. */
export function countingFs(inner: FileSystem = new NodeFileSystem()): FileSystem & { syncs: number } {
  const fs = {
    syncs: 0,
    mkdir: (d: string) => inner.mkdir(d),
    list: (d: string) => inner.list(d),
    readFile: (p: string) => inner.readFile(p),
    rename: (a: string, b: string) => inner.rename(a, b),
    remove: (p: string) => inner.remove(p),
    syncDir: (d: string) => {
      fs.syncs++;
      return inner.syncDir(d);
    },
    open: async (p: string) => {
      const h = await inner.open(p);
      return {
        size: () => h.size(),
        read: (a: number, b: number) => h.read(a, b),
        append: (d: Uint8Array) => h.append(d),
        truncate: (n: number) => h.truncate(n),
        close: () => h.close(),
        sync: () => {
          fs.syncs++;
          return h.sync();
        },
      };
    },
  };
  return fs;
}

export const ME = 'http://me';
export const A = 'http://a';
export const B = 'http://b';
export const CLUSTER = 'c1';

/** A node with a fake clock, a held transport and a memory state machine, in a temp dir. */
export interface Harness {
  node: RaftNode;
  clock: FakeClock;
  transport: HeldTransport;
  sm: MemStateMachine;
  dir: string;
  options: RaftNodeOptions;
}

/** Opens a node (election timeout 100 ms, no randomness) in a fresh or given directory. */
export async function openHarness(overrides: Partial<RaftNodeOptions> = {}, dir?: string): Promise<Harness> {
  const clock = new FakeClock(1_000_000);
  const transport = new HeldTransport();
  const sm = new MemStateMachine();
  const options: RaftNodeOptions = {
    dir: dir ?? (await makeTempDir('raft-')),
    url: ME,
    stateMachine: sm,
    transport,
    clock,
    random: () => 0,
    electionTimeoutMs: 100,
    heartbeatIntervalMs: 10,
    ...overrides,
  };
  const node = new RaftNode(options);
  await node.open();
  return { node, clock, transport, sm, dir: options.dir, options };
}

/** A config entry. */
export function configEntry(index: number, term: number, config: ClusterConfig): LogEntry {
  return { index, term, type: EntryType.Config, data: new TextEncoder().encode(JSON.stringify(config)) };
}

/** A command entry holding `text`. */
export function command(index: number, term: number, text: string): LogEntry {
  return { index, term, type: EntryType.Command, data: new TextEncoder().encode(text) };
}

/** Makes the harness node a follower (voter) of the cluster {A, B, ME} led by A in term 1; its log holds the config at index 1. */
export async function joinThree(h: Harness): Promise<void> {
  const joined = h.node.join(A);
  const call = await h.transport.next('join', A);
  call.resolve({ clusterId: CLUSTER, leader: A, config: { voters: [A, B], learners: [ME] } });
  await waitFor(() => h.node.clusterId() === CLUSTER);
  const res = await h.node.handleAppendEntries({
    term: 1,
    from: A,
    clusterId: CLUSTER,
    prevLogIndex: 0,
    prevLogTerm: 0,
    entries: [configEntry(1, 1, { voters: [A, B, ME], learners: [] })],
    leaderCommit: 1,
  });
  if (!res.success) throw new Error('joinThree: append failed');
  await joined;
}

/** Sends AppendEntries from A with the given fields (term 1, empty, commit 0 by default). */
export function append(h: Harness, fields: Partial<{ term: number; prevLogIndex: number; prevLogTerm: number; entries: LogEntry[]; leaderCommit: number; from: string }>) {
  return h.node.handleAppendEntries({
    term: 1,
    from: A,
    clusterId: CLUSTER,
    prevLogIndex: 0,
    prevLogTerm: 0,
    entries: [],
    leaderCommit: 0,
    ...fields,
  });
}

/** Lets the harness node win an election: expires its timer and grants its pre-vote and vote from B. */
export async function elect(h: Harness): Promise<void> {
  h.clock.advance(150); // one election timeout (100 ms with random() = 0), not two
  const pre = await h.transport.next('requestVote', B);
  pre.resolve({ term: h.node.term, voteGranted: true });
  const vote = await h.transport.next('requestVote', B);
  vote.resolve({ term: vote.req.term, voteGranted: true });
  await waitFor(() => h.node.isLeader());
}

/**
 * Closes the harness node. A leader's close first tries to hand leadership
 * over, which waits on the fake clock: this drives the clock (peers
 * unreachable) until the close is done, bounded in steps.
 */
export async function shutdown(h: Harness): Promise<void> {
  let done = false;
  const closing = h.node.close().finally(() => (done = true));
  for (let i = 0; i < 100 && !done; i++) {
    h.transport.dropAll();
    h.clock.advance(50);
    await new Promise((r) => setImmediate(r));
  }
  await closing;
}

/** How a call ended: the code of the RaftError it rejected with, `'resolved'`, or `'other'` for any other error. */
export async function codeOf(p: Promise<unknown>): Promise<RaftErrorCode | 'resolved' | 'other'> {
  try {
    await p;
    return 'resolved';
  } catch (err) {
    return isRaftError(err) ? err.code : 'other';
  }
}
