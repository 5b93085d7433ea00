import { RaftError } from '../../src/errors.js';
import type { RpcHandler, Transport } from '../../src/transport.js';
import type { Prng } from './prng.js';
import type { Scheduler } from './scheduler.js';

/** Fault settings of {@link SimNetwork}; probabilities per message, delays in virtual ms. */
export interface NetworkFaults {
  drop: number;
  duplicate: number;
  minDelay: number;
  maxDelay: number;
}

const never = new Promise<never>(() => undefined);

/**
 * The simulation's network: messages are delayed by a random time (so they
 * reorder), dropped, duplicated, and cut by partitions. A call the network
 * loses rejects `UNREACHABLE` after `rpcTimeoutMs`, like a real transport.
 */
export class SimNetwork {
  readonly #sched: Scheduler;
  readonly #rng: Prng;
  readonly #handlers = new Map<string, RpcHandler>();
  #groups = new Map<string, number>();
  /** One-way cuts: `from>to` means what `from` sends to `to` is lost. */
  readonly #blocked = new Set<string>();
  /** Nodes stopped like a SIGSTOPped process: what reaches them waits here until they resume. */
  readonly #held = new Map<string, (() => void)[]>();
  faults: NetworkFaults = { drop: 0, duplicate: 0, minDelay: 1, maxDelay: 5 };
  rpcTimeoutMs = 200;
  /** Messages sent, for statistics. */
  sent = 0;

  constructor(sched: Scheduler, rng: Prng) {
    this.#sched = sched;
    this.#rng = rng;
  }

  /** Makes `url` reachable through `handler` (or unreachable when undefined). */
  register(url: string, handler: RpcHandler | undefined): void {
    if (handler) this.#handlers.set(url, handler);
    else this.#handlers.delete(url);
  }

  /** Splits the nodes: each URL gets a group number; only equal groups talk. Unlisted URLs are in group 0. */
  partition(groups: Map<string, number>): void {
    this.#groups = groups;
  }

  /** Removes every partition and one-way cut. */
  heal(): void {
    this.#groups = new Map();
    this.#blocked.clear();
  }

  /** Cuts one direction of a link: what `from` sends to `to` (requests and answers alike) is lost. */
  block(from: string, to: string): void {
    this.#blocked.add(`${from}>${to}`);
  }

  /** Restores what {@link SimNetwork.block} cut. */
  unblock(from: string, to: string): void {
    this.#blocked.delete(`${from}>${to}`);
  }

  /** Stops `url` like SIGSTOP: messages to it, and answers to its calls, wait until {@link SimNetwork.resume}. */
  pause(url: string): void {
    if (!this.#held.has(url)) this.#held.set(url, []);
  }

  /** Lets a paused node go on (SIGCONT): what waited for it arrives now, in order. */
  resume(url: string): void {
    const waiting = this.#held.get(url);
    this.#held.delete(url);
    for (const fn of waiting ?? []) this.#sched.schedule(0, fn);
  }

  /** Whether `url` is paused. */
  paused(url: string): boolean {
    return this.#held.has(url);
  }

  /** Runs `fn` now, or when `url` resumes if it is paused. */
  #at(url: string, fn: () => void): void {
    const waiting = this.#held.get(url);
    if (waiting) waiting.push(fn);
    else fn();
  }

  /** The one-way cuts in force, as `from>to` strings. */
  get blocked(): string[] {
    return [...this.#blocked];
  }

  /** Whether a message sent by `a` reaches `b` now. */
  #connected(a: string, b: string): boolean {
    return (this.#groups.get(a) ?? 0) === (this.#groups.get(b) ?? 0) && !this.#blocked.has(`${a}>${b}`);
  }

  #delay(): number {
    return this.#rng.int(this.faults.minDelay, this.faults.maxDelay);
  }

  /** The transport of one incarnation of the node `from`; dead once `alive()` is false. */
  transport(from: string, alive: () => boolean): Transport {
    const call = <Req, Res>(target: string, req: Req, handle: (h: RpcHandler, r: Req) => Promise<Res>): Promise<Res> => {
      if (!alive()) return never;
      this.sent++;
      return new Promise<Res>((resolve, reject) => {
        let settled = false;
        const timer = this.#sched.schedule(this.rpcTimeoutMs, () =>
          this.#at(from, () => {
            if (settled || !alive()) return;
            settled = true;
            reject(new RaftError('UNREACHABLE', `${target} did not answer`));
          }),
        );
        const answer = (fn: () => void): void => {
          if (this.#rng.chance(this.faults.drop) || !this.#connected(target, from)) return;
          this.#sched.schedule(this.#delay(), () =>
            this.#at(from, () => {
              if (settled || !alive()) return;
              settled = true;
              this.#sched.cancel(timer);
              fn();
            }),
          );
        };
        const deliver = (): void => this.#at(target, handOver);
        const handOver = (): void => {
          const h = this.#handlers.get(target);
          if (!h || !this.#connected(from, target)) return;
          let copy: Req;
          try {
            copy = structuredClone(req);
          } catch {
            copy = req;
          }
          handle(h, copy).then(
            (res) => answer(() => resolve(structuredClone(res))),
            (err: unknown) => answer(() => reject(err instanceof Error ? err : new Error(String(err)))),
          );
        };
        if (this.#rng.chance(this.faults.drop)) return;
        this.#sched.schedule(this.#delay(), deliver);
        if (this.#rng.chance(this.faults.duplicate)) this.#sched.schedule(this.#delay(), deliver);
      });
    };
    return {
      requestVote: (t, r) => call(t, r, (h, x) => h.handleRequestVote(x)),
      appendEntries: (t, r) => call(t, r, (h, x) => h.handleAppendEntries(x)),
      installSnapshot: (t, r) => call(t, r, (h, x) => h.handleInstallSnapshot(x)),
      timeoutNow: (t, r) => call(t, r, (h, x) => h.handleTimeoutNow(x)),
      join: (t, r) => call(t, r, (h, x) => h.handleJoin(x)),
      leave: (t, r) => call(t, r, (h, x) => h.handleLeave(x)),
      close: async () => undefined,
    };
  }
}
