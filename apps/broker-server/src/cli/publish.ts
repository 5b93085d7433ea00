import type { PublishMessage } from '@msg/client';
import { booleanFlag, CONNECTION_FLAGS, CONNECTION_USAGE, connectionOf, integerFlag, parseCommandArgs, u64Arg } from './args.js';
import { openClient } from './connect.js';
import { CliExitCodes, usageError, type CliExitCode } from './errors.js';
import type { CommandIO } from './io.js';

/** Most messages `msg publish` sends in one batch request. */
export const PUBLISH_BATCH = 500;

/**
 * Splits a stream of chunks into lines, yielding the lines each chunk
 * completed (so that a slow writer's lines go out as they come): `\n` ends
 * a line, a `\r` before it is dropped, a last line without `\n` counts, and
 * empty lines are skipped (the protocol has no empty messages).
 */
export async function* lineGroups(chunks: AsyncIterable<Uint8Array | string>): AsyncGenerator<Uint8Array[], void, undefined> {
  let pending: Buffer = Buffer.alloc(0);
  for await (const chunk of chunks) {
    pending = Buffer.concat([pending, typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength)]);
    const group: Uint8Array[] = [];
    let at: number;
    while ((at = pending.indexOf(0x0a)) >= 0) {
      const end = at > 0 && pending[at - 1] === 0x0d ? at - 1 : at;
      if (end > 0) group.push(new Uint8Array(pending.subarray(0, end)));
      pending = pending.subarray(at + 1);
    }
    if (group.length > 0) yield group;
  }
  const end = pending.length > 0 && pending[pending.length - 1] === 0x0d ? pending.length - 1 : pending.length;
  if (end > 0) yield [new Uint8Array(pending.subarray(0, end))];
}

/** All of `chunks` as one buffer. */
async function readAll(chunks: AsyncIterable<Uint8Array | string>): Promise<Uint8Array> {
  const parts: Buffer[] = [];
  for await (const chunk of chunks) parts.push(typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : Buffer.from(chunk));
  return new Uint8Array(Buffer.concat(parts));
}

/** The usage text of `msg publish`. */
export const PUBLISH_USAGE = `Usage: msg publish <topic> [--type <type>] [--raw] [connection flags]

Publishes stdin to topic <topic> (a topic id, 0..2^64-1) through @msg/client: one
message per line (a trailing \\r is dropped; empty lines are skipped), in order, in
batches of up to ${PUBLISH_BATCH}; or, with --raw, all of stdin as one message. Prints
the index each message was committed at, one per line. A publish is acknowledged
once committed on a majority; a retry after a lost answer may commit a line twice.

  --type <type>      message type, 0..65535 (default 1)
  --raw              all of stdin is one message (binary safe)
${CONNECTION_USAGE}

Exit codes: 0 published, 64 usage error (also: empty stdin with --raw), 66 a
--ca/--cert/--key file cannot be read, 69 no leader or no broker answered (lines
before the failing batch stay published), 77 credentials refused.`;

/** Runs `msg publish`. */
export async function runPublish(argv: readonly string[], io: CommandIO): Promise<CliExitCode> {
  const args = parseCommandArgs('publish', argv, { ...CONNECTION_FLAGS, type: { type: 'string' }, raw: { type: 'boolean' } }, { min: 1, max: 1, names: 'the topic id' });
  if (booleanFlag(args, 'help')) {
    io.out(`${PUBLISH_USAGE}\n`);
    return CliExitCodes.OK;
  }
  const topicID = u64Arg(args.positionals[0]!, '<topic>');
  const type = integerFlag(args, 'type', 1, { min: 0, max: 0xffff });
  const connection = connectionOf(args, io.env);
  let raw: Uint8Array | undefined;
  if (booleanFlag(args, 'raw')) {
    raw = await readAll(io.stdin);
    if (raw.byteLength === 0) throw usageError('--raw: stdin is empty (the protocol has no empty messages)');
  }
  const client = await openClient(connection);
  try {
    if (raw !== undefined) {
      io.out(`${await client.publish({ type, topicID, data: raw }, { signal: io.signal })}\n`);
      return CliExitCodes.OK;
    }
    let batch: PublishMessage[] = [];
    const flush = async (): Promise<void> => {
      if (batch.length === 0) return;
      const indexes = await client.publishBatch(batch, { signal: io.signal });
      io.out(indexes.map((i) => `${i}\n`).join(''));
      batch = [];
    };
    for await (const group of lineGroups(io.stdin)) {
      for (const data of group) {
        batch.push({ type, topicID, data });
        if (batch.length >= PUBLISH_BATCH) await flush();
      }
      await flush();
    }
    return CliExitCodes.OK;
  } finally {
    await client.close();
  }
}
