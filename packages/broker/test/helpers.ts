import { EntryType, RaftError, type LogEntry, type StateMachine } from 'raft-ts';
import { makeTempDir } from '@msg/test-utils';
import { Broker, type BrokerOptions } from '../src/broker.js';
import type { BrokerLog } from '../src/broker-log.js';
import type { LogFields, Logger } from '../src/logger.js';

/** One captured log line. */
export interface LogLine {
  level: string;
  msg: string;
  fields: LogFields;
}

/** A logger that keeps its lines in memory. */
export function memoryLogger(): Logger & { lines: LogLine[] } {
  const lines: LogLine[] = [];
  const at = (level: string) => (msg: string, fields: LogFields = {}) => void lines.push({ level, msg, fields });
  return { lines, debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
}

/**
 * An in-process stand-in for a raft node: assigns consecutive indexes,
 * "commits" at once and applies to its state machine in order. Keeps every
 * entry so tests can re-apply them (as raft does after a restart).
 */
export class FakeLog implements BrokerLog {
  readonly entries: LogEntry[] = [];
  /** Index before the first entry (a log that continues after an imported state). */
  base = 0;
  term = 1;
  leading = true;
  leaderURL: string | undefined = 'http://127.0.0.1:9001';
  members = ['http://127.0.0.1:9001', 'http://127.0.0.1:9002'];
  machine: StateMachine;

  constructor(machine: StateMachine) {
    this.machine = machine;
  }

  get commitIndex(): number {
    return this.base + this.entries.length;
  }

  /** Every entry commits at once here, so the log ends at the commit index (tests may raise it). */
  uncommitted = 0;

  get lastIndex(): number {
    return this.commitIndex + this.uncommitted;
  }

  apply(data: Uint8Array): Promise<number> {
    return this.applyBatch([data]);
  }

  async applyBatch(datas: Uint8Array[]): Promise<number> {
    if (!this.leading) throw new RaftError('NOT_LEADER', 'not the leader', this.leaderURL === undefined ? {} : { leaderURL: this.leaderURL });
    const first = this.commitIndex + 1;
    const added = datas.map((data, i): LogEntry => ({ index: first + i, term: this.term, type: EntryType.Command, data }));
    this.entries.push(...added);
    await this.machine.apply(added, first + added.length - 1);
    return first;
  }

  /** Appends a raw entry (any bytes) and applies it, as a committed entry would be. */
  async appendRaw(data: Uint8Array, type: EntryType = EntryType.Command): Promise<number> {
    const index = this.commitIndex + 1;
    const entry: LogEntry = { index, term: this.term, type, data };
    this.entries.push(entry);
    await this.machine.apply(type === EntryType.Command ? [entry] : [], index);
    return index;
  }

  /** Re-applies every entry after `from`, as raft does on open. */
  async replayAfter(from: number, machine: StateMachine = this.machine): Promise<void> {
    const rest = this.entries.filter((e) => e.index > from);
    if (rest.length > 0) await machine.apply(rest.filter((e) => e.type === EntryType.Command), rest.at(-1)!.index);
  }

  isLeader(): boolean {
    return this.leading;
  }

  leader(): string | undefined {
    return this.leaderURL;
  }

  urls(): string[] {
    return this.members;
  }
}

export interface TestBroker extends AsyncDisposable {
  broker: Broker;
  log: FakeLog;
  logger: ReturnType<typeof memoryLogger>;
  dir: string;
}

/** A broker on a fresh temp dir (or `options.dir`) with a {@link FakeLog} attached, opened; `await using` closes it. */
export async function openTestBroker(options: Partial<BrokerOptions> = {}): Promise<TestBroker> {
  const dir = options.dir ?? (await makeTempDir('msg-broker-'));
  const logger = memoryLogger();
  const broker = new Broker({ logger, ...options, dir });
  const log = new FakeLog(broker);
  broker.attachLog(log);
  await broker.open();
  return { broker, log, logger, dir, [Symbol.asyncDispose]: () => broker[Symbol.asyncDispose]() };
}

/** Drains a reader's messages into `[index, text]` pairs. */
export async function readAll(messages: AsyncIterable<{ index: bigint; data: Uint8Array }>): Promise<[bigint, string][]> {
  const out: [bigint, string][] = [];
  for await (const m of messages) out.push([m.index, Buffer.from(m.data).toString()]);
  return out;
}

/** A message to publish with text data. */
export function text(topicID: bigint, data: string, type = 1): { type: number; topicID: bigint; data: Uint8Array } {
  return { type, topicID, data: new TextEncoder().encode(data) };
}

/** Collects an async iterable of byte chunks into one buffer. */
export async function concat(chunks: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const parts: Uint8Array[] = [];
  for await (const chunk of chunks) parts.push(chunk);
  return Buffer.concat(parts);
}
