import { booleanFlag, CONNECTION_FLAGS, CONNECTION_USAGE, connectionOf, parseCommandArgs } from './args.js';
import { AdminPaths, adminReader, type AdminReader } from './connect.js';
import { CliError, CliExitCodes, describeError, type CliExitCode } from './errors.js';
import type { CommandIO } from './io.js';
import { parseNodeStatus, type NodeStatus, type TopicStatusView } from './node-status.js';
import { cell, formatBytes, formatTable, MISSING } from './table.js';

/** Where `msg topics` read the topics: the broker's URL and its status. */
export interface TopicsSource {
  /** The broker that answered (the leader when it could be reached). */
  url: string;
  status: NodeStatus;
}

/**
 * Reads `/status` of the leader: the first of `urls` that answers, or the
 * leader it names when that answers too (the leader measures publish rates
 * and sees every reader report first). Rejects `UNAVAILABLE` when no URL answers.
 */
export async function readTopics(reader: AdminReader, urls: readonly URL[]): Promise<TopicsSource> {
  const failures: string[] = [];
  for (const url of urls) {
    let status: NodeStatus | undefined;
    try {
      const answer = await reader.get(url, AdminPaths.status);
      if (answer.status === 401 || answer.status === 403) {
        throw Object.assign(new Error(`${url.origin}${AdminPaths.status} answered ${answer.status}: /status needs an identity with admin rights (--token)`), {
          code: answer.status === 401 ? 'UNAUTHENTICATED' : 'FORBIDDEN',
        });
      }
      status = answer.status === 200 ? parseNodeStatus(answer.body) : undefined;
      if (status === undefined) failures.push(`${url.origin}: answered ${answer.status} without a status`);
    } catch (error) {
      const code = (error as { code?: unknown }).code;
      if (code === 'UNAUTHENTICATED' || code === 'FORBIDDEN') throw error;
      failures.push(`${url.origin}: ${describeError(error)}`);
    }
    if (status === undefined) continue;
    if (status.isLeader !== true && status.leaderURL !== undefined && status.leaderURL !== url.origin) {
      const leader = await reader.get(new URL(status.leaderURL), AdminPaths.status).catch(() => undefined);
      const parsed = leader?.status === 200 ? parseNodeStatus(leader.body) : undefined;
      if (parsed !== undefined) return { url: status.leaderURL, status: parsed };
    }
    return { url: url.origin, status };
  }
  throw new CliError('UNAVAILABLE', `no broker answered: ${failures.join('; ')}`);
}

/** Every reader of a topic: identified readers by id, and the anonymous report (as `(anonymous)`). */
function readersOf(topic: TopicStatusView): { id: string; index: bigint }[] {
  const readers = topic.readers.map((r) => ({ id: r.id, index: r.index }));
  if (topic.anonymous !== undefined) readers.push({ id: '(anonymous)', index: topic.anonymous.index });
  return readers;
}

/** A reader's lag: the topic's last index minus the index it reported (0 when at or beyond it). */
export function readerLag(topic: TopicStatusView, index: bigint): bigint | undefined {
  if (topic.lastIndex === undefined) return undefined;
  return topic.lastIndex > index ? topic.lastIndex - index : 0n;
}

/**
 * `msg topics` as text: one line per topic (id, first and last index,
 * message count, bytes, segments, publish rate in messages per second, open
 * streams, readers), then one line per reader (topic, reader id, the index it
 * reported, its lag behind the topic's last index). What the broker does not
 * report shows as "-".
 */
export function formatTopics(source: TopicsSource): string {
  const topics = source.status.topics;
  if (topics.length === 0) return `no topics (read from ${source.url})\n`;
  const rows = topics.map((t) => [
    t.id.toString(),
    cell(t.firstIndex),
    cell(t.lastIndex),
    cell(t.messages),
    formatBytes(t.bytes),
    cell(t.segments),
    t.publishRate === undefined ? MISSING : t.publishRate.toFixed(1),
    cell(t.openStreams),
    String(readersOf(t).length),
  ]);
  let out = `topics (read from ${source.url}):\n`;
  out += formatTable(['TOPIC>', 'FIRST>', 'LAST>', 'MESSAGES>', 'BYTES>', 'SEGMENTS>', 'RATE/S>', 'STREAMS>', 'READERS>'], rows);
  const readerRows = topics.flatMap((t) => readersOf(t).map((r) => [t.id.toString(), r.id, r.index.toString(), cell(readerLag(t, r.index))]));
  if (readerRows.length > 0) out += `\nreaders:\n${formatTable(['TOPIC>', 'READER', 'INDEX>', 'LAG>'], readerRows)}`;
  return out;
}

/** `msg topics --json`: indexes as decimal strings (u64), the rest as numbers; absent values as `null`. */
export function topicsJSON(source: TopicsSource): unknown {
  return {
    url: source.url,
    topics: source.status.topics.map((t) => ({
      id: t.id.toString(),
      firstIndex: t.firstIndex?.toString() ?? null,
      lastIndex: t.lastIndex?.toString() ?? null,
      messages: t.messages ?? null,
      bytes: t.bytes ?? null,
      segments: t.segments ?? null,
      publishRate: t.publishRate ?? null,
      openStreams: t.openStreams ?? null,
      readers: readersOf(t).map((r) => ({ id: r.id, index: r.index.toString(), lag: readerLag(t, r.index)?.toString() ?? null })),
    })),
  };
}

/** The usage text of `msg topics`. */
export const TOPICS_USAGE = `Usage: msg topics [--json] [connection flags]

Lists the topics as the leader shows them (GET /status): first and last index,
message count, bytes on disk, segments, publish rate (messages per second),
open streams, and every reader with the index it reported and its lag behind
the topic's last index. What a broker does not report shows as "-".

  --json             print them as JSON (indexes as decimal strings)
${CONNECTION_USAGE}

Exit codes: 0 listed, 64 usage error, 66 a --ca/--cert/--key file cannot be read,
69 no broker answered, 77 credentials refused.`;

/** Runs `msg topics`. */
export async function runTopics(argv: readonly string[], io: CommandIO): Promise<CliExitCode> {
  const args = parseCommandArgs('topics', argv, { ...CONNECTION_FLAGS, json: { type: 'boolean' } });
  if (booleanFlag(args, 'help')) {
    io.out(`${TOPICS_USAGE}\n`);
    return CliExitCodes.OK;
  }
  const connection = connectionOf(args, io.env);
  const source = await readTopics(await adminReader(connection), connection.urls);
  io.out(booleanFlag(args, 'json') ? `${JSON.stringify(topicsJSON(source), null, 2)}\n` : formatTopics(source));
  return CliExitCodes.OK;
}
