// Publish-to-stream latency probe, run in its own process (see `runScript`).
// One JSON argument, a `ProbeOptions`. It opens a streaming GET of a fresh
// topic on `streamPort`, then publishes one message at a time to
// `publishPort` on an open-loop schedule: message i is due at t0 + i/rate and
// is sent when due whether or not earlier publishes have been answered (up to
// `maxInFlight` sockets; beyond that requests queue in the probe, still timed
// from their due time). Every latency is measured from the due time, so a stall delays
// every message due during it (no coordinated omission). Message data carries
// i in its first 4 bytes, so stream arrivals are matched to their publish.
// Prints `{"event":"measuring"}` at t0, `{"event":"measured"}` once every
// message arrived (or the grace period ran out), then one `ProbeResult` line.
import { Agent, request } from 'node:http';
import { MessageDecoder } from '@msg/wire';

/** The probe's JSON argument. */
interface ProbeOptions {
  publishPort: number;
  streamPort: number;
  topicID: string;
  /** Messages per second. */
  rate: number;
  durationMs: number;
  bodyBytes: number;
  maxInFlight: number;
  /**
   * Paced publishes to `warmupTopicID` (not streamed, not measured) before
   * the schedule starts: opens the sockets and warms up both processes.
   */
  warmupMs: number;
  warmupTopicID: string;
}

/** Latency percentiles in ms. */
export interface Percentiles {
  p50: number;
  p99: number;
  p999: number;
  max: number;
}

/** What the probe prints. */
export interface ProbeResult {
  /** Messages scheduled (and sent). */
  sent: number;
  /** Publishes answered 200. */
  acked: number;
  /** Publishes answered otherwise or failed. */
  errors: number;
  /** Those errors by kind: the HTTP status, or the socket error's code. */
  errorKinds: Record<string, number>;
  /** Messages seen on the stream. */
  seen: number;
  /** Due time to arrival on the stream. */
  endToEnd: Percentiles;
  /** Due time to the publish's 200. */
  ack: Percentiles;
  /** Due time to the moment the probe issued the request (its own timer's lateness; waits for a free socket come after). */
  sendLag: Percentiles;
  /** Wall-clock time of t0 (ms since the epoch), to place broker log events on the schedule. */
  t0EpochMs: number;
  /** The worst stalls (the slowest message of each, a second apart at least): due time after t0 and latency, ms. */
  worst: { atMs: number; ms: number }[];
}

function percentiles(values: number[]): Percentiles {
  const sorted = Float64Array.from(values).sort();
  const pick = (q: number): number => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? NaN;
  return { p50: pick(0.5), p99: pick(0.99), p999: pick(0.999), max: sorted[sorted.length - 1] ?? NaN };
}

async function main(): Promise<void> {
  const options = JSON.parse(process.argv[2] ?? '{}') as ProbeOptions;
  const count = Math.max(1, Math.round((options.rate * options.durationMs) / 1000));
  const intervalMs = 1000 / options.rate;
  const due = new Float64Array(count);
  const arrived = new Float64Array(count).fill(NaN);
  const acked = new Float64Array(count).fill(NaN);
  const sentAt = new Float64Array(count).fill(NaN);
  let seen = 0;
  let ackedCount = 0;
  let errors = 0;
  let settled = 0;

  // The stream first: a fresh topic, from index 0, never ending on its own.
  const decoder = new MessageDecoder();
  const streamAgent = new Agent({ keepAlive: false });
  let allSeen: () => void = () => {};
  const everything = new Promise<void>((resolve) => (allSeen = resolve));
  const stream = request({ port: options.streamPort, host: '127.0.0.1', path: `/messaging/messages?topicID=${options.topicID}&index=0&streaming=true`, agent: streamAgent });
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('the stream did not answer within 10 s')), 10_000);
    stream.on('response', (res) => {
      clearTimeout(timer);
      if (res.statusCode !== 200) reject(new Error(`the stream answered ${res.statusCode}`));
      res.on('data', (chunk: Buffer) => {
        const now = performance.now();
        for (const message of decoder.push(chunk)) {
          const data = message.data;
          if (data.byteLength < 4) continue;
          const i = new DataView(data.buffer, data.byteOffset, 4).getUint32(0);
          if (i < count && Number.isNaN(arrived[i]!)) {
            arrived[i] = now;
            if (++seen === count) allSeen();
          }
        }
      });
      resolve();
    });
    stream.on('error', reject);
    stream.end();
  });

  const agent = new Agent({ keepAlive: true, maxSockets: options.maxInFlight });
  const errorKinds: Record<string, number> = {};
  /** POSTs message `i` to `topicID`; `done(status)` once answered (0: failed). */
  const post = (topicID: string, i: number, done: (status: number) => void): void => {
    const body = Buffer.alloc(options.bodyBytes, 0x62);
    body.writeUInt32BE(i, 0);
    const req = request(
      { port: options.publishPort, host: '127.0.0.1', method: 'POST', path: `/messaging/messages?type=1&topicID=${topicID}`, agent, headers: { 'content-length': body.length } },
      (res) => {
        res.resume();
        res.on('end', () => done(res.statusCode ?? 0));
      },
    );
    req.on('error', (error: NodeJS.ErrnoException) => {
      const kind = error.code ?? 'error';
      errorKinds[kind] = (errorKinds[kind] ?? 0) + 1;
      done(0);
    });
    req.end(body);
  };
  const publish = (i: number): void => {
    sentAt[i] = performance.now();
    post(options.topicID, i, (code) => {
      settled++;
      if (code === 200) {
        acked[i] = performance.now();
        ackedCount++;
      } else {
        errors++;
        if (code !== 0) errorKinds[`HTTP ${code}`] = (errorKinds[`HTTP ${code}`] ?? 0) + 1;
      }
    });
  };

  // Warm-up: the same pace to another topic, every answer awaited (bounded) before t0.
  {
    const n = Math.round((options.rate * options.warmupMs) / 1000);
    const start = performance.now();
    let answered = 0;
    for (let i = 0; i < n; i++) {
      const wait = start + i * intervalMs - performance.now();
      if (wait > 1) await new Promise((resolve) => setTimeout(resolve, wait));
      post(options.warmupTopicID, i, () => answered++);
    }
    for (let spin = 0; answered < n && spin < 1000; spin++) await new Promise((resolve) => setTimeout(resolve, 10));
  }

  const t0 = performance.now() + 50;
  const t0EpochMs = Date.now() + (t0 - performance.now());
  for (let i = 0; i < count; i++) due[i] = t0 + i * intervalMs;
  let next = 0;
  await new Promise<void>((resolve) => {
    const tick = (): void => {
      const now = performance.now();
      if (next === 0 && now >= t0) process.stdout.write(`${JSON.stringify({ event: 'measuring' })}\n`);
      while (next < count && due[next]! <= now) publish(next++);
      if (next >= count) resolve();
      else setTimeout(tick, Math.max(0, due[next]! - performance.now()));
    };
    setTimeout(tick, Math.max(0, t0 - performance.now()));
  });

  // Wait (bounded) for the last arrivals and answers.
  const graceMs = 15_000;
  await Promise.race([everything, new Promise((resolve) => setTimeout(resolve, graceMs))]);
  const answered = Date.now() + graceMs;
  for (let spin = 0; settled < count && Date.now() < answered && spin < 1500; spin++) await new Promise((resolve) => setTimeout(resolve, 10));
  process.stdout.write(`${JSON.stringify({ event: 'measured' })}\n`);
  stream.destroy();
  streamAgent.destroy();
  agent.destroy();

  const endToEnd: number[] = [];
  const ack: number[] = [];
  const lag: number[] = [];
  const worst: { atMs: number; ms: number }[] = [];
  for (let i = 0; i < count; i++) {
    if (!Number.isNaN(arrived[i]!)) endToEnd.push(arrived[i]! - due[i]!);
    if (!Number.isNaN(acked[i]!)) ack.push(acked[i]! - due[i]!);
    if (!Number.isNaN(sentAt[i]!)) lag.push(sentAt[i]! - due[i]!);
  }
  const order = Array.from({ length: count }, (_, i) => i).filter((i) => !Number.isNaN(arrived[i]!));
  order.sort((a, b) => arrived[b]! - due[b]! - (arrived[a]! - due[a]!));
  // The five worst stalls: the slowest message of each, at least a second apart on the schedule.
  for (const i of order) {
    if (worst.length >= 5) break;
    const atMs = due[i]! - t0;
    if (worst.every((w) => Math.abs(w.atMs - atMs) >= 1000)) worst.push({ atMs, ms: arrived[i]! - due[i]! });
  }
  const result: ProbeResult = {
    sent: count,
    acked: ackedCount,
    errors,
    errorKinds,
    seen,
    endToEnd: percentiles(endToEnd),
    ack: percentiles(ack),
    sendLag: percentiles(lag),
    t0EpochMs,
    worst,
  };
  process.stdout.write(`${JSON.stringify(result)}\n`);
  process.exit(0);
}

await main();
