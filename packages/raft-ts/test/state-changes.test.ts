// RaftNode.stateChanges(): the node's state as a coalescing async iterable.
import { describe, expect, it } from '@jest/globals';
import { waitFor } from '@msg/test-utils';
import { isRaftError } from '../src/errors.js';
import type { StateChange } from '../src/raft-node.js';
import { A, B, ME, append, configEntry, elect, joinThree, openHarness, shutdown } from './harness.js';

/** Collects every value of the node's state stream until it ends. */
function collect(changes: AsyncIterable<StateChange>): { seen: StateChange[]; ended: Promise<void> } {
  const seen: StateChange[] = [];
  const ended = (async () => {
    for await (const change of changes) seen.push(change);
  })();
  return { seen, ended };
}

describe('stateChanges()', () => {
  it('yields the current state, then each change of role, leader and term, and ends when the node closes', async () => {
    const h = await openHarness();
    const { seen, ended } = collect(h.node.stateChanges());
    await waitFor(() => seen.length === 1);
    expect(seen[0]).toEqual({ state: 'uninitialized', leader: undefined, term: 0 });
    await joinThree(h);
    await waitFor(() => seen.some((c) => c.state === 'follower' && c.leader === A && c.term === 1));
    await elect(h);
    await waitFor(() => seen.some((c) => c.state === 'leader'));
    expect(seen.some((c) => c.state === 'candidate' && c.leader === undefined && c.term === 2)).toBe(true);
    expect(seen[seen.length - 1]).toEqual({ state: 'leader', leader: ME, term: 2 });
    await shutdown(h);
    await ended;
    expect(seen.map((c) => c.state)).not.toContain('closed');
  });

  it('reports a follower removed by its configuration', async () => {
    const h = await openHarness();
    await joinThree(h);
    const { seen, ended } = collect(h.node.stateChanges());
    await waitFor(() => seen.length === 1);
    await append(h, { prevLogIndex: 1, prevLogTerm: 1, entries: [configEntry(2, 1, { voters: [A, B], learners: [] })], leaderCommit: 2 });
    await waitFor(() => seen.length === 2);
    expect(seen).toEqual([
      { state: 'follower', leader: A, term: 1 },
      { state: 'removed', leader: A, term: 1 },
    ]);
    await h.node.close();
    await ended;
  });

  it('reports a failure with the error that stopped the node, then ends', async () => {
    const h = await openHarness();
    await h.node.initialize();
    await waitFor(() => h.node.isLeader());
    h.sm.failOn = 'boom';
    const { seen, ended } = collect(h.node.stateChanges());
    await h.node.apply(new TextEncoder().encode('boom')).catch(() => undefined);
    await ended;
    const last = seen[seen.length - 1];
    expect(last?.state).toBe('failed');
    expect(last?.state === 'failed' && isRaftError(last.failure, 'APPLY_FAILED')).toBe(true);
    expect(last?.state === 'failed' && last.failure).toBe(h.node.failure);
    await h.node.close();
  });

  it('coalesces the changes a slow consumer missed into the latest state, and ends when its signal aborts', async () => {
    const h = await openHarness();
    await joinThree(h);
    const controller = new AbortController();
    const changes = h.node.stateChanges({ signal: controller.signal });
    expect((await changes.next()).value).toEqual({ state: 'follower', leader: A, term: 1 });
    await append(h, { term: 2, from: B, prevLogIndex: 1, prevLogTerm: 1 });
    await append(h, { term: 3, from: A, prevLogIndex: 1, prevLogTerm: 1 });
    expect((await changes.next()).value).toEqual({ state: 'follower', leader: A, term: 3 });
    const pending = changes.next();
    controller.abort();
    expect(await pending).toEqual({ done: true, value: undefined });
    await h.node.close();
  });

  it('ends at once on a closed node', async () => {
    const h = await openHarness();
    await h.node.close();
    const { seen, ended } = collect(h.node.stateChanges());
    await ended;
    expect(seen).toEqual([]);
  });
});
