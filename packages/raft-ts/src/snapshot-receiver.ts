import type { SnapshotMeta, SnapshotWriter } from './snapshot-store.js';
import type { ClusterConfig, InstallSnapshotRequest } from './types.js';

/** What a {@link SnapshotReceiver} needs of its node. Internal. */
export interface SnapshotReceiverHost {
  /** Begins writing a snapshot (the node's snapshot store). */
  create(index: number, term: number, config: ClusterConfig): Promise<SnapshotWriter>;
  /** The local snapshot being written, if any: one snapshot writer at a time. */
  localSnapshot(): Promise<void> | undefined;
  /** Fails the node: a write of a snapshot on its way to replace the log failed. */
  fail(err: unknown): void;
}

/** What {@link SnapshotReceiver.receive} made of one chunk: the bytes received, and the snapshot when it is complete. */
export interface Received {
  /** Bytes of the snapshot received so far (where the leader resumes). */
  received: number;
  /** The finished, durable snapshot when this chunk was its last. */
  meta?: SnapshotMeta;
}

interface Incoming {
  index: number;
  term: number;
  leaderTerm: number;
  writer: SnapshotWriter;
  received: number;
}

/**
 * A follower's side of InstallSnapshot: assembles the chunks of the snapshot
 * a leader sends into a snapshot file, one chunk at a time and in order. A
 * chunk at offset 0 of another snapshot (or from another leader's term)
 * starts over; a chunk at an unexpected offset is answered with what was
 * received, so the leader resumes there. A failed write fails the node.
 * Internal.
 */
export class SnapshotReceiver {
  readonly #host: SnapshotReceiverHost;
  #incoming: Incoming | undefined;
  #chain: Promise<unknown> = Promise.resolve();

  /** Does no I/O. */
  constructor(host: SnapshotReceiverHost) {
    this.#host = host;
  }

  /** Whether a snapshot is being received (no local snapshot is taken meanwhile). */
  get receiving(): boolean {
    return this.#incoming !== undefined;
  }

  /** Runs `task` after every task handed in before it settled: chunks are handled one at a time. */
  inTurn<T>(task: () => Promise<T>): Promise<T> {
    const run = this.#chain.then(task);
    this.#chain = run.catch(() => undefined);
    return run;
  }

  /**
   * Takes one chunk of the snapshot `req` describes, sent by the leader of
   * `req.term`. Rejects with the storage error (after failing the node) when
   * the snapshot cannot be created, written or finished.
   */
  async receive(req: InstallSnapshotRequest): Promise<Received> {
    let inc = this.#incoming;
    if (req.offset === 0 && (!inc || inc.index !== req.lastIncludedIndex || inc.leaderTerm !== req.term || inc.received !== 0)) {
      await inc?.writer.abort().catch(() => undefined);
      this.#incoming = undefined;
      await this.#host.localSnapshot(); // one snapshot writer at a time
      let writer: SnapshotWriter;
      try {
        writer = await this.#host.create(req.lastIncludedIndex, req.lastIncludedTerm, req.config);
      } catch (err) {
        this.#host.fail(err);
        throw err;
      }
      inc = { index: req.lastIncludedIndex, term: req.lastIncludedTerm, leaderTerm: req.term, received: 0, writer };
      this.#incoming = inc;
    }
    if (!inc || inc.index !== req.lastIncludedIndex || inc.received !== req.offset) {
      return { received: inc && inc.index === req.lastIncludedIndex ? inc.received : 0 };
    }
    try {
      await inc.writer.write(req.data);
      inc.received += req.data.length;
      if (!req.done) return { received: inc.received };
      this.#incoming = undefined;
      return { received: inc.received, meta: await inc.writer.finish() };
    } catch (err) {
      this.#host.fail(err); // the snapshot being received is on its way to replace the log: its disk failed
      throw err;
    }
  }

  /**
   * Drops the snapshot being received when its leader's term is before `term` (in turn with the chunks): no
   * chunk of it is accepted any more, and it would hold local snapshots back for good.
   */
  dropOlderThan(term: number): Promise<void> {
    return this.inTurn(async () => {
      if (this.#incoming && this.#incoming.leaderTerm < term) await this.abort();
    });
  }

  /** Drops the snapshot being received, if any (the node closes). */
  async abort(): Promise<void> {
    await this.#incoming?.writer.abort().catch(() => undefined);
    this.#incoming = undefined;
  }
}
