/** The part of a raft node that {@link watchRaft} reads. */
export interface WatchedRaft {
  readonly state: string;
  readonly failure: unknown;
}

/** Why a watched node can no longer serve: what {@link watchRaft} reports. */
export type RaftEnd = { state: 'removed' } | { state: 'failed'; error: unknown };

/** A state machine that can fail on its own (the broker, whose disk failed): what {@link watchRaft} also reads. */
export interface WatchedStateMachine {
  readonly failure: unknown;
}

/**
 * Calls `onEnd` once when the node reports `removed` (no longer a member: it
 * would serve a topic that stopped growing and call itself ready) or `failed`
 * (storage or the state machine failed: it can neither commit nor apply), or
 * when `stateMachine` reports a failure (its disk failed: raft would notice
 * only at the next entry to apply, serving on until then), checking every
 * `intervalMs` milliseconds (default 250). The timer does not keep the
 * process alive. Returns a function that stops the watch.
 */
export function watchRaft(raft: WatchedRaft, onEnd: (end: RaftEnd) => void, intervalMs = 250, stateMachine?: WatchedStateMachine): () => void {
  const timer = setInterval(() => {
    if (stateMachine?.failure !== undefined) {
      clearInterval(timer);
      onEnd({ state: 'failed', error: stateMachine.failure });
      return;
    }
    const state = raft.state;
    if (state !== 'removed' && state !== 'failed') return;
    clearInterval(timer);
    onEnd(state === 'removed' ? { state } : { state, error: raft.failure });
  }, intervalMs);
  timer.unref();
  return () => clearInterval(timer);
}
