import { createReadStream } from 'node:fs';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Broker } from '@msg/broker';
import type { Message, PublishMessage } from '@msg/client';
import { booleanFlag, CONNECTION_FLAGS, CONNECTION_USAGE, connectionOf, integerFlag, parseCommandArgs } from './args.js';
import { adminReader, openClient } from './connect.js';
import { CliError, CliExitCodes, type CliExitCode } from './errors.js';
import type { CommandIO } from './io.js';
import { createProgress } from './progress.js';
import { readTopics } from './topics.js';

/** What an import source holds, per topic. */
export interface SourceTopic {
  id: bigint;
  /** Messages in it. */
  messages: number;
  /** The original's first and last message index. */
  firstIndex: bigint;
  lastIndex: bigint;
}

/**
 * The original's data opened for reading: its messages in the original's
 * global index order (across topics), from a scratch broker the source was
 * imported into with `Broker.importOriginalDir` (a data dir) or
 * `Broker.importSnapshot` (a snapshot file). The source itself is only read.
 */
export interface ImportSource extends AsyncDisposable {
  /** The topics, ascending by id. */
  readonly topics: readonly SourceTopic[];
  /** Every message, ascending by its original index. */
  messages(): AsyncGenerator<Message, void, undefined>;
}

/**
 * Opens `path`, a directory written by the original broker
 * (`<dir>/<topicID>/<first index>` segment files) or a snapshot file (the
 * original's format, or ours), in a scratch broker under the system temp dir
 * (removed on dispose). A missing path is `NO_INPUT` (exit 66); a source that
 * does not parse is `CORRUPT_INPUT` (exit 74) with the broker's error as cause.
 */
export async function openImportSource(path: string): Promise<ImportSource> {
  const info = await stat(path).catch((error: NodeJS.ErrnoException) => {
    throw new CliError('NO_INPUT', `${path}: ${error.message}`, { cause: error });
  });
  const scratch = await mkdtemp(join(tmpdir(), 'msg-import-'));
  const broker = new Broker({ dir: scratch, checkpointIntervalMs: 60_000 });
  let opened = false;
  try {
    await broker.open();
    opened = true;
    try {
      if (info.isDirectory()) await broker.importOriginalDir(path);
      else await broker.importSnapshot(createReadStream(path));
    } catch (error) {
      const code = (error as { code?: unknown }).code;
      if (code === 'ENOENT' || code === 'EACCES' || code === 'EISDIR') throw new CliError('NO_INPUT', `${path}: ${(error as Error).message}`, { cause: error });
      throw new CliError('CORRUPT_INPUT', `${path} is not a data dir or snapshot of the original broker: ${(error as Error).message}`, { cause: error });
    }
    const topics: SourceTopic[] = [];
    for (const id of broker.topicIDs()) {
      let messages = 0;
      let firstIndex: bigint | undefined;
      const reader = await broker.openTopicReader(id, 0n);
      for await (const m of reader.messages()) {
        messages++;
        firstIndex ??= m.index;
      }
      if (messages > 0) topics.push({ id, messages, firstIndex: firstIndex!, lastIndex: broker.lastIndex(id) });
    }
    return {
      topics,
      messages: () => mergeByIndex(broker, topics.map((t) => t.id)),
      async [Symbol.asyncDispose]() {
        await broker.close().catch(() => undefined);
        await rm(scratch, { recursive: true, force: true });
      },
    };
  } catch (error) {
    if (opened) await broker.close().catch(() => undefined);
    await rm(scratch, { recursive: true, force: true });
    throw error;
  }
}

/** The messages of `ids` merged by index (each topic's reader is in index order). */
async function* mergeByIndex(broker: Broker, ids: readonly bigint[]): AsyncGenerator<Message, void, undefined> {
  const heads = await Promise.all(
    ids.map(async (id) => {
      const iterator = (await broker.openTopicReader(id, 0n)).messages();
      const first = await iterator.next();
      return { iterator, head: first.done === true ? undefined : first.value };
    }),
  );
  for (;;) {
    let best: (typeof heads)[number] | undefined;
    for (const h of heads) if (h.head !== undefined && (best?.head === undefined || h.head.index < best.head.index)) best = h;
    if (best?.head === undefined) return;
    yield best.head;
    const next = await best.iterator.next();
    best.head = next.done === true ? undefined : next.value;
  }
}

/** The usage text of `msg import`. */
export const IMPORT_USAGE = `Usage: msg import <original-data-dir | snapshot.bin> [--force] [--batch <n>] [--json] [connection flags]

Imports the original broker's data into a running cluster: every message of its
data dir (<dir>/<topicID>/<first index> segment files) or snapshot file is
published through the leader with @msg/client, topic by topic id and type and data
unchanged, in the original's index order, so every member gets it through the raft
log. The messages get new indexes (the cluster's): the original's indexes are not
kept. The source is only read. Prints, per topic, the original index range and the
new one (JSON with --json).

It refuses (exit 65) when one of the source's topics already has messages in the
cluster, since publishing again would add them a second time; --force imports
anyway (after what the topic has). A failed import can be re-run with --force only
after checking what arrived (\`msg topics\`): a publish is at least once.

  --force            import into topics that already have messages
  --batch <n>        messages per batch request (default 500)
  --json             print the summary as JSON
${CONNECTION_USAGE}

Exit codes: 0 imported, 64 usage error, 65 a topic already has messages (without
--force), 66 the source (or a --ca/--cert/--key file) cannot be read, 69 no leader or
no broker answered (the messages before the failing batch stay published), 74 the
source is damaged or not the original's format, 77 credentials refused.`;

/** What `msg import` did for one topic. */
export interface ImportedTopic {
  id: string;
  messages: number;
  /** The original's first and last index. */
  original: { firstIndex: string; lastIndex: string };
  /** The cluster's first and last index of the imported messages. */
  imported: { firstIndex: string; lastIndex: string };
}

/** Runs `msg import`. */
export async function runImport(argv: readonly string[], io: CommandIO): Promise<CliExitCode> {
  const args = parseCommandArgs(
    'import',
    argv,
    { ...CONNECTION_FLAGS, force: { type: 'boolean' }, batch: { type: 'string' }, json: { type: 'boolean' } },
    { min: 1, max: 1, names: 'the original data dir or snapshot file' },
  );
  if (booleanFlag(args, 'help')) {
    io.out(`${IMPORT_USAGE}\n`);
    return CliExitCodes.OK;
  }
  const path = args.positionals[0]!;
  const batchSize = integerFlag(args, 'batch', 500, { min: 1, max: 100_000 });
  const connection = connectionOf(args, io.env);
  await using source = await openImportSource(path);
  const total = source.topics.reduce((n, t) => n + t.messages, 0);
  if (!booleanFlag(args, 'force')) {
    const { status } = await readTopics(await adminReader(connection), connection.urls);
    const taken = source.topics.filter((t) => status.topics.some((s) => s.id === t.id && (s.lastIndex ?? 0n) > 0n));
    if (taken.length > 0) {
      throw new CliError(
        'REFUSED',
        `topic${taken.length === 1 ? '' : 's'} ${taken.map((t) => t.id).join(', ')} already ha${taken.length === 1 ? 's' : 've'} messages in the cluster; ` +
          'importing would add the original\'s after them (--force does that)',
      );
    }
  }
  const client = await openClient(connection);
  try {
    const progress = createProgress({ label: 'import', total, unit: 'messages', stream: io.err });
    const ranges = new Map<bigint, { first: bigint; last: bigint }>();
    let done = 0;
    let batch: PublishMessage[] = [];
    const flush = async (): Promise<void> => {
      if (batch.length === 0) return;
      const indexes = await client.publishBatch(batch, { signal: io.signal });
      batch.forEach((m, i) => {
        const range = ranges.get(m.topicID);
        if (range === undefined) ranges.set(m.topicID, { first: indexes[i]!, last: indexes[i]! });
        else range.last = indexes[i]!;
      });
      done += batch.length;
      progress.update(done);
      batch = [];
    };
    for await (const message of source.messages()) {
      batch.push({ type: message.type, topicID: message.topicID, data: message.data });
      if (batch.length >= batchSize) await flush();
    }
    await flush();
    progress.finish(`${done} messages in ${source.topics.length} topic${source.topics.length === 1 ? '' : 's'}`);
    const summary: ImportedTopic[] = source.topics.map((t) => ({
      id: t.id.toString(),
      messages: t.messages,
      original: { firstIndex: t.firstIndex.toString(), lastIndex: t.lastIndex.toString() },
      imported: { firstIndex: ranges.get(t.id)!.first.toString(), lastIndex: ranges.get(t.id)!.last.toString() },
    }));
    if (booleanFlag(args, 'json')) io.out(`${JSON.stringify({ source: path, messages: done, topics: summary }, null, 2)}\n`);
    else {
      for (const t of summary) {
        io.out(`topic ${t.id}: ${t.messages} messages, original ${t.original.firstIndex}..${t.original.lastIndex} -> ${t.imported.firstIndex}..${t.imported.lastIndex}\n`);
      }
    }
    return CliExitCodes.OK;
  } finally {
    await client.close();
  }
}
