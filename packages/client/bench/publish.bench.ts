// Publish throughput and latency of @msg/client against raw HTTP, in one run, against real
// brokers (apps/broker-server/dist/main.js, fsync on, temp data dirs, loopback):
// - raw HTTP: one POST /messaging/messages per message over keep-alive node:http, N concurrent loops;
// - the client: N concurrent loops of `await client.publish(message)` with the default options
//   (and, for comparison, with the old linger timer `batching: { lingerMs: 1 }`);
// for N = 1, 16, 64, on one node and on a three-node cluster. Each figure comes with the brokers' CPU
// per message (utime+stime from /proc/<pid>/stat over the measured window, all nodes together) and
// the bench process's own (the publisher's side). Ratios are the client's against raw HTTP's of the
// same run. The broker processes are killed by PID at the end; their data dirs are removed.
//
// Run: node scripts/pnpm.mjs --filter @msg/client bench (build the broker first:
// node scripts/pnpm.mjs exec turbo run build). Environment knobs:
//   BENCH_NODES=1,3            cluster sizes to run
//   BENCH_CONCURRENCY=1,16,64  publishers
//   BENCH_WARMUP_MS=1000  BENCH_DURATION_MS=3000  BENCH_REPS=3 (cases take turns; median of the reps per cell)
//   BENCH_CASES=raw,client,linger (also: inflight2 = the client with batching.maxInFlight 2)
//   BENCH_BROKER_ARGS="--cpu-prof --cpu-prof-dir=/tmp/prof" (extra node flags of the brokers)
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { Agent, request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client, type ClientOptions } from '../src/index.js';

const root = join(import.meta.dirname, '..', '..', '..');
const main = join(root, 'apps', 'broker-server', 'dist', 'main.js');

const list = (name: string, fallback: string): string[] =>
  (process.env[name] ?? fallback)
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
const NODES = list('BENCH_NODES', '1,3').map(Number);
const CONCURRENCY = list('BENCH_CONCURRENCY', '1,16,64').map(Number);
const CASES = new Set(list('BENCH_CASES', 'raw,client,linger'));
const WARMUP_MS = Number(process.env.BENCH_WARMUP_MS ?? 1000);
const DURATION_MS = Number(process.env.BENCH_DURATION_MS ?? 3000);
const REPS = Number(process.env.BENCH_REPS ?? 3);
const BROKER_NODE_ARGS = (process.env.BENCH_BROKER_ARGS ?? '').split(' ').filter(Boolean);
const BODY_BYTES = 100;
const CLK_TCK = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
})();

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
  /** Its data folder (where a bootstrapping broker writes the cluster's join token). */
  dir: string;
}

/** Starts a broker; one that joins (`join_`) gets the cluster's join token in MSG_JOIN_TOKEN. */
async function startBroker(join_: string[] = [], joinToken?: string): Promise<Broker> {
  const dir = await mkdtemp(join(tmpdir(), 'msg-client-bench-'));
  dirs.push(dir);
  const args = [...BROKER_NODE_ARGS, main, '--data-dir', dir, '--listen', '127.0.0.1:0', '--sync', 'always', '--log-level', 'info'];
  for (const url of join_) args.push('--join', url);
  const env = joinToken === undefined ? process.env : { ...process.env, MSG_JOIN_TOKEN: joinToken };
  const child = spawn(process.execPath, args, { cwd: dir, env, stdio: ['ignore', 'ignore', 'pipe'] });
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
  return { url, port: Number(new URL(url).port), child, dir };
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  // SIGTERM so that a broker run with --cpu-prof writes its profile; SIGKILL if it lingers.
  process.kill(child.pid!, BROKER_NODE_ARGS.length > 0 ? 'SIGTERM' : 'SIGKILL');
  const timer = setTimeout(() => child.exitCode === null && process.kill(child.pid!, 'SIGKILL'), 10_000);
  await exited;
  clearTimeout(timer);
  children.delete(child);
}

/** CPU seconds (user + system) a process has used so far, from /proc/<pid>/stat. */
function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command name (which may contain spaces) start at field 3; utime and stime are 14 and 15.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / CLK_TCK;
}

interface Measured {
  count: number;
  seconds: number;
  latencies: number[];
  serverCpu: number;
  clientCpu: number;
  errors: number;
}

/**
 * Runs `concurrency` loops of `publish()` for the warm-up and then the measured window; counts,
 * latencies (ms) and CPU are taken over the window only.
 */
async function load(concurrency: number, pids: number[], publish: () => Promise<unknown>): Promise<Measured> {
  let phase: 'warmup' | 'measure' | 'stop' = 'warmup';
  const latencies: number[] = [];
  let count = 0;
  let errors = 0;
  const loops = Array.from({ length: concurrency }, async () => {
    while (phase !== 'stop') {
      const t = performance.now();
      try {
        await publish();
      } catch {
        errors++;
        continue;
      }
      if (phase === 'measure') {
        latencies.push(performance.now() - t);
        count++;
      }
    }
  });
  await new Promise((resolve) => setTimeout(resolve, WARMUP_MS));
  const cpu0 = pids.reduce((sum, pid) => sum + cpuSeconds(pid), 0);
  const own0 = process.cpuUsage();
  const start = performance.now();
  phase = 'measure';
  await new Promise((resolve) => setTimeout(resolve, DURATION_MS));
  const own = process.cpuUsage(own0);
  const cpu1 = pids.reduce((sum, pid) => sum + cpuSeconds(pid), 0);
  const seconds = (performance.now() - start) / 1000;
  const measured = { count, latencies: latencies.slice(), seconds };
  phase = 'stop';
  await Promise.all(loops);
  return { ...measured, serverCpu: cpu1 - cpu0, clientCpu: (own.user + own.system) / 1e6, errors };
}

const body = new Uint8Array(BODY_BYTES).fill(97);

async function rawHTTP(broker: Broker, concurrency: number, pids: number[]): Promise<Measured> {
  const agent = new Agent({ keepAlive: true, maxSockets: concurrency });
  const path = '/messaging/messages?type=1&topicID=1';
  const post = (): Promise<void> =>
    new Promise((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port: broker.port, path, method: 'POST', agent, headers: { 'content-length': BODY_BYTES, 'content-type': 'application/octet-stream' } }, (res) => {
        res.resume();
        res.on('end', () => (res.statusCode === 200 ? resolve() : reject(new Error(`status ${res.statusCode}`))));
      });
      req.on('error', reject);
      req.end(body);
    });
  try {
    return await load(concurrency, pids, post);
  } finally {
    agent.destroy();
  }
}

async function viaClient(broker: Broker, concurrency: number, pids: number[], options: ClientOptions): Promise<Measured> {
  const client = new Client({ urls: [broker.url], pingIntervalMs: 0, ...options });
  await client.open();
  const message = { type: 1, topicID: 2n, data: body };
  try {
    return await load(concurrency, pids, () => client.publish(message));
  } finally {
    await client.close();
  }
}

interface Cell {
  rate: number;
  p50: number;
  p99: number;
  serverUs: number;
  clientUs: number;
  errors: number;
}

function cell(m: Measured): Cell {
  const sorted = m.latencies.sort((a, b) => a - b);
  const at = (q: number): number => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? NaN;
  return {
    rate: m.count / m.seconds,
    p50: at(0.5),
    p99: at(0.99),
    serverUs: m.count > 0 ? (m.serverCpu / m.count) * 1e6 : NaN,
    clientUs: m.count > 0 ? (m.clientCpu / m.count) * 1e6 : NaN,
    errors: m.errors,
  };
}

/** The median cell of several runs, by throughput for concurrent cases and by p50 for one publisher. */
function median(runs: Measured[], byLatency: boolean): Cell {
  const cells = runs.map(cell);
  cells.sort((a, b) => (byLatency ? a.p50 - b.p50 : a.rate - b.rate));
  return cells[Math.floor((cells.length - 1) / 2)]!;
}

const fmt = (n: number, digits = 0): string => (Number.isFinite(n) ? n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits }) : '-');

interface Row {
  setup: string;
  conc: number;
  who: string;
  cell: Cell;
  raw: Cell | undefined;
}
const rows: Row[] = [];

function print(): void {
  const header = ['setup', 'pubs', 'publisher', 'msg/s', 'p50 ms', 'p99 ms', 'srv µs/msg', 'pub µs/msg', 'x raw msg/s', 'x raw p50', 'errors'];
  const table = rows.map((r) => [
    r.setup,
    String(r.conc),
    r.who,
    fmt(r.cell.rate),
    fmt(r.cell.p50, 2),
    fmt(r.cell.p99, 2),
    fmt(r.cell.serverUs),
    fmt(r.cell.clientUs),
    r.raw ? fmt(r.cell.rate / r.raw.rate, 2) : '',
    r.raw ? fmt(r.cell.p50 / r.raw.p50, 2) : '',
    r.cell.errors ? String(r.cell.errors) : '',
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...table.map((t) => t[i]!.length)));
  const line = (cells: string[]): string => cells.map((c, i) => (i < 3 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  console.log(
    `\n@msg/client publish bench (real brokers from apps/broker-server/dist, fsync on, loopback, ${BODY_BYTES}-byte messages, ` +
      `${DURATION_MS / 1000} s per cell after ${WARMUP_MS / 1000} s warm-up, median of ${REPS})`,
  );
  console.log('raw = one POST per message over keep-alive node:http; client = Client.publish, default options; linger = batching.lingerMs 1 (the old default)');
  console.log('srv µs/msg = broker CPU (utime+stime, all nodes) per message over the window; pub µs/msg = the publishing process\'s CPU per message');
  console.log(line(header));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const t of table) console.log(line(t));
}

async function runSetup(nodes: number): Promise<void> {
  const first = await startBroker();
  const brokers = [first];
  // Peers authenticate with the cluster secret: the others join with the token the first one wrote.
  const token = nodes > 1 ? readFileSync(join(first.dir, 'join-token'), 'utf8').trim() : undefined;
  for (let i = 1; i < nodes; i++) brokers.push(await startBroker([first.url], token));
  if (nodes > 1) await waitForMembers(first, nodes);
  const pids = brokers.map((b) => b.child.pid!);
  const setup = `${nodes} node${nodes > 1 ? 's' : ''}`;
  try {
    for (const conc of CONCURRENCY) {
      // The cases of one cell take turns, rep after rep, so that a change of the machine's load
      // during the run falls on all of them alike.
      const cases: [string, () => Promise<Measured>][] = [];
      if (CASES.has('raw')) cases.push(['raw HTTP', () => rawHTTP(first, conc, pids)]);
      if (CASES.has('client')) cases.push(['client', () => viaClient(first, conc, pids, {})]);
      if (CASES.has('linger')) cases.push(['client, lingerMs 1', () => viaClient(first, conc, pids, { batching: { lingerMs: 1 } })]);
      if (CASES.has('inflight2')) cases.push(['client, maxInFlight 2', () => viaClient(first, conc, pids, { batching: { maxInFlight: 2 } })]);
      const runs = new Map<string, Measured[]>(cases.map(([who]) => [who, []]));
      for (let rep = 0; rep < REPS; rep++) for (const [who, run] of cases) runs.get(who)!.push(await run());
      const raw = runs.has('raw HTTP') ? median(runs.get('raw HTTP')!, conc === 1) : undefined;
      for (const [who] of cases) {
        rows.push({ setup, conc, who, cell: who === 'raw HTTP' ? raw! : median(runs.get(who)!, conc === 1), raw: who === 'raw HTTP' ? undefined : raw });
      }
    }
  } finally {
    for (const b of brokers.reverse()) await stop(b.child);
  }
}

/** Waits until the leader's /status lists `n` voters (the joins have been committed). */
async function waitForMembers(leader: Broker, n: number): Promise<void> {
  const until = Date.now() + 30_000;
  while (Date.now() < until) {
    try {
      const res = await fetch(`${leader.url}/status`);
      const text = await res.text();
      const status = JSON.parse(text) as Record<string, unknown>;
      const raft = (status.raft ?? status) as { members?: unknown[]; voters?: unknown[]; config?: { voters?: unknown[] } };
      const voters = raft.voters ?? raft.config?.voters ?? raft.members;
      if (Array.isArray(voters) && voters.length >= n) return;
    } catch {
      // not ready yet
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  console.error(`warning: could not confirm ${n} members in /status; measuring anyway`);
}

if (!existsSync(main)) {
  console.error(`${main} is missing: run \`node scripts/pnpm.mjs exec turbo run build\` in ${root} first.`);
  process.exit(1);
}
try {
  for (const nodes of NODES) await runSetup(nodes);
  print();
} finally {
  killAll();
  await Promise.all(dirs.map((dir) => rm(dir, { recursive: true, force: true })));
}
