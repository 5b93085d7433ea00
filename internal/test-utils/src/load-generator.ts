// The HTTP load generator of the workspace's benchmarks (@msg/http's and the
// broker server's), run in its own process (path: `loadGeneratorPath`) so it
// never shares a server's event loop. Usage (one JSON argument, a `LoadOptions`):
//   node --import tsx load-generator.ts '{"mode":"post","port":1234,"connections":64,"bodyBytes":100 (or "bodyBase64":"..."),"warmupMs":1000,"durationMs":5000,"path":"/..."}'
//   node --import tsx load-generator.ts '{"mode":"get","port":1234,"connections":1,"warmupMs":500,"durationMs":5000,"path":"/..."}'
// Optional: "pathVariants":N (`{n}` in the path becomes 1..N, round-robin over every request),
// "maxRequests":N (end the measured window after N requests), "progress":true (event lines, below).
// Prints one JSON line, a `LoadResult`. With "progress":true it first prints
// `{"event":"measuring"}` when the measured window opens and `{"event":"measured"}`
// when it closes, so a caller can sample a server's CPU time over exactly that window.
import { connect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';

/** The JSON argument of the load generator. */
interface LoadOptions {
  mode: 'post' | 'get';
  port: number;
  /** Request path; with `pathVariants`, `{n}` in it is replaced per request. */
  path: string;
  /**
   * When set, request k (counted over all connections, warm-up included) goes
   * to `path` with every `{n}` replaced by `1 + (k mod pathVariants)`: e.g.
   * one topic per variant.
   */
  pathVariants?: number;
  /** Keep-alive connections, each with one request in flight. */
  connections: number;
  bodyBytes?: number;
  /** The request body, base64 (instead of `bodyBytes` of 'a'). */
  bodyBase64?: string;
  warmupMs: number;
  /** Length of the measured window (an upper bound with `maxRequests`). */
  durationMs: number;
  /**
   * Close the measured window once this many requests sent in it have been
   * answered (all connections together); `seconds` is then its real length.
   */
  maxRequests?: number;
  /** Print `{"event":"measuring"}` / `{"event":"measured"}` lines at the window's edges. */
  progress?: boolean;
  /** Connect with TLS, trusting this CA (PEM text); the server's certificate must name 127.0.0.1. */
  tlsCa?: string;
  /**
   * Exactly-once publish: each connection is a producer of its own (`X-Broker-Producer-Id`) and each of its
   * requests carries the next sequence (`X-Broker-Producer-Seq`, from 0). POST without `pathVariants` only.
   */
  producers?: boolean;
}

/** What the load generator prints (latencies of requests sent after the warm-up, in milliseconds). */
export interface LoadResult {
  /** Requests answered in the measured window. */
  requests: number;
  /** Requests answered, warm-up included. */
  allRequests: number;
  /** Length of the measured window. */
  seconds: number;
  /** `requests / seconds`. */
  rps: number;
  p50Ms: number;
  p99Ms: number;
  p999Ms: number;
  maxMs: number;
  /** Response body bytes received in the measured window (GET). */
  bytes: number;
  /** Answers other than 200 in the measured window, plus socket errors. */
  errors: number;
  /** The load generator's own CPU time (user + system) over the measured window. */
  ownCpuMs: number;
}

const CR = 0x0d;
const LF = 0x0a;
const HEADER_END = Buffer.from('\r\n\r\n');

/** Totals shared by the connections. */
interface Totals {
  bytes: number;
  errors: number;
  requests: number;
  all: number;
}

/** The measured window: when it opens and closes, and how it is closed early. */
interface Window {
  measureFrom: number;
  stopAt: number;
  /** Requests that may still be sent in the window (`Infinity` without `maxRequests`). */
  budget: number;
  /** Called once when the window closes before `stopAt` (the request budget is spent). */
  close: () => void;
}

/** Hands out the request of each send: one prebuilt buffer, or a head per path variant and a shared body. */
interface Requests {
  /** Writes the next request of connection number `conn` (counted from 0). */
  write(socket: Socket, conn: number): void;
}

function buildRequests(options: LoadOptions): Requests {
  const body = options.bodyBase64 !== undefined ? Buffer.from(options.bodyBase64, 'base64') : Buffer.alloc(options.bodyBytes ?? 0, 0x61);
  const head = (path: string): Buffer =>
    Buffer.from(
      options.mode === 'post' ? `POST ${path} HTTP/1.1\r\nHost: bench\r\nContent-Length: ${body.length}\r\n\r\n` : `GET ${path} HTTP/1.1\r\nHost: bench\r\n\r\n`,
      'latin1',
    );
  const variants = options.pathVariants ?? 0;
  if (options.producers === true) {
    if (options.mode !== 'post' || variants > 0) throw new Error('producers: POST without pathVariants only');
    const start = `POST ${options.path} HTTP/1.1\r\nHost: bench\r\nContent-Length: ${body.length}\r\nX-Broker-Producer-Id: bench-${process.pid}-`;
    const seqs: number[] = [];
    return {
      write(socket, conn) {
        const seq = seqs[conn] ?? 0;
        seqs[conn] = seq + 1;
        socket.cork();
        socket.write(`${start}${conn}\r\nX-Broker-Producer-Seq: ${seq}\r\n\r\n`, 'latin1');
        socket.write(body);
        socket.uncork();
      },
    };
  }
  if (variants < 1) {
    const whole = options.mode === 'post' ? Buffer.concat([head(options.path), body]) : head(options.path);
    return { write: (socket) => socket.write(whole) };
  }
  const heads = Array.from({ length: variants }, (_, i) => head(options.path.replaceAll('{n}', String(i + 1))));
  let next = 0;
  return {
    write(socket) {
      const h = heads[next]!;
      next = (next + 1) % variants;
      if (options.mode !== 'post' || body.length === 0) {
        socket.write(h);
        return;
      }
      socket.cork();
      socket.write(h);
      socket.write(body);
      socket.uncork();
    },
  };
}

/**
 * One keep-alive connection sending requests back to back (one in flight),
 * parsing just enough of each answer (Content-Length or chunked) to know
 * where it ends. Bodies are counted as they stream by, never buffered.
 */
function runConnection(options: LoadOptions, requests: Requests, window: Window, latencies: number[], totals: Totals, conn: number): Promise<void> {
  return new Promise<void>((resolve) => {
    const socket: Socket = options.tlsCa === undefined ? connect(options.port, '127.0.0.1') : tlsConnect({ port: options.port, host: '127.0.0.1', ca: options.tlsCa });
    socket.setNoDelay(true);
    // Parser state: 'head' (collecting header bytes), 'body' (bodyLeft bytes to skip),
    // 'size' (collecting a chunk-size line), 'data' (bodyLeft chunk bytes, then its CRLF),
    // 'last' (the CRLF after the last, empty chunk; no trailers expected).
    let state: 'head' | 'body' | 'size' | 'data' | 'last' = 'head';
    let line = '';
    let bodyLeft = 0;
    let status = 0;
    let sentAt = 0;
    let measured = false;
    const send = (): void => {
      const now = performance.now();
      if (now >= window.stopAt) {
        socket.end();
        return;
      }
      measured = now >= window.measureFrom;
      if (measured) {
        if (window.budget <= 0) {
          socket.end();
          return;
        }
        window.budget--;
      }
      sentAt = now;
      state = 'head';
      line = '';
      requests.write(socket, conn);
    };
    const finish = (): void => {
      totals.all++;
      const now = performance.now();
      if (measured && now <= window.stopAt) {
        latencies.push(now - sentAt);
        totals.requests++;
        if (status !== 200) totals.errors++;
        if (window.budget <= 0 && totals.requests >= (options.maxRequests ?? Infinity)) window.close();
      }
      send();
    };
    /** Reads the status and framing of an answer's head; returns the state its body starts in. */
    const headEnd = (head: string): 'body' | 'size' => {
      status = Number(head.slice(9, 12));
      const length = /\r\ncontent-length: *(\d+)/i.exec(head);
      if (length === null && /\r\ntransfer-encoding: *chunked/i.test(head)) return 'size';
      bodyLeft = length ? Number(length[1]) : 0;
      return 'body';
    };
    socket.on('connect', send);
    socket.on('data', (chunk: Buffer) => {
      let at = 0;
      const end = chunk.length;
      while (at < end) {
        if (state === 'head') {
          // Header bytes are latin1 text: find the blank line, in this chunk or across the bytes held from the last one.
          let head: string;
          if (line.length === 0) {
            const stop = chunk.indexOf(HEADER_END, at);
            if (stop < 0) {
              line = chunk.toString('latin1', at, end);
              return;
            }
            head = chunk.toString('latin1', at, stop);
            at = stop + 4;
          } else {
            const joined = line + chunk.toString('latin1', at, end);
            const found = joined.indexOf('\r\n\r\n');
            if (found < 0) {
              line = joined;
              return;
            }
            at += found + 4 - line.length;
            line = '';
            head = joined.slice(0, found);
          }
          state = headEnd(head);
          if (state === 'body' && bodyLeft === 0) {
            state = 'head';
            finish();
          }
          continue;
        }
        if (state === 'body' || state === 'data') {
          const take = Math.min(bodyLeft, end - at);
          if (measured) totals.bytes += state === 'data' ? Math.min(take, Math.max(0, bodyLeft - 2)) : take;
          bodyLeft -= take;
          at += take;
          if (bodyLeft > 0) return;
          if (state === 'body') {
            state = 'head';
            finish();
          } else {
            state = 'size';
            line = '';
          }
          continue;
        }
        // 'size' or 'last': a line ending in CRLF.
        const lf = chunk.indexOf(LF, at);
        if (lf < 0) {
          line += chunk.toString('latin1', at, end);
          return;
        }
        line += chunk.toString('latin1', at, lf + 1);
        at = lf + 1;
        if (line.length < 2 || line.charCodeAt(line.length - 2) !== CR) {
          socket.destroy(new Error('malformed chunked body'));
          return;
        }
        if (state === 'last') {
          // The blank line ends the body; any other line is a trailer, skipped.
          const blank = line.length === 2;
          line = '';
          if (blank) {
            state = 'head';
            finish();
          }
          continue;
        }
        const size = parseInt(line, 16);
        line = '';
        if (!Number.isFinite(size)) {
          socket.destroy(new Error('malformed chunk size'));
          return;
        }
        if (size === 0) state = 'last';
        else {
          state = 'data';
          bodyLeft = size + 2; // the chunk and its CRLF
        }
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
  const requests = buildRequests(options);
  const start = performance.now();
  const latencies: number[] = [];
  const totals: Totals = { bytes: 0, errors: 0, requests: 0, all: 0 };
  let ownCpuAtStart = process.cpuUsage();
  let ownCpu: NodeJS.CpuUsage | undefined;
  let closedAt: number | undefined;
  const event = (name: string): void => {
    if (options.progress) process.stdout.write(`${JSON.stringify({ event: name })}\n`);
  };
  const window: Window = {
    measureFrom: start + options.warmupMs,
    stopAt: start + options.warmupMs + options.durationMs,
    budget: options.maxRequests ?? Infinity,
    close() {
      if (closedAt !== undefined) return;
      closedAt = performance.now();
      window.stopAt = closedAt;
      ownCpu = process.cpuUsage(ownCpuAtStart);
      clearTimeout(closeTimer);
      event('measured');
    },
  };
  const openTimer = setTimeout(() => {
    ownCpuAtStart = process.cpuUsage();
    event('measuring');
  }, options.warmupMs);
  const closeTimer = setTimeout(() => window.close(), options.warmupMs + options.durationMs);
  const hardStop = setTimeout(() => process.exit(2), options.warmupMs + options.durationMs + 10_000);
  await Promise.all(Array.from({ length: options.connections }, (_, conn) => runConnection(options, requests, window, latencies, totals, conn)));
  clearTimeout(hardStop);
  clearTimeout(openTimer);
  window.close();
  latencies.sort((a, b) => a - b);
  const pick = (q: number): number => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? NaN;
  const seconds = ((closedAt ?? window.stopAt) - window.measureFrom) / 1000;
  const used = ownCpu ?? process.cpuUsage(ownCpuAtStart);
  const result: LoadResult = {
    requests: totals.requests,
    allRequests: totals.all,
    seconds,
    rps: totals.requests / seconds,
    p50Ms: pick(0.5),
    p99Ms: pick(0.99),
    p999Ms: pick(0.999),
    maxMs: latencies[latencies.length - 1] ?? NaN,
    bytes: totals.bytes,
    errors: totals.errors,
    ownCpuMs: (used.user + used.system) / 1000,
  };
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

await main();
