/**
 * A leader's view of one follower's log: `match` (the highest index known to
 * be replicated there), `next` (the next index to send), the AppendEntries in
 * flight, and whether the leader is still probing for the point where the
 * logs agree (then one request at a time) or streaming (up to a window of
 * requests, `next` advanced optimistically as each is sent). Internal.
 */
export class Progress {
  /** Next index to send. */
  next: number;
  /** Highest index known to be in the follower's log (0 while unknown). */
  match = 0;
  /** AppendEntries requests sent and not yet answered. */
  inflight = 0;
  /** Looking for the point where the logs agree: one request at a time, `next` not advanced on send. */
  probing = true;
  /** A snapshot is being sent: no AppendEntries until it is done. */
  snapshotting = false;
  /** When the follower last answered (clock milliseconds; the leadership's start until `heard`). */
  lastContact: number;
  /** Whether the follower answered this leader at all (AppendEntries or a snapshot chunk). */
  heard = false;
  /** While {@link snapshotting}: bytes of the snapshot the follower acknowledged so far, and the snapshot's size. */
  snapshotSent = 0;
  snapshotTotal = 0;
  /** When the first chunk of the snapshot being sent was acknowledged (clock milliseconds). */
  #snapshotStart = 0;
  /** When the last chunk was acknowledged (clock milliseconds). */
  #snapshotLast = 0;
  /** Told of each snapshot sent in full: its size (bytes) and the time its transfer took (seconds). */
  readonly #onSnapshotSent: ((bytes: number, seconds: number) => void) | undefined;
  /** When the last AppendEntries was sent (clock milliseconds). */
  lastSent = -Infinity;
  /** AppendEntries waiting for entries read from disk; later sends wait for them (sends leave in order). */
  queued = 0;
  /** Resolves once the last of the queued sends was handed to the transport. */
  #sent: Promise<void> = Promise.resolve();

  /**
   * A follower not heard from yet: probing from `next` (the leader's last
   * index + 1), contact counted from `now`. `onSnapshotSent` is told of each
   * snapshot sent to it in full (see {@link onSnapshot}).
   */
  constructor(next: number, now: number, onSnapshotSent?: (bytes: number, seconds: number) => void) {
    this.next = next;
    this.lastContact = now;
    this.#onSnapshotSent = onSnapshotSent;
  }

  /** Whether a new (non-forced) request must wait: one is in flight while probing, or the window of `maxInflight` is full. */
  paused(maxInflight: number): boolean {
    return (this.probing && this.inflight > 0) || this.inflight >= maxInflight;
  }

  /** A request for entries `from`..`last` (none when `last < from`) is sent at `now`. */
  onSend(from: number, last: number, now: number): void {
    if (!this.probing && last >= from) this.next = last + 1;
    this.inflight++;
    this.lastSent = now;
  }

  /**
   * Runs `send` with the result of `read` once it is ready and every send
   * queued before it has run, so that requests leave in the order they were
   * made even when some wait for disk reads. Resolves or rejects as `send`.
   */
  inOrder<T, R>(read: Promise<T>, send: (value: T) => R): Promise<Awaited<R>> {
    this.queued++;
    const prior = this.#sent;
    let issued!: () => void;
    this.#sent = new Promise<void>((resolve) => (issued = resolve));
    return Promise.all([read, prior]).then(([value]) => {
      this.queued--;
      issued();
      return send(value);
    }) as Promise<Awaited<R>>;
  }

  /**
   * A request got no answer (unreachable, or an error): its slot is free
   * again, and a streaming follower falls back to probing from `match + 1`.
   */
  onFailure(): void {
    this.inflight = Math.max(0, this.inflight - 1);
    if (!this.probing) {
      this.probing = true;
      this.next = this.match + 1;
    }
  }

  /** An answer arrived at `now` (success or rejection): its slot is free again. */
  onAnswer(now: number): void {
    this.inflight = Math.max(0, this.inflight - 1);
    this.lastContact = now;
    this.heard = true;
  }

  /**
   * The follower answered a chunk of a snapshot of `total` bytes at `now`,
   * holding `received` bytes of it: contact, and the transfer's progress.
   */
  onSnapshotChunk(received: number, total: number, now: number): void {
    // A new transfer (or one started over): its time counts from this first answer.
    if (this.snapshotSent === 0 || this.snapshotTotal !== total || received < this.snapshotSent) this.#snapshotStart = now;
    this.lastContact = now;
    this.heard = true;
    this.snapshotSent = Math.min(received, total);
    this.snapshotTotal = total;
    this.#snapshotLast = now;
  }

  /**
   * The follower holds the leader's log up to `matchIndex` (at most the
   * leader's `lastIndex` counts): `match` and `next` move forward (never
   * back) and the leader streams from now on.
   */
  onSuccess(matchIndex: number, lastIndex: number): void {
    if (matchIndex > this.match) this.match = Math.min(matchIndex, lastIndex);
    if (this.next <= this.match) this.next = this.match + 1;
    this.probing = false;
  }

  /**
   * The follower rejected a request whose previous entry was at
   * `prevLogIndex`, hinting that the logs may agree up to `hint`: probe from
   * there (never below `match + 1`). Returns false, changing nothing, for a
   * stale rejection (below what is known to match).
   */
  onReject(prevLogIndex: number, hint: number): boolean {
    if (prevLogIndex < this.match) return false;
    this.next = Math.max(this.match + 1, Math.min(hint, prevLogIndex - 1) + 1);
    this.probing = true;
    return true;
  }

  /**
   * A snapshot up to `index` was installed at the follower: probe from after
   * it. Its transfer (as recorded by {@link onSnapshotChunk}) is reported as
   * sent and the progress cleared.
   */
  onSnapshot(index: number): void {
    this.match = Math.max(this.match, index);
    this.next = this.match + 1;
    this.probing = true;
    if (this.snapshotTotal > 0) this.#onSnapshotSent?.(this.snapshotTotal, (this.#snapshotLast - this.#snapshotStart) / 1000);
    this.snapshotSent = 0;
    this.snapshotTotal = 0;
  }

  /**
   * Heartbeat at `now`: when requests are in flight and nothing was sent for
   * longer than `timeoutMs`, a request got lost: forget those in flight and
   * probe again from `match + 1`.
   */
  expireLost(now: number, timeoutMs: number): void {
    if (this.inflight > 0 && now - this.lastSent > timeoutMs) {
      this.inflight = 0;
      this.probing = true;
      this.next = this.match + 1;
    }
  }
}
