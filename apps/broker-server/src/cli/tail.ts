import { isBrokerError, isClientError, type Message } from '@msg/client';
import { booleanFlag, choiceFlag, CONNECTION_FLAGS, CONNECTION_USAGE, connectionOf, integerFlag, parseCommandArgs, stringFlag, u64Arg } from './args.js';
import { openClient } from './connect.js';
import { CliExitCodes, type CliExitCode } from './errors.js';
import type { CommandIO } from './io.js';

/** The output formats of `msg tail`. */
export const TAIL_FORMATS = ['text', 'hex', 'json'] as const;
/** One of {@link TAIL_FORMATS}. */
export type TailFormat = (typeof TAIL_FORMATS)[number];

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** The data as UTF-8, or `undefined` when it is not valid UTF-8. */
function asText(data: Uint8Array): string | undefined {
  try {
    return utf8.decode(data);
  } catch {
    return undefined;
  }
}

/** `text` on one line: backslash, control characters and DEL escaped (`\n`, `\t`, `\x1b`, ...). */
export function escapeLine(text: string): string {
  return text.replace(/[\\\u0000-\u001f\u007f]/g, (c) => {
    if (c === '\\') return '\\\\';
    if (c === '\n') return '\\n';
    if (c === '\r') return '\\r';
    if (c === '\t') return '\\t';
    return `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`;
  });
}

/** A hex dump of `data`: 16 bytes a line, `offset  hex bytes  |ascii|`, as `xxd`/`hexdump -C` show it. */
export function hexDump(data: Uint8Array): string {
  const lines: string[] = [];
  for (let at = 0; at < data.byteLength; at += 16) {
    const row = data.subarray(at, at + 16);
    const hex = [...row].map((b) => b.toString(16).padStart(2, '0'));
    const left = hex.slice(0, 8).join(' ');
    const right = hex.slice(8).join(' ');
    const ascii = [...row].map((b) => (b >= 0x20 && b < 0x7f ? String.fromCharCode(b) : '.')).join('');
    lines.push(`${at.toString(16).padStart(8, '0')}  ${left.padEnd(23)}  ${right.padEnd(23)}  |${ascii}|`);
  }
  return lines.join('\n');
}

/**
 * One message as `msg tail` prints it, with its trailing newline:
 * - `text`: `<index> <type> <data>`, the data as UTF-8 on one line
 *   ({@link escapeLine}), or `<N bytes, not UTF-8: use --format hex>`;
 * - `hex`: a line `index <index> type <type> <N> bytes`, then a hex dump;
 * - `json`: one JSON object a line, `{"index":"5","topicID":"7","type":1,"size":3,"data":"<base64>","text":"..."}`
 *   (`text` only when the data is valid UTF-8; u64 fields as decimal strings).
 */
export function formatMessage(message: Message, format: TailFormat): string {
  const text = asText(message.data);
  if (format === 'json') {
    return `${JSON.stringify({
      index: message.index.toString(),
      topicID: message.topicID.toString(),
      type: message.type,
      size: message.data.byteLength,
      data: Buffer.from(message.data.buffer, message.data.byteOffset, message.data.byteLength).toString('base64'),
      ...(text === undefined ? {} : { text }),
    })}\n`;
  }
  if (format === 'hex') {
    const dump = hexDump(message.data);
    return `index ${message.index} type ${message.type} ${message.data.byteLength} bytes\n${dump === '' ? '' : `${dump}\n`}`;
  }
  const shown = text === undefined ? `<${message.data.byteLength} bytes, not UTF-8: use --format hex>` : escapeLine(text);
  return `${message.index} ${message.type} ${shown}\n`;
}

/** The usage text of `msg tail`. */
export const TAIL_USAGE = `Usage: msg tail <topic> [--from <index>] [--follow] [--limit <n>] [--format text|hex|json] [connection flags]

Prints the messages of topic <topic> (a topic id, 0..2^64-1) from index --from on
(default: the first retained message), through @msg/client's Conn stream.
Without --follow it stops at the topic's current end; with it, it waits for new
messages until Ctrl-C (exit 0), reconnecting (to the next member) for about a minute
when its broker goes away.

  --from <index>     first index to print (the first message at or above it); default: the first retained
  --follow, -f       keep streaming new messages
  --limit <n>        stop after n messages
  --format <f>       text (default): "<index> <type> <data>", the data as UTF-8 on one line
                     (control characters escaped); hex: a header line and a hex dump;
                     json: one JSON object per line with the data in base64 (and "text"
                     when it is UTF-8)
${CONNECTION_USAGE}

Exit codes: 0 done (or stopped by Ctrl-C), 64 usage error, 65 --from is below the
topic's first retained index (the message names it), 66 a --ca/--cert/--key file cannot
be read, 69 no broker answered, 77 credentials refused.`;

/** Runs `msg tail`. */
export async function runTail(argv: readonly string[], io: CommandIO): Promise<CliExitCode> {
  const args = parseCommandArgs(
    'tail',
    argv,
    {
      ...CONNECTION_FLAGS,
      from: { type: 'string' },
      follow: { type: 'boolean', short: 'f' },
      limit: { type: 'string' },
      format: { type: 'string' },
    },
    { min: 1, max: 1, names: 'the topic id' },
  );
  if (booleanFlag(args, 'help')) {
    io.out(`${TAIL_USAGE}\n`);
    return CliExitCodes.OK;
  }
  const topic = u64Arg(args.positionals[0]!, '<topic>');
  const fromText = stringFlag(args, 'from');
  const from = fromText === undefined ? 0n : u64Arg(fromText, '--from');
  const follow = booleanFlag(args, 'follow');
  const limit = integerFlag(args, 'limit', Number.MAX_SAFE_INTEGER, { min: 1 });
  const format = choiceFlag(args, 'format', TAIL_FORMATS, 'text');
  const connection = connectionOf(args, io.env);
  // Not endless: a tail against a cluster that is down says so (exit 69), after about 5 s, or a minute with --follow
  // (which rides out a leader change or a restart, moving to the next member on each attempt).
  const reconnect = { initialMs: 200, maxMs: 1000, multiplier: 2, jitter: 0.2 };
  const client = await openClient(connection, { conn: { maxReconnects: follow ? 60 : 5, reconnect } });
  try {
    let printed = 0;
    // Without --from, "from the start" is the first retained index: a topic whose oldest
    // segments were reclaimed answers SEGMENT_RECLAIMED with it, and the tail starts there.
    for (let start = from, attempt = 0; ; attempt++) {
      const conn = client.conn(topic);
      conn.open(start, { streaming: follow });
      const stop = (): void => void conn.close();
      io.signal.addEventListener('abort', stop, { once: true });
      try {
        for await (const message of conn) {
          io.out(formatMessage(message, format));
          if (++printed >= limit) break;
        }
        return CliExitCodes.OK;
      } catch (error) {
        if (isClientError(error, 'ABORTED') && io.signal.aborted) return CliExitCodes.OK;
        if (isBrokerError(error, 'SEGMENT_RECLAIMED')) {
          const first = error.firstIndex;
          if (fromText === undefined && printed === 0 && first !== undefined && first > start && attempt < 3) {
            start = first;
            continue;
          }
          io.err.write(`msg tail: --from ${start} is below topic ${topic}'s first retained index${first === undefined ? '' : ` ${first}`} (SEGMENT_RECLAIMED)\n`);
          return CliExitCodes.REFUSED;
        }
        throw error;
      } finally {
        io.signal.removeEventListener('abort', stop);
        if (conn.state === 'open') await conn.close();
      }
    }
  } finally {
    await client.close();
  }
}
