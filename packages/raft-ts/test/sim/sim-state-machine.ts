import type { StateMachine } from '../../src/state-machine.js';
import type { LogEntry } from '../../src/types.js';

/** Called with each violation a state machine sees. */
export type Report = (message: string) => void;

/**
 * The simulation's state machine: an ordered record of applied commands
 * (index → text). It lives in memory, so a crash loses it and raft must
 * restore the snapshot and re-apply the log. Every apply is checked against
 * `global` (what any node applied at that index) and against its own order.
 */
export class SimStateMachine implements StateMachine {
  readonly state = new Map<number, string>();
  #upTo = 0;
  readonly #global: Map<number, string>;
  readonly #report: Report;
  readonly #name: string;

  constructor(name: string, global: Map<number, string>, report: Report) {
    this.#name = name;
    this.#global = global;
    this.#report = report;
  }

  async apply(entries: readonly LogEntry[], upTo: number): Promise<void> {
    let last = this.#upTo;
    for (const e of entries) {
      if (e.index <= last) this.#report(`${this.#name} applied index ${e.index} after ${last}`);
      last = e.index;
      const text = new TextDecoder().decode(e.data);
      this.#record(e.index, text);
    }
    if (upTo < last || upTo < this.#upTo) this.#report(`${this.#name} apply upTo ${upTo} behind ${last}`);
    this.#upTo = upTo;
  }

  #record(index: number, text: string): void {
    const seen = this.#global.get(index);
    if (seen === undefined) this.#global.set(index, text);
    else if (seen !== text) this.#report(`${this.#name} applied "${text}" at ${index}, another node applied "${seen}"`);
    this.state.set(index, text);
  }

  appliedIndex(): number {
    return this.#upTo;
  }

  async snapshot(): Promise<AsyncIterable<Uint8Array>> {
    const bytes = new TextEncoder().encode(JSON.stringify({ upTo: this.#upTo, state: [...this.state] }));
    return (async function* () {
      for (let at = 0; at < bytes.length; at += 100) yield bytes.subarray(at, at + 100);
    })();
  }

  async restore(snapshot: AsyncIterable<Uint8Array>, index: number): Promise<void> {
    const chunks: Uint8Array[] = [];
    for await (const c of snapshot) chunks.push(c);
    const text = Buffer.concat(chunks).toString('utf8');
    const parsed = JSON.parse(text) as { upTo: number; state: [number, string][] };
    if (parsed.upTo !== index) this.#report(`${this.#name} restored a snapshot of ${parsed.upTo} labelled ${index}`);
    this.state.clear();
    for (const [i, t] of parsed.state) this.#record(i, t);
    this.#upTo = index;
  }
}
