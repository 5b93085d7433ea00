import { describe, expect, it } from '@jest/globals';
import { sleep, waitFor } from '@msg/test-utils';
import { watchRaft, type RaftEnd } from './watch-raft.js';

describe('watchRaft', () => {
  it('reports a node removed from the cluster once, then stops watching', async () => {
    const raft = { state: 'follower', failure: undefined as unknown };
    const ends: RaftEnd[] = [];
    watchRaft(raft, (end) => ends.push(end), 5);
    await sleep(30);
    expect(ends).toEqual([]);
    raft.state = 'removed';
    await waitFor(() => ends.length > 0);
    raft.state = 'failed';
    await sleep(30);
    expect(ends).toEqual([{ state: 'removed' }]);
  });

  it('reports a failed node with the error that failed it', async () => {
    const error = new Error('disk gone');
    const raft = { state: 'leader', failure: undefined as unknown };
    const ends: RaftEnd[] = [];
    watchRaft(raft, (end) => ends.push(end), 5);
    raft.failure = error;
    raft.state = 'failed';
    await waitFor(() => ends.length > 0);
    expect(ends).toEqual([{ state: 'failed', error }]);
  });

  it('reports a node whose state machine failed, before raft notices (no entry to apply yet)', async () => {
    const error = new Error('checkpoint fsync: EIO');
    const raft = { state: 'follower', failure: undefined as unknown };
    const broker = { failure: undefined as unknown };
    const ends: RaftEnd[] = [];
    watchRaft(raft, (end) => ends.push(end), 5, broker);
    await sleep(30);
    expect(ends).toEqual([]);
    broker.failure = error;
    await waitFor(() => ends.length > 0);
    await sleep(30);
    expect(ends).toEqual([{ state: 'failed', error }]);
  });

  it('reports nothing once the watch is stopped', async () => {
    const raft = { state: 'follower', failure: undefined };
    const ends: RaftEnd[] = [];
    const stop = watchRaft(raft, (end) => ends.push(end), 5);
    stop();
    raft.state = 'removed';
    await sleep(30);
    expect(ends).toEqual([]);
  });
});
