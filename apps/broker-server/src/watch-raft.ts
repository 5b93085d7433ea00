/** A value of {@link WatchedRaft.stateChanges}: the node's state, and the error that stopped it when `failed`. */
export interface WatchedState {
  readonly state: string;
  readonly failure?: unknown;
}

/** The part of a raft node that {@link watchRaft} reads: its state as a stream (raft-ts's `RaftNode.stateChanges`). */
export interface WatchedRaft {
  stateChanges(options: { signal?: AbortSignal }): AsyncIterable<WatchedState>;
}

/** Why a watched node can no longer serve: what {@link watchRaft} reports. */
export type RaftEnd = { state: 'removed' } | { state: 'failed'; error: unknown };

/** A state machine that can fail on its own (the broker, whose disk failed): what {@link watchRaft} also reads. */
export interface WatchedStateMachine {
  readonly failure: unknown;
}

/** Options of {@link watchRaft}. */
export interface WatchRaftOptions {
  /**
   * A state machine whose own failure ends the node too (its disk failed:
   * raft would notice only at the next entry to apply, serving on until
   * then). It has no failure event, so it is polled.
   */
  stateMachine?: WatchedStateMachine;
  /** How often `stateMachine.failure` is read, in milliseconds. Default 250. */
  pollMs?: number;
}

/**
 * Calls `onEnd` once when the node reports `removed` (no longer a member: it
 * would serve a topic that stopped growing and call itself ready) or `failed`
 * (storage or the state machine failed: it can neither commit nor apply), as
 * the node's state stream reports it, with no polling; or when
 * `options.stateMachine` reports a failure (read every `pollMs`: the only
 * timer, and it does not keep the process alive). Returns a function that
 * stops the watch (its stream ends, its timer stops).
 */
export function watchRaft(raft: WatchedRaft, onEnd: (end: RaftEnd) => void, options: WatchRaftOptions = {}): () => void {
  const controller = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  let done = false;
  const stop = (): void => {
    done = true;
    controller.abort();
    clearInterval(timer);
  };
  const end = (result: RaftEnd): void => {
    if (done) return;
    stop();
    onEnd(result);
  };
  const stateMachine = options.stateMachine;
  if (stateMachine !== undefined) {
    timer = setInterval(() => {
      if (stateMachine.failure !== undefined) end({ state: 'failed', error: stateMachine.failure });
    }, options.pollMs ?? 250);
    timer.unref();
  }
  void (async () => {
    for await (const change of raft.stateChanges({ signal: controller.signal })) {
      if (change.state === 'removed') return end({ state: 'removed' });
      if (change.state === 'failed') return end({ state: 'failed', error: change.failure });
    }
  })().catch((error: unknown) => end({ state: 'failed', error }));
  return stop;
}
