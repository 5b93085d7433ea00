// Publish and consume throughput of the client against the in-memory fake
// broker of the tests over loopback (so it measures the client and HTTP, not a
// broker's disk): messages per second and per-call latency percentiles.
import { Client, type ClientOptions } from '../src/index.js';
import { startFakeBroker } from '../test/fake-broker.js';

const data = new Uint8Array(100).fill(7);
const message = { type: 1, topicID: 1n, data };

function report(label: string, count: number, seconds: number, latencies?: number[]): void {
  let line = `${label.padEnd(52)} ${Math.round(count / seconds).toLocaleString('en-US').padStart(10)} msg/s`;
  if (latencies && latencies.length > 0) {
    const sorted = [...latencies].sort((a, b) => a - b);
    const at = (q: number): string => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!.toFixed(2);
    line += `   p50 ${at(0.5)} ms  p99 ${at(0.99)} ms`;
  }
  console.log(line);
}

async function withClient(options: ClientOptions, run: (client: Client) => Promise<void>): Promise<void> {
  const broker = await startFakeBroker();
  const client = new Client({ urls: [broker.url], pingIntervalMs: 0, ...options });
  await client.open();
  try {
    await run(client);
  } finally {
    await client.close();
    await broker.close();
  }
}

/** `concurrency` loops publishing `total` messages in all; returns seconds and per-call latencies (ms). */
async function publishLoops(client: Client, total: number, concurrency: number): Promise<{ seconds: number; latencies: number[] }> {
  const latencies: number[] = [];
  let left = total;
  const start = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (left-- > 0) {
        const t = performance.now();
        await client.publish(message);
        latencies.push(performance.now() - t);
      }
    }),
  );
  return { seconds: (performance.now() - start) / 1000, latencies };
}

await withClient({ batching: { enabled: false } }, async (client) => {
  await publishLoops(client, 500, 1);
  const { seconds, latencies } = await publishLoops(client, 5_000, 1);
  report('client: publish, 1 caller, one request each', 5_000, seconds, latencies);
});

await withClient({ batching: { enabled: false } }, async (client) => {
  const { seconds, latencies } = await publishLoops(client, 20_000, 64);
  report('client: publish, 64 callers, no coalescing', 20_000, seconds, latencies);
});

await withClient({}, async (client) => {
  await publishLoops(client, 2_000, 64);
  const { seconds, latencies } = await publishLoops(client, 100_000, 512);
  report('client: publish, 512 callers, coalesced (default)', 100_000, seconds, latencies);
});

await withClient({}, async (client) => {
  const batch = Array.from({ length: 1000 }, () => message);
  const start = performance.now();
  for (let i = 0; i < 100; i++) await client.publishBatch(batch);
  report('client: publishBatch of 1000', 100_000, (performance.now() - start) / 1000);

  const conn = client.conn(1n);
  conn.open(0n, { streaming: false });
  let count = 0;
  const read = performance.now();
  for await (const _ of conn) count++;
  report('client: Conn read of a 100k-message topic', count, (performance.now() - read) / 1000);
  await conn.close();
});
