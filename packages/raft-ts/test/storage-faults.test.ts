// A node whose storage fails stops (state `failed`), on a follower exactly as on
// a leader; entries whose payload cannot be decoded never enter the log.
import { describe, expect, it } from '@jest/globals';
import { waitFor } from '@msg/test-utils';
import { isRaftError } from '../src/errors.js';
import { NodeFileSystem, type FileSystem } from '../src/file-system.js';
import { LogStore } from '../src/log-store.js';
import { RaftNode } from '../src/raft-node.js';
import { EntryType } from '../src/types.js';
import { A, append, codeOf, command, joinThree, MemStateMachine, openHarness } from './harness.js';

/** The real file system, where every fsync of a log segment fails with EIO once `broken.value` is set. */
function failingLogFs(broken: { value: boolean }): FileSystem {
  const inner = new NodeFileSystem();
  return {
    mkdir: (d) => inner.mkdir(d),
    list: (d) => inner.list(d),
    readFile: (p) => inner.readFile(p),
    rename: (a, b) => inner.rename(a, b),
    remove: (p) => inner.remove(p),
    syncDir: (d) => inner.syncDir(d),
    open: async (path) => {
      const h = await inner.open(path);
      const log = /log-\d+\.seg$/.test(path);
      return {
        size: () => h.size(),
        read: (p, n) => h.read(p, n),
        append: (d) => h.append(d),
        truncate: (n) => h.truncate(n),
        close: () => h.close(),
        sync: () => (log && broken.value ? Promise.reject(Object.assign(new Error('EIO: i/o error, fdatasync'), { code: 'EIO' })) : h.sync()),
      };
    },
  };
}

describe('storage failures', () => {
  it('a follower whose log write fails stops: state failed with the error, no votes, no more appends', async () => {
    const broken = { value: false };
    const h = await openHarness({ fs: failingLogFs(broken) });
    await joinThree(h);
    broken.value = true;
    expect(await codeOf(append(h, { prevLogIndex: 1, prevLogTerm: 1, entries: [command(2, 1, 'x')], leaderCommit: 1 }))).not.toBe('resolved');
    await waitFor(() => h.node.state === 'failed');
    expect((h.node.failure as NodeJS.ErrnoException).code).toBe('EIO');
    // It neither accepts entries nor votes any more.
    broken.value = false;
    expect(await codeOf(append(h, { prevLogIndex: 1, prevLogTerm: 1, entries: [command(2, 1, 'x')], leaderCommit: 1 }))).not.toBe('resolved');
    expect(
      await codeOf(h.node.handleRequestVote({ term: 5, from: A, clusterId: h.node.clusterId()!, lastLogIndex: 9, lastLogTerm: 4, preVote: false, transfer: false })),
    ).not.toBe('resolved');
    await h.node.close();
  });

  it('a log fsync that fails with nobody waiting on it (a compaction behind a snapshot) fails the node at once', async () => {
    const broken = { value: false };
    const sm = new MemStateMachine();
    const snapshot = sm.snapshot.bind(sm);
    // The fsync after the compaction that follows this snapshot (at index 5, the last entry) fails; no apply is pending then.
    sm.snapshot = async () => {
      broken.value = true;
      return snapshot();
    };
    const h = await openHarness({ fs: failingLogFs(broken), stateMachine: sm, snapshotThreshold: 5, trailingEntries: 0, segmentBytes: 64 });
    await h.node.initialize();
    await waitFor(() => h.node.isLeader());
    for (const text of ['a', 'b', 'c']) await h.node.apply(new TextEncoder().encode(text)).catch(() => undefined);
    await waitFor(() => h.node.snapshotIndex > 0 || h.node.state === 'failed');
    await waitFor(() => h.node.state === 'failed');
    expect((h.node.failure as NodeJS.ErrnoException).code).toBe('EIO');
    await h.node.close();
  });

  it('refuses a config entry whose data does not decode with BAD_REQUEST, before appending it', async () => {
    const h = await openHarness();
    await joinThree(h);
    const bad = { index: 2, term: 1, type: EntryType.Config, data: new TextEncoder().encode('{"voters": [') };
    expect(await codeOf(append(h, { prevLogIndex: 1, prevLogTerm: 1, entries: [bad], leaderCommit: 1 }))).toBe('BAD_REQUEST');
    const notConfig = { ...bad, data: new TextEncoder().encode('{"voters": "x"}') };
    expect(await codeOf(append(h, { prevLogIndex: 1, prevLogTerm: 1, entries: [notConfig], leaderCommit: 1 }))).toBe('BAD_REQUEST');
    expect(h.node.lastIndex).toBe(1);
    expect(h.node.state).toBe('follower');
    // Nothing of it reached the disk: the node reopens.
    await h.node.close();
    const again = new RaftNode({ ...h.options, stateMachine: new MemStateMachine() });
    await again.open();
    expect(again.lastIndex).toBe(1);
    await again.close();
  });

  it('a config entry already in the log that does not decode fails the open with CORRUPT naming entry, file and offset', async () => {
    const h = await openHarness();
    await joinThree(h);
    await h.node.close();
    // Written past the RPC validation, as damage or an older version could have.
    const log = await LogStore.open(new NodeFileSystem(), h.dir, { sync: true, segmentBytes: 1 << 20 }, { emptyFirst: 1, durableIndex: 0 });
    log.append([{ index: 2, term: 1, type: EntryType.Config, data: new TextEncoder().encode('{"voters": [') }]);
    await log.sync();
    await log.close();
    const node = new RaftNode({ ...h.options, stateMachine: new MemStateMachine() });
    const err = await node.open().catch((e: unknown) => e);
    expect(isRaftError(err, 'CORRUPT')).toBe(true);
    expect((err as Error).message).toMatch(/log-\d{20}\.seg: log entry 2 \(a configuration\) does not decode at offset \d+/);
    expect(node.state).toBe('closed');
  });
});
