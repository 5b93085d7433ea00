/** The part of a raft node that {@link watchRaft} reads. */
export interface WatchedRaft {
  readonly state: string;
  readonly failure: unknown;
}

/** Why a watched node can no longer serve: what {@link watchRaft} reports. */
export type RaftEnd = { state: 'removed' } | { state: 'failed'; error: unknown };

/**
 * Calls `onEnd` once when the node reports `removed` (no longer a member: it
 * would serve a topic that stopped growing and call itself ready) or `failed`
 * (storage or the state machine failed: it can neither commit nor apply),
 * checking every `intervalMs` milliseconds (default 250). The timer does not
 * keep the process alive. Returns a function that stops the watch.
 */
export function watchRaft(raft: WatchedRaft, onEnd: (end: RaftEnd) => void, intervalMs = 250): () => void {
  const timer = setInterval(() => {
    const state = raft.state;
    if (state !== 'removed' && state !== 'failed') return;
    clearInterval(timer);
    onEnd(state === 'removed' ? { state } : { state, error: raft.failure });
  }, intervalMs);
  timer.unref();
  return () => clearInterval(timer);
}
