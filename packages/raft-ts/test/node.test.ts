// RaftNode's lifecycle, single-node behaviour and every error path of its public API.
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from '@jest/globals';
import { waitFor } from '@msg/test-utils';
import { isRaftError } from '../src/errors.js';
import { RaftNode, type LeaderChange } from '../src/raft-node.js';
import { A, append, B, CLUSTER, codeOf, countingFs, elect, joinThree, MemStateMachine, openHarness, type Harness } from './harness.js';

const encoder = new TextEncoder();

/** A harness node that bootstrapped its own single-node cluster and leads it. */
async function single(overrides: Parameters<typeof openHarness>[0] = {}, dir?: string): Promise<Harness> {
  const h = await openHarness(overrides, dir);
  if (h.node.clusterId() === undefined) await h.node.initialize();
  else h.clock.advance(150); // a reopened node waits one election timeout (100 ms here), then elects itself
  await waitFor(() => h.node.isLeader());
  return h;
}

describe('RaftNode lifecycle', () => {
  it('refuses a second open, calls before open, and a second close, with typed errors', async () => {
    const h = await openHarness();
    expect(await codeOf(h.node.open())).toBe('ALREADY_OPEN');
    expect(h.node.state).toBe('uninitialized');
    expect(await codeOf(h.node.apply(encoder.encode('x')))).toBe('NOT_INITIALIZED');
    await h.node.close();
    expect(h.node.state).toBe('closed');
    expect(await codeOf(h.node.close())).toBe('CLOSED');
    expect(await codeOf(h.node.open())).toBe('CLOSED');
    expect(await codeOf(h.node.initialize())).toBe('CLOSED');
  });

  it('initializes once: a second initialize or a join is ALREADY_INITIALIZED', async () => {
    const h = await single();
    expect(h.node.clusterId()).toMatch(/^[0-9a-f]{32}$/);
    expect(h.node.urls()).toEqual([h.options.url]);
    expect(await codeOf(h.node.initialize())).toBe('ALREADY_INITIALIZED');
    expect(await codeOf(h.node.join(A))).toBe('ALREADY_INITIALIZED');
    await h.node.close();
  });

  it('reports a damaged term file as CORRUPT naming the file', async () => {
    const h = await single();
    await h.node.close();
    const path = join(h.dir, 'meta');
    const bytes = await readFile(path);
    bytes.writeUInt8(bytes.readUInt8(bytes.length - 1) ^ 0xff, bytes.length - 1);
    await writeFile(path, bytes);
    const node = new RaftNode({ ...h.options, stateMachine: new MemStateMachine() });
    const err = await node.open().catch((e: unknown) => e);
    expect(isRaftError(err, 'CORRUPT')).toBe(true);
    expect((err as Error).message).toContain(path);
    // A node that failed to open is closed.
    expect(node.state).toBe('closed');
    expect(await codeOf(node.open())).toBe('CLOSED');
  });

  it('reports a damaged snapshot as CORRUPT when it must be restored', async () => {
    const h = await single({ snapshotThreshold: 5, trailingEntries: 1 });
    for (let i = 0; i < 10; i++) await h.node.apply(encoder.encode(`e${i}`));
    await waitFor(() => h.node.snapshotIndex > 0);
    await h.node.close();
    const name = (await readdir(h.dir)).find((x) => x.endsWith('.snap'))!;
    const path = join(h.dir, name);
    const bytes = await readFile(path);
    bytes.writeUInt8(bytes.readUInt8(bytes.length - 12) ^ 0xff, bytes.length - 12); // in the data, before the trailer
    await writeFile(path, bytes);
    const err = await openHarness({}, h.dir).catch((e: unknown) => e);
    expect(isRaftError(err, 'CORRUPT')).toBe(true);
    expect((err as Error).message).toContain(path);
  });
});

describe('a single-node cluster', () => {
  it('commits and applies at once; a batch gets consecutive indexes', async () => {
    const h = await single();
    const first = await h.node.apply(encoder.encode('a'));
    const batch = await h.node.applyBatch(['b', 'c', 'd'].map((t) => encoder.encode(t)));
    expect(batch).toBe(first + 1);
    expect(await h.node.applyBatch([])).toBe(batch + 3);
    expect(h.sm.applied).toEqual([
      { index: first, text: 'a' },
      { index: first + 1, text: 'b' },
      { index: first + 2, text: 'c' },
      { index: first + 3, text: 'd' },
    ]);
    expect(h.node.commitIndex).toBe(first + 3);
    expect(h.node.appliedIndex).toBe(first + 3);
    await h.node.close();
  });

  it('group-commits: 200 concurrent applies share a handful of fsyncs', async () => {
    const fs = countingFs();
    const h = await single({ fs });
    const before = fs.syncs;
    const indexes = await Promise.all(Array.from({ length: 200 }, (_, i) => h.node.apply(encoder.encode(`c${i}`))));
    expect(new Set(indexes).size).toBe(200);
    expect(fs.syncs - before).toBeLessThan(10);
    await h.node.close();
  });

  it('never fsyncs in the unsafe sync: \'never\' mode', async () => {
    const fs = countingFs();
    const h = await single({ fs, sync: 'never', snapshotThreshold: 10 });
    await Promise.all(Array.from({ length: 30 }, (_, i) => h.node.apply(encoder.encode(`c${i}`))));
    await waitFor(() => h.node.snapshotIndex > 0);
    await h.node.close();
    expect(fs.syncs).toBe(0);
  });

  it('a leader closing while its followers are unreachable fails its pending apply with LEADERSHIP_LOST', async () => {
    const h = await openHarness();
    await joinThree(h);
    await elect(h);
    const pending = codeOf(h.node.apply(encoder.encode('never acknowledged by a follower')));
    const closing = h.node.close();
    for (let i = 0; i < 50; i++) {
      h.transport.dropAll();
      h.clock.advance(50);
      await new Promise((r) => setImmediate(r));
    }
    await closing;
    // It tried to hand over, lost its quorum meanwhile and stepped down: the entry may or may not commit.
    expect(await pending).toBe('LEADERSHIP_LOST');
    expect(h.node.state).toBe('closed');
  });

  it('takes the next snapshot as soon as the one in flight is written when the threshold was crossed meanwhile', async () => {
    const sm = new GatedSnapshots();
    const h = await single({ stateMachine: sm, snapshotThreshold: 5, trailingEntries: 1 });
    for (let i = 0; i < 6; i++) await h.node.apply(encoder.encode(`a${i}`));
    await waitFor(() => sm.started === 1);
    // Ten more entries while the first snapshot is still being written, then nothing more.
    for (let i = 0; i < 10; i++) await h.node.apply(encoder.encode(`b${i}`));
    const last = h.node.appliedIndex;
    sm.release();
    await waitFor(() => h.node.snapshotIndex === last, { message: `a snapshot at ${last}` });
    expect(sm.started).toBe(2);
    await h.node.close();
  });

  it('restores its snapshot and re-applies the log into a fresh state machine on reopen', async () => {
    const h = await single({ snapshotThreshold: 20, trailingEntries: 3 });
    for (let i = 0; i < 50; i++) await h.node.apply(encoder.encode(`e${i}`));
    await waitFor(() => h.node.snapshotIndex > 0);
    const texts = h.sm.texts();
    await h.node.close();
    const again = await single({}, h.dir);
    expect(again.node.snapshotIndex).toBeGreaterThan(0);
    await waitFor(() => again.node.appliedIndex >= again.node.commitIndex && again.sm.texts().length === 50);
    expect(again.sm.texts()).toEqual(texts);
    expect(await again.node.apply(encoder.encode('more'))).toBeGreaterThan(50);
    await again.node.close();
  });

  it('stops with APPLY_FAILED when the state machine throws, and refuses further applies', async () => {
    const h = await single();
    h.sm.failOn = 'poison';
    const err = await codeOf(h.node.apply(encoder.encode('poison')));
    expect(err).toBe('APPLY_FAILED');
    expect(h.node.state).toBe('failed');
    expect(h.node.isLeader()).toBe(false);
    expect(await codeOf(h.node.apply(encoder.encode('x')))).toBe('APPLY_FAILED');
    await h.node.close();
  });

  it('tells leader-change listeners, until they unsubscribe', async () => {
    const h = await openHarness();
    const seen: [string | undefined, number][] = [];
    const off = h.node.onLeaderChange((leader, term) => seen.push([leader, term]));
    await joinThree(h);
    expect(seen).toContainEqual([A, 1]);
    await append(h, { term: 2, from: B, prevLogIndex: 1, prevLogTerm: 1 });
    expect(seen[seen.length - 1]).toEqual([B, 2]);
    off();
    await append(h, { term: 3, from: A, prevLogIndex: 1, prevLogTerm: 1 });
    expect(h.node.leader()).toBe(A);
    expect(seen[seen.length - 1]).toEqual([B, 2]);
    await h.node.close();
  });
});

describe('leaderChanges()', () => {
  it('yields the current leader, then each change, and ends when the node closes', async () => {
    const h = await openHarness();
    const seen: LeaderChange[] = [];
    const consumer = (async () => {
      for await (const change of h.node.leaderChanges()) seen.push(change);
    })();
    await waitFor(() => seen.length === 1);
    expect(seen[0]).toEqual({ leader: undefined, term: 0 });
    await joinThree(h);
    await waitFor(() => seen.some((c) => c.leader === A && c.term === 1));
    await append(h, { term: 2, from: B, prevLogIndex: 1, prevLogTerm: 1 });
    await waitFor(() => seen.some((c) => c.leader === B && c.term === 2));
    await h.node.close();
    await consumer;
    expect(seen[seen.length - 1]).toEqual({ leader: B, term: 2 });
  });

  it('coalesces changes a slow consumer missed and ends when its signal aborts', async () => {
    const h = await openHarness();
    await joinThree(h);
    const controller = new AbortController();
    const changes = h.node.leaderChanges({ signal: controller.signal });
    expect((await changes.next()).value).toEqual({ leader: A, term: 1 });
    await append(h, { term: 2, from: B, prevLogIndex: 1, prevLogTerm: 1 });
    await append(h, { term: 3, from: A, prevLogIndex: 1, prevLogTerm: 1 });
    expect((await changes.next()).value).toEqual({ leader: A, term: 3 });
    const pending = changes.next();
    controller.abort();
    expect(await pending).toEqual({ done: true, value: undefined });
    await h.node.close();
  });
});

describe('RPCs from peers', () => {
  const garbage: unknown[] = [null, 42, 'x', [], {}, { term: -1 }, { term: 1.5, from: A, clusterId: CLUSTER }, { term: 2 ** 60, from: A, clusterId: CLUSTER }];

  it('rejects malformed requests of every kind with BAD_REQUEST and keeps working', async () => {
    const h = await openHarness();
    await joinThree(h);
    const node = h.node as unknown as Record<string, (req: unknown) => Promise<unknown>>;
    for (const method of ['handleRequestVote', 'handleAppendEntries', 'handleInstallSnapshot', 'handleTimeoutNow', 'handleJoin', 'handleLeave']) {
      for (const req of garbage) expect([method, await codeOf(node[method]!.call(h.node, req))]).toEqual([method, 'BAD_REQUEST']);
    }
    const entriesNotArray = { term: 1, from: A, clusterId: CLUSTER, prevLogIndex: 1, prevLogTerm: 1, leaderCommit: 0, entries: 'no' };
    expect(await codeOf(h.node.handleAppendEntries(entriesNotArray as never))).toBe('BAD_REQUEST');
    const res = await h.node.handleAppendEntries({ term: 1, from: A, clusterId: CLUSTER, prevLogIndex: 1, prevLogTerm: 1, entries: [], leaderCommit: 1 });
    expect(res.success).toBe(true);
    await h.node.close();
  });

  it('refuses every RPC of another cluster with CLUSTER_MISMATCH', async () => {
    const h = await openHarness();
    await joinThree(h);
    const n: RaftNode = h.node;
    const base = { term: 5, from: A, clusterId: 'other' };
    expect(await codeOf(n.handleRequestVote({ ...base, lastLogIndex: 9, lastLogTerm: 9, preVote: false, transfer: false }))).toBe('CLUSTER_MISMATCH');
    expect(await codeOf(n.handleAppendEntries({ ...base, prevLogIndex: 0, prevLogTerm: 0, entries: [], leaderCommit: 0 }))).toBe('CLUSTER_MISMATCH');
    expect(
      await codeOf(
        n.handleInstallSnapshot({ ...base, lastIncludedIndex: 9, lastIncludedTerm: 1, config: { voters: [A], learners: [] }, offset: 0, data: new Uint8Array(1), done: true }),
      ),
    ).toBe('CLUSTER_MISMATCH');
    expect(await codeOf(n.handleTimeoutNow(base))).toBe('CLUSTER_MISMATCH');
    expect(await codeOf(n.handleLeave({ url: A, clusterId: 'other' }))).toBe('CLUSTER_MISMATCH');
    expect(await codeOf(n.handleJoin({ url: 'http://x', clusterId: 'other' }))).toBe('CLUSTER_MISMATCH');
    expect(n.term).toBe(1);
    await n.close();
  });

  it('refuses RPCs before the node has a cluster with NOT_INITIALIZED', async () => {
    const h = await openHarness();
    expect(await codeOf(h.node.handleAppendEntries({ term: 1, from: A, clusterId: CLUSTER, prevLogIndex: 0, prevLogTerm: 0, entries: [], leaderCommit: 0 }))).toBe(
      'NOT_INITIALIZED',
    );
    await h.node.close();
  });

  it('a follower refuses applies with NOT_LEADER naming the leader', async () => {
    const h = await openHarness();
    await joinThree(h);
    const err = await h.node.apply(encoder.encode('x')).catch((e: unknown) => e);
    expect(isRaftError(err, 'NOT_LEADER')).toBe(true);
    expect((err as { leaderURL?: string }).leaderURL).toBe(A);
    await h.node.close();
  });
});

/** A memory state machine whose first snapshot stream stalls until {@link release}. */
class GatedSnapshots extends MemStateMachine {
  started = 0;
  #release: () => void = () => undefined;
  readonly #gate = new Promise<void>((resolve) => (this.#release = resolve));

  override async snapshot(): Promise<AsyncIterable<Uint8Array>> {
    this.started++;
    const inner = await super.snapshot();
    const gate = this.started === 1 ? this.#gate : Promise.resolve();
    return (async function* () {
      await gate;
      yield* inner;
    })();
  }

  release(): void {
    this.#release();
  }
}
