// Replay benchmark of issue 14 (not a jest test): `pnpm bench` in packages/http, or
// `node --conditions=@msg/source --import tsx bench/replay.bench.ts` here.
//
// A real broker (apps/broker-server, one node, `--sync never` so the fill is quick) runs as a
// child process; a topic is filled with 500,000 messages of 100 bytes (122 bytes a frame on the
// wire: the 22-byte header + data) through POST /messaging/batch; then a second child (the
// reader, never on the server's event loop) GETs the whole topic from index 0, non-streaming,
// once to warm up and then 3 times. Prints each run, the median and the best in msg/s and MB/s,
// and the broker's CPU time per replay (user + system from /proc/<pid>/stat over the measured
// replays: less sensitive than wall time to other load on the machine). The parent then checks
// one replay frame by frame (count, type, topic, consecutive indexes, data).
//
// Target of issue 14: at least 2M msg/s.
//
// BENCH_PROFILE=<dir>: the broker runs under `node --cpu-prof --cpu-prof-dir=<dir>` and is stopped
// with SIGINT after the replays, so the profile is written; the bench prints the replays' window
// (CLOCK_MONOTONIC µs, the profile's clock), so that its samples can be told from the fill's.
// BENCH_RESTART=1: restart the broker (same data, same port) after the fill, before the replays.
// BENCH_NODE_FLAGS: more node flags for the broker (e.g. --trace-gc); BENCH_BROKER_STDOUT=1 shows its stdout.
// BENCH_LOAD_GENERATOR=1: also replays for 5 s with @msg/test-utils' load generator (get mode).
// BENCH_MESSAGES, BENCH_RUNS: override the message count (default 500000) and runs (default 3).
// Every child is killed by its PID on exit.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { Agent, request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadGeneratorPath, type LoadResult } from '@msg/test-utils/load-generator';
import { encodeMessages, MessageDecoder } from '@msg/wire';

const root = join(import.meta.dirname, '..', '..', '..');
const app = join(root, 'apps', 'broker-server');
const tsx = join(root, 'node_modules', 'tsx', 'dist', 'esm', 'index.mjs');
const main = join(app, 'src', 'main.ts');

const MESSAGES = Number(process.env.BENCH_MESSAGES ?? 500_000);
const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const DATA_BYTES = 100;
const FRAME_BYTES = 22 + DATA_BYTES;
const BATCH = 5000;
const TOPIC = 14n;
const PROFILE_DIR = process.env.BENCH_PROFILE;

const children = new Set<ChildProcess>();
function killAll(): void {
  for (const child of children) if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) process.kill(child.pid, 'SIGKILL');
}
process.on('exit', killAll);
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    killAll();
    process.exit(130);
  });
}

async function startBroker(dir: string, port = 0): Promise<{ url: string; child: ChildProcess }> {
  const prof = PROFILE_DIR !== undefined ? ['--cpu-prof', `--cpu-prof-dir=${PROFILE_DIR}`] : [];
  const extra = process.env.BENCH_NODE_FLAGS?.split(' ').filter((flag) => flag !== '') ?? [];
  const args = [...prof, ...extra, '--conditions=@msg/source', '--import', tsx, main, '--data-dir', dir, '--listen', `127.0.0.1:${port}`, '--sync', 'never', '--log-level', 'info'];
  const child = spawn(process.execPath, args, { cwd: app, stdio: ['ignore', process.env.BENCH_BROKER_STDOUT === '1' ? 'inherit' : 'ignore', 'pipe'] });
  children.add(child);
  const url = await new Promise<string>((resolve, reject) => {
    let buffered = '';
    let log = '';
    const timer = setTimeout(() => reject(new Error('broker did not start in 60 s')), 60_000);
    child.stderr.setEncoding('utf8').on('data', (text: string) => {
      buffered += text;
      log = (log + text).slice(-4000);
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
      reject(new Error(`broker exited (${code}) before listening; its last output:\n${log}`));
    });
  });
  return { url, child };
}

/** Stops the broker with SIGINT (a clean stop: a CPU profile is written), SIGKILL after 30 s. */
async function stopBroker(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  process.kill(child.pid!, 'SIGINT');
  const timer = setTimeout(() => process.kill(child.pid!, 'SIGKILL'), 30_000);
  await exited;
  clearTimeout(timer);
  children.delete(child);
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

/** Publishes MESSAGES messages of DATA_BYTES (byte i of message n is (n + i) & 0xff) in batches, 4 in flight. */
async function fill(url: string): Promise<void> {
  const bodies = new Map<number, Uint8Array>();
  const bodyFor = (size: number): Uint8Array => {
    let body = bodies.get(size);
    if (body === undefined) {
      body = encodeMessages(Array.from({ length: size }, () => ({ type: 1, topicID: TOPIC, index: 0n, data: new Uint8Array(DATA_BYTES).fill(0x6d) })));
      bodies.set(size, body);
    }
    return body;
  };
  let sent = 0;
  const worker = async (): Promise<void> => {
    while (sent < MESSAGES) {
      const size = Math.min(BATCH, MESSAGES - sent);
      sent += size;
      const status = await post(`${url}/messaging/batch`, bodyFor(size));
      if (status !== 200) throw new Error(`fill: batch answered ${status}`);
    }
  };
  await Promise.all(Array.from({ length: 4 }, worker));
}

// The reader: its own process. GETs the topic `runs` times over one keep-alive connection and
// prints one JSON line: the body bytes and seconds of each run.
const READER = `
const http = require('node:http');
const [url, runs] = [process.argv[1], Number(process.argv[2])];
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
const once = () => new Promise((resolve, reject) => {
  const start = performance.now();
  let bytes = 0;
  http.get(url, { agent }, (res) => {
    if (res.statusCode !== 200) reject(new Error('status ' + res.statusCode));
    res.on('data', (chunk) => { bytes += chunk.length; });
    res.on('end', () => resolve({ bytes, seconds: (performance.now() - start) / 1000 }));
    res.on('error', reject);
  }).on('error', reject);
});
(async () => {
  const out = [];
  for (let i = 0; i < runs; i++) out.push(await once());
  process.stdout.write(JSON.stringify(out) + '\\n');
  agent.destroy();
})().catch((e) => { console.error(e); process.exit(1); });
`;

function runReader(url: string, runs: number): Promise<{ bytes: number; seconds: number }[]> {
  const child = spawn(process.execPath, ['-e', READER, url, String(runs)], { stdio: ['ignore', 'pipe', 'inherit'] });
  children.add(child);
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (text: string) => (out += text));
  const timer = setTimeout(() => process.kill(child.pid!, 'SIGKILL'), 120_000 * runs);
  return new Promise((resolve, reject) => {
    child.once('close', (code) => {
      clearTimeout(timer);
      children.delete(child);
      if (code !== 0) reject(new Error(`reader exited ${code}`));
      else resolve(JSON.parse(out) as { bytes: number; seconds: number }[]);
    });
  });
}

/** Replays back to back for 5 s with @msg/test-utils' load generator (`get` mode, one connection), in its own process. */
function runLoadGenerator(port: number, path: string): Promise<LoadResult> {
  const child = spawn(process.execPath, ['--import', tsx, loadGeneratorPath, JSON.stringify({ mode: 'get', port, path, connections: 1, warmupMs: 500, durationMs: 5000 })], {
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

/** One replay decoded here (not timed): every message present, in order, intact. */
function verify(url: string): Promise<void> {
  const decoder = new MessageDecoder();
  const expected = new Uint8Array(DATA_BYTES).fill(0x6d);
  let count = 0;
  let previous = 0n;
  return new Promise((resolve, reject) => {
    request(url, { agent }, (res) => {
      res.on('data', (chunk: Buffer) => {
        for (const m of decoder.push(chunk)) {
          if (m.type !== 1 || m.topicID !== TOPIC || (count > 0 && m.index !== previous + 1n) || Buffer.compare(m.data, expected) !== 0) {
            reject(new Error(`message ${count} (index ${m.index}) is not what was published`));
            res.destroy();
            return;
          }
          previous = m.index;
          count++;
        }
      });
      res.on('end', () => {
        decoder.end();
        if (count !== MESSAGES) reject(new Error(`replay held ${count} messages, expected ${MESSAGES}`));
        else resolve();
      });
      res.on('error', reject);
    })
      .on('error', reject)
      .end();
  });
}

/** CPU seconds (user + system) the process `pid` has used, from /proc (Linux); undefined elsewhere. */
async function cpuSeconds(pid: number): Promise<number | undefined> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime in clock ticks (USER_HZ 100)
  } catch {
    return undefined;
  }
}

/** Waits (at most 15 s) until the broker uses under 10% of a core over 500 ms: the fill's snapshots and compactions are done. */
async function settle(pid: number): Promise<void> {
  const until = performance.now() + 15_000;
  const first = await cpuSeconds(pid);
  if (first === undefined) return;
  let last: number = first;
  while (performance.now() < until) {
    await new Promise((resolve) => setTimeout(resolve, 500));
    const now: number = (await cpuSeconds(pid)) ?? last;
    if (now - last < 0.05) return;
    last = now;
  }
}

const median = (values: number[]): number => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
const fmt = (n: number, digits = 0): string => n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });

async function run(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'msg-replay-bench-'));
  try {
    let broker = await startBroker(dir);
    const fillStart = performance.now();
    await fill(broker.url);
    console.log(`filled topic ${TOPIC} with ${fmt(MESSAGES)} messages of ${DATA_BYTES} bytes in ${fmt((performance.now() - fillStart) / 1000, 1)} s`);
    if (process.env.BENCH_RESTART === '1') {
      // The same data and port (its raft member URL), a broker started afresh.
      await stopBroker(broker.child);
      broker = await startBroker(dir, Number(new URL(broker.url).port));
      console.log('broker restarted on the same data');
    }
    await settle(broker.child.pid!);
    const url = `${broker.url}/messaging/messages?topicID=${TOPIC}&index=0`;
    const [first] = await runReader(url, 1); // warm-up: the first replay after the fill, cold JIT
    console.log(`  first replay (warm-up): ${fmt(first!.seconds * 1000, 1)} ms   ${fmt(MESSAGES / first!.seconds)} msg/s`);
    const cpuBefore = await cpuSeconds(broker.child.pid!);
    const windowStart = process.hrtime.bigint() / 1000n;
    const runs = await runReader(url, RUNS);
    const windowEnd = process.hrtime.bigint() / 1000n;
    const cpuAfter = await cpuSeconds(broker.child.pid!);
    // CLOCK_MONOTONIC in µs, the clock of a .cpuprofile's startTime and timeDeltas: the replays' samples lie in this window.
    if (PROFILE_DIR !== undefined) console.log(`replay window (monotonic µs): ${windowStart}..${windowEnd}`);
    for (const r of runs) {
      if (r.bytes !== MESSAGES * FRAME_BYTES) throw new Error(`a replay sent ${r.bytes} bytes, expected ${MESSAGES * FRAME_BYTES}`);
      console.log(`  replay: ${fmt(r.seconds * 1000, 1)} ms   ${fmt(MESSAGES / r.seconds)} msg/s   ${fmt(r.bytes / 1e6 / r.seconds, 1)} MB/s`);
    }
    const seconds = median(runs.map((r) => r.seconds));
    const best = Math.min(...runs.map((r) => r.seconds));
    console.log(
      `replay of ${fmt(MESSAGES)} x ${FRAME_BYTES}-byte frames, median of ${RUNS}: ${fmt(MESSAGES / seconds)} msg/s, ${fmt((MESSAGES * FRAME_BYTES) / 1e6 / seconds, 1)} MB/s; best ${fmt(MESSAGES / best)} msg/s (node ${process.version})`,
    );
    if (cpuBefore !== undefined && cpuAfter !== undefined) {
      const perReplay = (cpuAfter - cpuBefore) / RUNS;
      console.log(`broker CPU per replay: ${fmt(perReplay * 1000)} ms (${fmt(MESSAGES / perReplay)} msg per CPU second; the reader's request time included)`);
    }
    if (process.env.BENCH_LOAD_GENERATOR === '1') {
      const path = `/messaging/messages?topicID=${TOPIC}&index=0`;
      const r = await runLoadGenerator(Number(new URL(broker.url).port), path);
      console.log(`load generator (get, 1 connection, 5 s): ${r.requests} replays, ${fmt((r.bytes / FRAME_BYTES) / r.seconds)} msg/s, ${fmt(r.bytes / 1e6 / r.seconds, 1)} MB/s`);
    }
    await verify(url);
    console.log('verified: one replay decoded, every message in order and intact');
    agent.destroy();
    await stopBroker(broker.child);
  } finally {
    killAll();
    await rm(dir, { recursive: true, force: true });
  }
}

await run();
