import { booleanFlag, CONNECTION_FLAGS, CONNECTION_USAGE, connectionOf, integerFlag, parseCommandArgs, stringFlag, u64Arg } from './args.js';
import { openClient } from './connect.js';
import { CliError, CliExitCodes, type CliExitCode } from './errors.js';
import type { CommandIO } from './io.js';
import { createProgress } from './progress.js';

/** The topic `msg bench` writes to unless `--topic` says otherwise. */
export const BENCH_TOPIC = 4_242_424_242n;

/**
 * The `p`-th percentile (0..100) of `sorted` (ascending) by the nearest-rank
 * method: the smallest value with at least p% of the values at or below it.
 * `undefined` for an empty list.
 */
export function percentile(sorted: readonly number[], p: number): number | undefined {
  if (sorted.length === 0) return undefined;
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[Math.min(sorted.length, rank) - 1];
}

/** What `msg bench` measured. */
export interface BenchResult {
  /** Messages published (and then consumed). */
  messages: number;
  /** Bytes of data in each message. */
  size: number;
  /** Publishes in flight at once. */
  concurrency: number;
  publish: { seconds: number; perSecond: number; p50Ms: number; p99Ms: number; maxMs: number };
  consume: { seconds: number; perSecond: number };
}

/** `result` as the lines `msg bench` prints. */
export function formatBench(result: BenchResult): string {
  const ms = (v: number): string => `${v.toFixed(2)} ms`;
  return [
    `messages     ${result.messages} x ${result.size} bytes, ${result.concurrency} in flight`,
    `publish      ${Math.round(result.publish.perSecond)} msg/s (${result.publish.seconds.toFixed(2)} s)`,
    `latency      p50 ${ms(result.publish.p50Ms)}  p99 ${ms(result.publish.p99Ms)}  max ${ms(result.publish.maxMs)}`,
    `consume      ${Math.round(result.consume.perSecond)} msg/s (${result.consume.seconds.toFixed(2)} s)`,
    '',
  ].join('\n');
}

/** The usage text of `msg bench`. */
export const BENCH_USAGE = `Usage: msg bench [--messages <n>] [--size <bytes>] [--concurrency <n>] [--topic <id>] [--json] [connection flags]

A quick benchmark of a running cluster through @msg/client: publishes --messages
messages of --size bytes with --concurrency publishes in flight (the client
coalesces them into batches), measuring each publish's latency until it is
committed, then reads them back with one stream. Prints publish msg/s, latency
p50/p99/max and consume msg/s. It writes real messages into topic --topic (a
disposable cluster is best: \`msg cluster\`).

  --messages <n>     how many messages (default 10000)
  --size <bytes>     data bytes per message (default 100)
  --concurrency <n>  publishes in flight (default 64)
  --topic <id>       topic to write (default ${BENCH_TOPIC})
  --json             print the result as JSON
${CONNECTION_USAGE}

Exit codes: 0 done, 64 usage error, 66 a --ca/--cert/--key file cannot be read,
69 no leader or no broker answered, 70 the messages read back were not those
published, 77 credentials refused.`;

/** Runs `msg bench`. */
export async function runBench(argv: readonly string[], io: CommandIO): Promise<CliExitCode> {
  const args = parseCommandArgs('bench', argv, {
    ...CONNECTION_FLAGS,
    messages: { type: 'string' },
    size: { type: 'string' },
    concurrency: { type: 'string' },
    topic: { type: 'string' },
    json: { type: 'boolean' },
  });
  if (booleanFlag(args, 'help')) {
    io.out(`${BENCH_USAGE}\n`);
    return CliExitCodes.OK;
  }
  const messages = integerFlag(args, 'messages', 10_000, { min: 1, max: 10_000_000 });
  const size = integerFlag(args, 'size', 100, { min: 1, max: 16 * 1024 * 1024 });
  const concurrency = integerFlag(args, 'concurrency', 64, { min: 1, max: 10_000 });
  const topicText = stringFlag(args, 'topic');
  const topicID = topicText === undefined ? BENCH_TOPIC : u64Arg(topicText, '--topic');
  const connection = connectionOf(args, io.env);
  const client = await openClient(connection);
  try {
    const data = new Uint8Array(size).fill(0x61);
    const latencies: number[] = [];
    let next = 0;
    let first: bigint | undefined;
    let last = 0n;
    const progress = createProgress({ label: 'bench publish', total: messages, unit: 'messages', stream: io.err });
    const started = performance.now();
    const worker = async (): Promise<void> => {
      while (next < messages && !io.signal.aborted) {
        next++;
        const t0 = performance.now();
        const index = await client.publish({ type: 1, topicID, data }, { signal: io.signal });
        latencies.push(performance.now() - t0);
        if (first === undefined || index < first) first = index;
        if (index > last) last = index;
        progress.update(latencies.length);
      }
    };
    await Promise.all(Array.from({ length: Math.min(concurrency, messages) }, worker));
    const publishSeconds = (performance.now() - started) / 1000;
    progress.finish(`${latencies.length} messages in ${publishSeconds.toFixed(2)} s`);
    latencies.sort((a, b) => a - b);

    const reading = createProgress({ label: 'bench consume', total: messages, unit: 'messages', stream: io.err });
    const readStart = performance.now();
    const conn = client.conn(topicID);
    conn.open(first ?? 0n, { streaming: true, signal: io.signal });
    let read = 0;
    try {
      for await (const message of conn) {
        if (message.data.byteLength === size) read++;
        reading.update(read);
        if (message.index >= last) break;
      }
    } finally {
      if (conn.state === 'open') await conn.close();
    }
    const consumeSeconds = (performance.now() - readStart) / 1000;
    reading.finish(`${read} messages in ${consumeSeconds.toFixed(2)} s`);
    if (read < messages) throw new CliError('BAD_RESPONSE', `read back ${read} of the ${messages} messages published`);
    const result: BenchResult = {
      messages,
      size,
      concurrency,
      publish: {
        seconds: publishSeconds,
        perSecond: messages / publishSeconds,
        p50Ms: percentile(latencies, 50)!,
        p99Ms: percentile(latencies, 99)!,
        maxMs: latencies.at(-1)!,
      },
      consume: { seconds: consumeSeconds, perSecond: messages / consumeSeconds },
    };
    io.out(booleanFlag(args, 'json') ? `${JSON.stringify(result, null, 2)}\n` : formatBench(result));
    return CliExitCodes.OK;
  } finally {
    await client.close();
  }
}
