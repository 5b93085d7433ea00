// A state machine that keeps its own state durable (StateMachine.checkpoint): raft compacts its log behind the
// machine's checkpoints with a small marker instead of copying the state into every snapshot, takes a full
// snapshot only for a follower that needs one, and refuses to open a machine that lost what the log was
// compacted behind.
import { readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from '@jest/globals';
import { makeTempDir, waitFor } from '@msg/test-utils';
import { RaftNode } from '../src/raft-node.js';
import { CheckpointedStateMachine, codeOf, MemStateMachine, openHarness, type Harness } from './harness.js';
import { applyAll, closeNode, formCluster, leaderOf, openNode, startMember, type Member } from './loopback.js';

const encoder = new TextEncoder();

/** A single-node cluster led by the harness node, on a checkpointed state machine kept in `dir`/sm. */
async function single(dir: string, sm: MemStateMachine, threshold = 20): Promise<Harness> {
  const h = await openHarness({ stateMachine: sm, snapshotThreshold: threshold, trailingEntries: 2 }, join(dir, 'raft'));
  if (h.node.clusterId() === undefined) await h.node.initialize();
  else h.clock.advance(150);
  await waitFor(() => h.node.isLeader());
  return h;
}

async function applyTexts(h: Harness, texts: string[]): Promise<number> {
  let last = 0;
  for (const t of texts) last = await h.node.apply(encoder.encode(t));
  return last;
}

/** Names and sizes of the snapshot files in a raft dir. */
async function snapshotFiles(dir: string): Promise<{ name: string; size: number }[]> {
  const names = (await readdir(dir)).filter((n) => n.startsWith('snapshot-') && n.endsWith('.snap'));
  return Promise.all(names.map(async (name) => ({ name, size: (await stat(join(dir, name))).size })));
}

describe('compaction behind a state machine that keeps its own state durable', () => {
  it('compacts the log behind the checkpoint without copying the state, and reopens from the machine\'s own state', async () => {
    const dir = await makeTempDir('raft-compact-');
    const sm = new CheckpointedStateMachine(join(dir, 'sm'));
    const h = await single(dir, sm);
    const texts = Array.from({ length: 60 }, (_, i) => `t${i}-${'x'.repeat(200)}`);
    const last = await applyTexts(h, texts);
    await waitFor(async () => h.node.snapshotIndex >= 40 && (await h.node.readLogEntry(2)) === undefined, { message: 'the log compacted' });
    expect(sm.snapshots).toBe(0);
    // One marker, far smaller than the state it stands for (60 entries of 200 bytes).
    const files = await snapshotFiles(join(dir, 'raft'));
    expect(files).toHaveLength(1);
    expect(files[0]!.size).toBeLessThan(300);
    await h.node.close();

    // A new incarnation starts from the machine's checkpoint: nothing restored, the rest re-applied from the log.
    const again = await CheckpointedStateMachine.load(join(dir, 'sm'));
    expect(again.upTo).toBeGreaterThanOrEqual(h.node.snapshotIndex);
    const h2 = await single(dir, again);
    await waitFor(() => h2.node.appliedIndex >= last);
    expect(again.restores).toBe(0);
    expect(again.texts()).toEqual(texts);
    expect(await h2.node.apply(encoder.encode('more'))).toBeGreaterThan(last);
    await h2.node.close();
  });

  it('refuses to open (CORRUPT, naming the marker) when the machine lost the state the log was compacted behind', async () => {
    const dir = await makeTempDir('raft-compact-');
    const h = await single(dir, new CheckpointedStateMachine(join(dir, 'sm')));
    await applyTexts(h, Array.from({ length: 30 }, (_, i) => `t${i}`));
    await waitFor(() => h.node.snapshotIndex > 0, { message: 'a marker' });
    const marker = h.node.snapshotIndex;
    await h.node.close();

    // The machine's own files are gone (a wiped or wrong state dir): the entries it needs were compacted away.
    const node = new RaftNode({ ...h.options, stateMachine: new CheckpointedStateMachine(join(dir, 'elsewhere')) });
    const opened = node.open();
    expect(await codeOf(opened)).toBe('CORRUPT');
    await expect(opened).rejects.toThrow(new RegExp(`snapshot-0*${marker}\\.snap: the log was compacted up to ${marker}`));
    await node.close().catch(() => undefined);
  });

  it('refuses to open (CORRUPT) when an entry it applied before the marker is damaged like a torn write, rather than cut the log there', async () => {
    const dir = await makeTempDir('raft-compact-');
    const h = await single(dir, new CheckpointedStateMachine(join(dir, 'sm')));
    const texts = Array.from({ length: 30 }, (_, i) => `t${i}-${'x'.repeat(600)}`);
    await applyTexts(h, texts);
    await waitFor(() => h.node.snapshotIndex >= 20, { message: 'a marker' });
    await h.node.close();
    // A zero sector (what a crash leaves of a write that never reached the disk) inside entry t5, long applied:
    // cutting the log there would drop the entries after the marker too, which were never applied elsewhere.
    const segment = join(dir, 'raft', (await readdir(join(dir, 'raft'))).filter((n) => n.startsWith('log-')).sort()[0]!);
    const bytes = await readFile(segment);
    const at = Math.ceil((bytes.indexOf('t5-') + 64) / 512) * 512;
    bytes.fill(0, at, at + 512);
    await writeFile(segment, bytes);
    const node = new RaftNode({ ...h.options, stateMachine: await CheckpointedStateMachine.load(join(dir, 'sm')) });
    const opened = node.open();
    expect(await codeOf(opened)).toBe('CORRUPT');
    await expect(opened).rejects.toThrow(segment);
    await node.close().catch(() => undefined);
  });

  it('stops the node (APPLY_FAILED) when the machine cannot make a checkpoint durable, and compacts nothing', async () => {
    const dir = await makeTempDir('raft-compact-');
    const sm = new CheckpointedStateMachine(join(dir, 'sm'));
    const h = await single(dir, sm);
    sm.failDurable = new Error('EIO: fsync failed');
    await applyTexts(h, Array.from({ length: 19 }, (_, i) => `t${i}`)).catch(() => undefined);
    await h.node.apply(encoder.encode('crosses the threshold')).catch(() => undefined);
    await waitFor(() => h.node.state === 'failed', { message: 'the node failed' });
    expect(h.node.failure).toMatchObject({ code: 'APPLY_FAILED' });
    expect(h.node.snapshotIndex).toBe(0);
    expect(await snapshotFiles(join(dir, 'raft'))).toEqual([]);
    expect(await codeOf(h.node.apply(encoder.encode('x')))).toBe('APPLY_FAILED');
    await h.node.close();
  });

  it('opens a log compacted behind a full snapshot of an earlier version, then compacts behind checkpoints', async () => {
    const dir = await makeTempDir('raft-compact-');
    // First a machine without checkpoint(): raft copies its state into full snapshots.
    const old = await single(dir, new MemStateMachine());
    const first = Array.from({ length: 30 }, (_, i) => `old${i}`);
    await applyTexts(old, first);
    await waitFor(() => old.node.snapshotIndex > 0);
    await old.node.close();

    // Now a machine that checkpoints (and has no state yet): raft restores the full snapshot, then uses markers.
    const sm = new CheckpointedStateMachine(join(dir, 'sm'));
    const h = await single(dir, sm);
    expect(sm.restores).toBe(1);
    const more = Array.from({ length: 40 }, (_, i) => `new${i}`);
    const last = await applyTexts(h, more);
    await waitFor(async () => h.node.snapshotIndex > 30 && (await snapshotFiles(join(dir, 'raft')))[0]!.size < 300, { message: 'a marker replaced the snapshot' });
    expect(sm.snapshots).toBe(0);
    expect(h.node.appliedIndex).toBe(last);
    expect(sm.texts()).toEqual([...first, ...more]);
    await h.node.close();
  });
});

describe('a three-node cluster whose state machines checkpoint themselves', () => {
  it('takes a full snapshot only when a follower needs one, and the follower catches up through it', async () => {
    const members: Member<CheckpointedStateMachine>[] = [];
    for (let i = 0; i < 3; i++) members.push(await startMember((dir) => CheckpointedStateMachine.load(`${dir}/sm`)));
    try {
      await formCluster(members);

      // Compactions while every follower keeps up: markers only, on every node.
      let last = 0;
      for (let round = 0; round < 3; round++) last = await applyAll(await leaderOf(members), Array.from({ length: 30 }, (_, i) => `one-${round}-${i}`));
      await waitFor(() => members.every((m) => m.node!.appliedIndex >= last && m.node!.snapshotIndex > 0), { timeoutMs: 10_000, message: 'every node compacted' });
      for (const m of members) expect(m.sm.snapshots).toBe(0);

      // A follower goes down; the leader compacts past it, then it comes back.
      const leader = await leaderOf(members);
      const down = members.find((m) => m !== leader)!;
      const downLast = down.node!.lastIndex;
      await closeNode(down);
      for (let round = 0; round < 5; round++) last = await applyAll(leader, Array.from({ length: 30 }, (_, i) => `two-${round}-${i}`));
      await waitFor(async () => leader.node!.snapshotIndex > downLast + 5 && (await leader.node!.readLogEntry(downLast + 1)) === undefined, {
        timeoutMs: 10_000,
        message: 'the leader compacted past the down node',
      });
      expect(leader.sm.snapshots).toBe(0);

      await openNode(down);
      await waitFor(() => down.node!.appliedIndex >= last, { timeoutMs: 15_000, message: 'the restarted node caught up' });
      expect(leader.messages).toContain('raft: a follower needs a snapshot; taking one');
      expect(leader.sm.snapshots).toBe(1);
      expect(down.messages).toContain('raft: snapshot installed');
      expect(down.sm.restores).toBe(1);
      for (const m of members) expect(m.sm.texts()).toEqual(leader.sm.texts());
      expect(leader.sm.texts()).toHaveLength(8 * 30);
    } finally {
      for (const m of members) {
        await m.node?.close().catch(() => undefined);
        await m.close();
      }
    }
  }, 60_000);
});
