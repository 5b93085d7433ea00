import { describe, expect, it } from '@jest/globals';
import { sleep, waitFor } from '@msg/test-utils';
import { watchRaft, type RaftEnd, type WatchedRaft, type WatchedState } from './watch-raft.js';

/** A raft node whose state the test sets; its state stream yields the latest state, as raft-ts's does. */
class FakeRaft implements WatchedRaft {
  current: WatchedState = { state: 'follower' };
  /** State streams running now. */
  streams = 0;
  #wake: (() => void) | undefined;

  set(state: WatchedState): void {
    this.current = state;
    this.#wake?.();
  }

  async *stateChanges({ signal }: { signal?: AbortSignal }): AsyncGenerator<WatchedState> {
    this.streams++;
    const poke = (): void => this.#wake?.();
    signal?.addEventListener('abort', poke);
    try {
      let last: WatchedState | undefined;
      while (!signal?.aborted) {
        if (this.current !== last) {
          last = this.current;
          yield last;
          continue;
        }
        await new Promise<void>((resolve) => (this.#wake = resolve));
      }
    } finally {
      this.streams--;
      signal?.removeEventListener('abort', poke);
    }
  }
}

/** Lets pending promise callbacks and immediates run (no timer of the watch could fire meanwhile: none is set). */
const settle = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

describe('watchRaft', () => {
  it('reports a node removed from the cluster as its state stream says so, with no poll, once, then stops watching', async () => {
    const raft = new FakeRaft();
    const ends: RaftEnd[] = [];
    watchRaft(raft, (end) => ends.push(end));
    await settle();
    expect(ends).toEqual([]);
    expect(raft.streams).toBe(1);
    raft.set({ state: 'removed' });
    await settle();
    expect(ends).toEqual([{ state: 'removed' }]);
    expect(raft.streams).toBe(0);
    raft.set({ state: 'failed', failure: new Error('later') });
    await settle();
    expect(ends).toEqual([{ state: 'removed' }]);
  });

  it('reports a failed node with the error that failed it', async () => {
    const error = new Error('disk gone');
    const raft = new FakeRaft();
    raft.set({ state: 'leader' });
    const ends: RaftEnd[] = [];
    watchRaft(raft, (end) => ends.push(end));
    raft.set({ state: 'failed', failure: error });
    await settle();
    expect(ends).toEqual([{ state: 'failed', error }]);
  });

  it('reports a node whose state machine failed, before raft notices (no entry to apply yet)', async () => {
    const error = new Error('checkpoint fsync: EIO');
    const raft = new FakeRaft();
    const broker = { failure: undefined as unknown };
    const ends: RaftEnd[] = [];
    watchRaft(raft, (end) => ends.push(end), { stateMachine: broker, pollMs: 5 });
    await sleep(30);
    expect(ends).toEqual([]);
    broker.failure = error;
    await waitFor(() => ends.length > 0);
    await sleep(30);
    expect(ends).toEqual([{ state: 'failed', error }]);
    expect(raft.streams).toBe(0);
  });

  it('reports nothing once the watch is stopped, and ends its stream', async () => {
    const raft = new FakeRaft();
    const broker = { failure: undefined as unknown };
    const ends: RaftEnd[] = [];
    const stop = watchRaft(raft, (end) => ends.push(end), { stateMachine: broker, pollMs: 5 });
    await settle();
    stop();
    raft.set({ state: 'removed' });
    broker.failure = new Error('EIO');
    await sleep(30);
    expect(ends).toEqual([]);
    expect(raft.streams).toBe(0);
  });
});
