import type { LogEntry } from './types.js';

/**
 * What raft-ts replicates: the application's state. raft-ts calls `apply()`
 * with committed entries in log order, never concurrently, and never while a
 * `snapshot()` call or a `restore()` is pending.
 */
export interface StateMachine {
  /** Applies committed Command entries in log order. `upTo` (>= the last entry's index) is the index of the
   *  last committed entry covered by this call (Noop/Config entries are not passed), so the machine can record
   *  progress past them. Must not throw for bad entry data (ignore + log); a throw stops the node (APPLY_FAILED). */
  apply(entries: readonly LogEntry[], upTo: number): Promise<void>;
  /** Highest index whose effects the machine has made durable; raft re-applies entries after it on open. */
  appliedIndex(): number;
  /** Starts a snapshot of the state as of appliedIndex() (raft calls no apply() until this promise resolves);
   *  returns the snapshot's bytes as a stream that may be read while later entries are applied. */
  snapshot(): Promise<AsyncIterable<Uint8Array>>;
  /** Replaces the whole state with a snapshot whose last included index is `index`. */
  restore(snapshot: AsyncIterable<Uint8Array>, index: number): Promise<void>;
  /**
   * Optional, for a machine that keeps its own state durable (on disk, as the broker does). Starts a checkpoint
   * of the state as of now, the last `upTo` applied (raft calls no apply() until this promise resolves), and
   * resolves with that index and a promise that resolves once that state is durable (applies go on meanwhile;
   * it rejects if it cannot be made durable, and raft then stops). With it, raft compacts its log behind the
   * machine's own checkpoint and records only a small compaction marker, instead of copying the whole state
   * into a snapshot file each time: `snapshot()` is then called only when a follower needs a snapshot. On open,
   * raft refuses (`CORRUPT`) a machine whose appliedIndex() is behind the marker: the entries it needs are gone.
   */
  checkpoint?(): Promise<{ index: number; durable: Promise<void> }>;
}
