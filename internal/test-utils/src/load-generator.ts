// The HTTP load generator of the workspace's benchmarks (@msg/http's and the
// broker server's), run in its own process (path: `loadGeneratorPath`) so it
// never shares a server's event loop. Usage (one JSON argument):
//   node --import tsx load-generator.ts '{"mode":"post","port":1234,"connections":64,"bodyBytes":100 (or "bodyBase64":"..."),"warmupMs":1000,"durationMs":5000,"path":"/..."}'
//   node --import tsx load-generator.ts '{"mode":"get","port":1234,"connections":1,"warmupMs":500,"durationMs":5000,"path":"/..."}'
// Prints one JSON line, a `LoadResult`.
import { connect, type Socket } from 'node:net';

interface LoadOptions {
  mode: 'post' | 'get';
  port: number;
  path: string;
  connections: number;
  bodyBytes?: number;
  /** The request body, base64 (instead of `bodyBytes` of 'a'). */
  bodyBase64?: string;
  warmupMs: number;
  durationMs: number;
}

/** What the load generator prints (latencies of requests sent after the warm-up, in milliseconds). */
export interface LoadResult {
  /** Requests answered in the measured window. */
  requests: number;
  /** Requests answered, warm-up included. */
  allRequests: number;
  seconds: number;
  /** `requests / seconds`. */
  rps: number;
  p50Ms: number;
  p99Ms: number;
  /** Response body bytes received (GET). */
  bytes: number;
  /** Answers other than 200 in the measured window. */
  errors: number;
}

const HEADER_END = Buffer.from('\r\n\r\n');

/**
 * One keep-alive connection sending requests back to back (one in flight),
 * parsing just enough of each answer (Content-Length or chunked) to know
 * where it ends.
 */
function runConnection(options: LoadOptions, request: Buffer, measureFrom: number, stopAt: number, latencies: number[], totals: { bytes: number; errors: number; requests: number; all: number }): Promise<void> {
  return new Promise<void>((resolve) => {
    const socket: Socket = connect(options.port, '127.0.0.1');
    socket.setNoDelay(true);
    let buffer: Buffer = Buffer.alloc(0);
    let sentAt = 0;
    let bodyLeft = -1;
    let chunked = false;
    let status = 0;
    const send = (): void => {
      if (performance.now() >= stopAt) {
        socket.end();
        return;
      }
      sentAt = performance.now();
      bodyLeft = -1;
      socket.write(request);
    };
    const finish = (): void => {
      totals.all++;
      const now = performance.now();
      if (sentAt >= measureFrom && now <= stopAt) {
        latencies.push(now - sentAt);
        totals.requests++;
        if (status !== 200) totals.errors++;
      }
      send();
    };
    socket.on('connect', send);
    socket.on('data', (chunk: Buffer) => {
      buffer = buffer.length === 0 ? chunk : Buffer.concat([buffer, chunk]);
      for (;;) {
        if (bodyLeft < 0) {
          const end = buffer.indexOf(HEADER_END);
          if (end < 0) return;
          const head = buffer.subarray(0, end).toString('latin1');
          status = Number(head.slice(9, 12));
          const length = /\r\ncontent-length: *(\d+)/i.exec(head);
          chunked = length === null && /\r\ntransfer-encoding: *chunked/i.test(head);
          bodyLeft = length ? Number(length[1]) : 0;
          buffer = buffer.subarray(end + 4);
        }
        if (chunked) {
          // Count chunk payloads until the last chunk.
          const lineEnd = buffer.indexOf('\r\n');
          if (lineEnd < 0) return;
          const size = parseInt(buffer.subarray(0, lineEnd).toString('latin1'), 16);
          if (buffer.length < lineEnd + 2 + size + 2) return;
          if (sentAt >= measureFrom) totals.bytes += size;
          buffer = buffer.subarray(lineEnd + 2 + size + 2);
          if (size === 0) {
            chunked = false;
            finish();
            return;
          }
          continue;
        }
        if (buffer.length < bodyLeft) return;
        if (sentAt >= measureFrom) totals.bytes += bodyLeft;
        buffer = buffer.subarray(bodyLeft);
        finish();
        return;
      }
    });
    socket.on('error', () => {
      totals.errors++;
    });
    socket.on('close', () => resolve());
  });
}

async function main(): Promise<void> {
  const options = JSON.parse(process.argv[2] ?? '{}') as LoadOptions;
  const body = options.bodyBase64 !== undefined ? Buffer.from(options.bodyBase64, 'base64') : Buffer.alloc(options.bodyBytes ?? 0, 0x61);
  const request =
    options.mode === 'post'
      ? Buffer.concat([Buffer.from(`POST ${options.path} HTTP/1.1\r\nHost: bench\r\nContent-Length: ${body.length}\r\n\r\n`), body])
      : Buffer.from(`GET ${options.path} HTTP/1.1\r\nHost: bench\r\n\r\n`);
  const start = performance.now();
  const measureFrom = start + options.warmupMs;
  const stopAt = measureFrom + options.durationMs;
  const latencies: number[] = [];
  const totals = { bytes: 0, errors: 0, requests: 0, all: 0 };
  const hardStop = setTimeout(() => process.exit(2), options.warmupMs + options.durationMs + 10_000);
  await Promise.all(Array.from({ length: options.connections }, () => runConnection(options, request, measureFrom, stopAt, latencies, totals)));
  clearTimeout(hardStop);
  latencies.sort((a, b) => a - b);
  const pick = (q: number): number => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? NaN;
  const seconds = options.durationMs / 1000;
  const result: LoadResult = {
    requests: totals.requests,
    allRequests: totals.all,
    seconds,
    rps: totals.requests / seconds,
    p50Ms: pick(0.5),
    p99Ms: pick(0.99),
    bytes: totals.bytes,
    errors: totals.errors,
  };
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

await main();
