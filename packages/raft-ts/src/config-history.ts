import { RaftError } from './errors.js';
import type { ClusterConfig, LogEntry } from './types.js';
import { decodeConfigData } from './validate.js';

const EMPTY: ClusterConfig = { voters: [], learners: [] };
const encoder = new TextEncoder();

/** Where a log entry is stored: its segment file and the offset of its record. Internal. */
export interface EntryPlace {
  path: string;
  offset: number;
}

/** The data of a config entry: the configuration as JSON. Internal. */
export function encodeConfig(config: ClusterConfig): Uint8Array {
  return encoder.encode(JSON.stringify(config));
}

/**
 * The configuration an entry of the log holds; `CORRUPT` naming the entry (and
 * where it is, when on disk) when it does not decode: validated RPCs never put
 * such an entry there, so it is damage, never a crash loop. Internal.
 */
export function decodeConfig(data: Uint8Array, index: number, where?: EntryPlace): ClusterConfig {
  try {
    return decodeConfigData(data);
  } catch (err) {
    const at = where ? `${where.path}: ` : '';
    const offset = where ? ` at offset ${where.offset}` : '';
    throw new RaftError('CORRUPT', `${at}log entry ${index} (a configuration) does not decode${offset}: ${(err as Error).message}`, { cause: err });
  }
}

/** Every member of `config`: voters, then learners. Internal. */
export function members(config: ClusterConfig): string[] {
  return [...config.voters, ...config.learners];
}

/**
 * The configurations a node knows: the one its snapshot holds (the base) and
 * one per config entry of its log after the snapshot, in index order. A config
 * entry takes effect when appended (the thesis' rule), so the latest one is the
 * node's configuration whether it is committed or not. Holds the membership
 * change rule too ({@link ConfigHistory.changeBlocker}). Internal.
 */
export class ConfigHistory {
  #entries: { index: number; config: ClusterConfig }[] = [];
  #base: ClusterConfig = EMPTY;

  /** The latest configuration: that of the last config entry, else the snapshot's (empty before any). */
  latest(): ClusterConfig {
    return this.#entries[this.#entries.length - 1]?.config ?? this.#base;
  }

  /** Index of the last config entry of the log, 0 when the log after the snapshot holds none. */
  get latestIndex(): number {
    return this.#entries[this.#entries.length - 1]?.index ?? 0;
  }

  /** The configuration in effect at `index`: that of the last config entry at or before it, else the snapshot's. */
  at(index: number): ClusterConfig {
    let c = this.#base;
    for (const x of this.#entries) if (x.index <= index) c = x.config;
    return c;
  }

  /** Records the config entry at `index` (appended to the log after every one known). */
  add(index: number, config: ClusterConfig): void {
    this.#entries.push({ index, config });
  }

  /** Forgets the config entries at `from` and after (the log was truncated there); true when there were any. */
  truncateFrom(from: number): boolean {
    const before = this.#entries.length;
    this.#entries = this.#entries.filter((c) => c.index < from);
    return this.#entries.length !== before;
  }

  /** Sets the snapshot's configuration (the base) without touching the config entries. */
  setBase(config: ClusterConfig): void {
    this.#base = config;
  }

  /** A snapshot up to `index` holding `config` was taken: it is the new base, the entries it covers go. */
  compactTo(index: number, config: ClusterConfig): void {
    this.#base = config;
    this.#entries = this.#entries.filter((c) => c.index > index);
  }

  /**
   * Replaces the config entries with those of `entries` after index `after`
   * (the snapshot's), decoded; `CORRUPT` naming the entry and its place
   * (`locate`) when one does not decode.
   */
  rebuild(entries: readonly LogEntry[], after: number, locate: (index: number) => EntryPlace | undefined): void {
    this.#entries = [];
    for (const e of entries) {
      if (e.index > after) this.#entries.push({ index: e.index, config: decodeConfig(e.data, e.index, locate(e.index)) });
    }
  }

  /**
   * Whether `url` may stand for election: it is a voter or a learner of the
   * latest configuration, or a voter of the one before while the latest (which
   * removes it) is not known to be committed (`commit`). Without the second
   * case, nodes removed by uncommitted changes of different leaders could all
   * refuse to campaign while refusing their votes to a less up-to-date
   * remaining voter (the thesis §4.2.2: a leader outside its configuration may
   * still lead until the change commits). A learner stands for the same
   * reason: its log may be the only up-to-date one, and the voters' older logs
   * cannot win (a majority of voters elects it: safety does not need it to be a
   * voter). Pre-vote keeps either from standing while a leader is heard, and a
   * leader outside the voters hands over once it committed (see `RaftNode`).
   */
  electable(url: string, commit: number): boolean {
    const latest_ = this.latest();
    if (latest_.voters.includes(url) || latest_.learners.includes(url)) return true;
    const latest = this.latestIndex;
    return latest > commit && this.at(latest - 1).voters.includes(url);
  }

  /** Whether `url` is a member of the configuration before the latest one, which is not committed yet (`commit`). */
  removedByPending(url: string, commit: number): boolean {
    const latest = this.latestIndex;
    return latest > commit && members(this.at(latest - 1)).includes(url);
  }

  /**
   * On a leader whose term began at index `termStart` (its no-op), with
   * `commit` committed: why a membership change may not be appended now, or
   * `undefined` when it may. Only once the leader has committed an entry of
   * its own term, and with no other change uncommitted: a leader that changes
   * the configuration before that can be overruled by an older leader holding
   * another uncommitted change, and committed entries are lost (the
   * single-server change flaw, fixed in the dissertation's errata).
   */
  changeBlocker(commit: number, termStart: number): string | undefined {
    if (commit < termStart) return 'the leader has not yet committed an entry of its term';
    if (this.latestIndex > commit) return 'a membership change is in progress';
    return undefined;
  }
}
