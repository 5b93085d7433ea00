// Benchmarks of issue 4, against real broker processes on loopback (fsync on, temp dirs):
// - publish throughput (msgs/s) and ack latency p50/p99, one message per request and batches of
//   100, with 1, 16 and 64 concurrent publishers, on one node and on three nodes;
// - replay MB/s (GET a ~100 MB topic from index 0), publish-to-stream latency p50/p99;
// - the ceiling: a minimal node:http server answering 200 to 100-byte POSTs, same load generator.
// The load generator (@msg/test-utils' load-generator.ts) runs in its own process. Every child is killed by its PID.
// Run: pnpm bench (or `node --conditions=@msg/source --import tsx bench/broker.bench.ts` here).
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { request, Agent } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadGeneratorPath, type LoadResult } from '@msg/test-utils/load-generator';
import { encodeMessages, MessageDecoder, type Message } from '@msg/wire';

const app = join(import.meta.dirname, '..');
const root = join(app, '..', '..');
const tsx = join(root, 'node_modules', 'tsx', 'dist', 'esm', 'index.mjs');
const main = join(app, 'src', 'main.ts');

const WARMUP_MS = 1000;
const DURATION_MS = 3000;
const BATCH = 100;
const BODY_BYTES = 100;
const REPLAY_BYTES = 100 * 1024 * 1024;

const children = new Set<ChildProcess>();
const dirs: string[] = [];

function killAll(): void {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) process.kill(child.pid!, 'SIGKILL');
}
process.on('exit', killAll);
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    killAll();
    process.exit(130);
  });
}

interface Broker {
  url: string;
  port: number;
  child: ChildProcess;
}

async function startBroker(dir: string, join_: string[] = []): Promise<Broker> {
  const args = ['--conditions=@msg/source', '--import', tsx, main, '--data-dir', dir, '--listen', '127.0.0.1:0', '--sync', 'always', '--log-level', 'info'];
  for (const url of join_) args.push('--join', url);
  const child = spawn(process.execPath, args, { cwd: app, stdio: ['ignore', 'ignore', 'pipe'] });
  children.add(child);
  const url = await new Promise<string>((resolve, reject) => {
    let buffered = '';
    const timer = setTimeout(() => reject(new Error(`broker in ${dir} did not start`)), 60_000);
    child.stderr.setEncoding('utf8').on('data', (text: string) => {
      buffered += text;
      for (let at = buffered.indexOf('\n'); at >= 0; at = buffered.indexOf('\n')) {
        const line = buffered.slice(0, at);
        buffered = buffered.slice(at + 1);
        if (!line.includes('"listening"')) continue;
        const entry = JSON.parse(line) as { msg: string; url?: string };
        if (entry.msg === 'listening' && entry.url) {
          clearTimeout(timer);
          resolve(entry.url);
        }
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`broker exited (${code}) before listening`));
    });
  });
  return { url, port: Number(new URL(url).port), child };
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  process.kill(child.pid!, 'SIGKILL');
  await exited;
  children.delete(child);
}

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'msg-bench-'));
  dirs.push(dir);
  return dir;
}

function runLoad(options: Record<string, unknown>): Promise<LoadResult> {
  const child = spawn(process.execPath, ['--import', tsx, loadGeneratorPath, JSON.stringify({ warmupMs: WARMUP_MS, durationMs: DURATION_MS, ...options })], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  children.add(child);
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (text: string) => (out += text));
  return new Promise((resolve, reject) => {
    child.once('close', (code) => {
      children.delete(child);
      if (code !== 0) reject(new Error(`load generator exited ${code}`));
      else resolve(JSON.parse(out) as LoadResult);
    });
  });
}

const batchBody = Buffer.from(
  encodeMessages(Array.from({ length: BATCH }, (_, i) => ({ type: 1, topicID: 2n, index: 0n, data: new Uint8Array(BODY_BYTES).fill(97 + (i % 26)) }))),
).toString('base64');

interface Row {
  case: string;
  conns: number | string;
  msgsPerSec: string;
  reqPerSec: string;
  p50: string;
  p99: string;
  note: string;
}
const rows: Row[] = [];
const fmt = (n: number, digits = 0): string => (Number.isFinite(n) ? n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits }) : '-');

async function publishCases(label: string, leader: Broker): Promise<void> {
  for (const conns of [1, 16, 64]) {
    const single = await runLoad({ mode: 'post', port: leader.port, connections: conns, bodyBytes: BODY_BYTES, path: '/messaging/messages?type=1&topicID=1' });
    rows.push({ case: `${label} publish 1 msg/req`, conns, msgsPerSec: fmt(single.rps), reqPerSec: fmt(single.rps), p50: fmt(single.p50Ms, 2), p99: fmt(single.p99Ms, 2), note: single.errors ? `${single.errors} errors` : '' });
    const batch = await runLoad({ mode: 'post', port: leader.port, connections: conns, bodyBase64: batchBody, path: '/messaging/batch' });
    rows.push({ case: `${label} publish batch ${BATCH}`, conns, msgsPerSec: fmt(batch.rps * BATCH), reqPerSec: fmt(batch.rps), p50: fmt(batch.p50Ms, 2), p99: fmt(batch.p99Ms, 2), note: batch.errors ? `${batch.errors} errors` : '' });
  }
}

const agent = new Agent({ keepAlive: true, maxSockets: 4 });

function post(url: string, body: Uint8Array): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: 'POST', agent, headers: { 'content-length': body.byteLength } }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** Publishes ~`bytes` of 1000-byte messages to `topicID` in batches of 1000 (about 1 MB per request, 4 in flight). */
async function fill(url: string, topicID: bigint, bytes: number): Promise<number> {
  const perMessage = 1000;
  const body = encodeMessages(Array.from({ length: 1000 }, () => ({ type: 1, topicID, index: 0n, data: new Uint8Array(perMessage).fill(120) })));
  const requests = Math.ceil(bytes / (perMessage * 1000));
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < requests) {
      next++;
      const status = await post(`${url}/messaging/batch`, body);
      if (status !== 200) throw new Error(`fill: batch answered ${status}`);
    }
  };
  await Promise.all(Array.from({ length: 4 }, worker));
  return requests * 1000;
}

/** GETs the whole topic once; MB/s of the response body (frames included). */
function replay(url: string, topicID: bigint): Promise<{ bytes: number; seconds: number }> {
  return new Promise((resolve, reject) => {
    const start = performance.now();
    let bytes = 0;
    request(`${url}/messaging/messages?topicID=${topicID}&index=0`, { agent }, (res) => {
      res.on('data', (chunk: Buffer) => (bytes += chunk.length));
      res.on('end', () => resolve({ bytes, seconds: (performance.now() - start) / 1000 }));
      res.on('error', reject);
    })
      .on('error', reject)
      .end();
  });
}

/**
 * Publish-to-stream latency: a streaming GET on `streamURL`, then messages published one at a time
 * to `publishURL`; each latency is from sending the POST to the message arriving on the stream.
 */
async function streamLatency(publishURL: string, streamURL: string, topicID: bigint, durationMs: number): Promise<{ n: number; p50: number; p99: number }> {
  const decoder = new MessageDecoder();
  let waiting: ((m: Message) => void) | undefined;
  const streamAgent = new Agent({ keepAlive: false });
  const req = request(`${streamURL}/messaging/messages?topicID=${topicID}&index=0&streaming=true`, { agent: streamAgent });
  await new Promise<void>((resolve, reject) => {
    req.on('response', (res) => {
      res.on('data', (chunk: Buffer) => {
        for (const message of decoder.push(chunk)) waiting?.(message);
      });
      resolve();
    });
    req.on('error', reject);
    req.end();
  });
  const latencies: number[] = [];
  const data = new Uint8Array(BODY_BYTES).fill(98);
  const until = performance.now() + durationMs;
  for (let i = 0; i < 20_000 && performance.now() < until; i++) {
    const sent = performance.now();
    const arrived = new Promise<void>((resolve) => {
      waiting = () => resolve();
    });
    const status = await post(`${publishURL}/messaging/messages?type=1&topicID=${topicID}`, data);
    if (status !== 200) throw new Error(`publish answered ${status}`);
    await arrived;
    latencies.push(performance.now() - sent);
  }
  req.destroy();
  streamAgent.destroy();
  latencies.sort((a, b) => a - b);
  const pick = (q: number): number => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? NaN;
  return { n: latencies.length, p50: pick(0.5), p99: pick(0.99) };
}

const CEILING_SERVER = `
const http = require('node:http');
const server = http.createServer((req, res) => { req.resume(); req.on('end', () => { res.writeHead(200, { 'content-length': 0 }); res.end(); }); });
server.listen(0, '127.0.0.1', () => process.stdout.write(server.address().port + '\\n'));
`;

async function ceiling(): Promise<void> {
  const child = spawn(process.execPath, ['-e', CEILING_SERVER], { stdio: ['ignore', 'pipe', 'inherit'] });
  children.add(child);
  const port = await new Promise<number>((resolve) => child.stdout.setEncoding('utf8').once('data', (text: string) => resolve(Number(text.trim()))));
  for (const conns of [1, 16, 64]) {
    const r = await runLoad({ mode: 'post', port, connections: conns, bodyBytes: BODY_BYTES, path: '/' });
    rows.push({ case: 'ceiling: bare node:http 200 to 100-byte POST', conns, msgsPerSec: '-', reqPerSec: fmt(r.rps), p50: fmt(r.p50Ms, 2), p99: fmt(r.p99Ms, 2), note: r.errors ? `${r.errors} errors` : '' });
  }
  await stop(child);
}

async function run(): Promise<void> {
  const started = performance.now();
  await ceiling();

  // One node.
  const single = await startBroker(await tempDir());
  await publishCases('1 node', single);
  const lat1 = await streamLatency(single.url, single.url, 3n, 3000);
  rows.push({ case: '1 node publish-to-stream latency', conns: 1, msgsPerSec: '-', reqPerSec: '-', p50: fmt(lat1.p50, 2), p99: fmt(lat1.p99, 2), note: `${lat1.n} msgs` });
  const filled = await fill(single.url, 9n, REPLAY_BYTES);
  const r = await replay(single.url, 9n);
  rows.push({ case: '1 node replay ~100 MB from index 0', conns: 1, msgsPerSec: fmt(filled / r.seconds), reqPerSec: '-', p50: '-', p99: '-', note: `${fmt(r.bytes / 1e6 / r.seconds, 1)} MB/s (${fmt(r.bytes / 1e6, 1)} MB in ${fmt(r.seconds, 2)} s)` });
  await stop(single.child);

  // Three nodes on loopback.
  const n1 = await startBroker(await tempDir());
  const n2 = await startBroker(await tempDir(), [n1.url]);
  const n3 = await startBroker(await tempDir(), [n1.url]);
  await publishCases('3 nodes', n1);
  const lat3 = await streamLatency(n1.url, n2.url, 3n, 3000);
  rows.push({ case: '3 nodes publish(leader)-to-stream(follower) latency', conns: 1, msgsPerSec: '-', reqPerSec: '-', p50: fmt(lat3.p50, 2), p99: fmt(lat3.p99, 2), note: `${lat3.n} msgs` });
  for (const node of [n3, n2, n1]) await stop(node.child);

  const headers: (keyof Row)[] = ['case', 'conns', 'msgsPerSec', 'reqPerSec', 'p50', 'p99', 'note'];
  const titles: Record<keyof Row, string> = { case: 'case', conns: 'conns', msgsPerSec: 'msgs/s', reqPerSec: 'req/s', p50: 'p50 ms', p99: 'p99 ms', note: 'note' };
  const widths = headers.map((h) => Math.max(titles[h].length, ...rows.map((row) => String(row[h]).length)));
  const line = (cells: string[]): string => cells.map((c, i) => (i === 0 || i === cells.length - 1 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  console.log(`\n@msg/broker-server bench (fsync on, loopback, ${DURATION_MS / 1000} s per case after ${WARMUP_MS / 1000} s warm-up, ${BODY_BYTES}-byte messages)`);
  console.log(line(headers.map((h) => titles[h])));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const row of rows) console.log(line(headers.map((h) => String(row[h]))));
  console.log(`\ntotal ${fmt((performance.now() - started) / 1000, 0)} s`);
}

try {
  await run();
} finally {
  killAll();
  agent.destroy();
  await Promise.all(dirs.map((dir) => rm(dir, { recursive: true, force: true })));
}
