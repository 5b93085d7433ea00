// Real broker processes for the bench: `src/main.ts` under tsx, fsync on
// (`--sync always`), loopback, a temp data folder each, default snapshot and
// checkpoint thresholds. Their log lines (JSON on stderr) are read as they come:
// the bench counts snapshot events and keeps warnings and errors for its report.
import { spawn, type ChildProcess } from 'node:child_process';
import { Agent, request } from 'node:http';
import { appDir, brokerMain, kill, removeDir, track, tempDir, tsxLoader } from './processes.js';

/** One log line of a broker, as the bench keeps it. */
export interface LogEvent {
  /** The line's `time` (ms since the epoch). */
  atMs: number;
  level: string;
  msg: string;
  /** The whole line. */
  line: string;
}

/** A broker process. */
export interface Broker {
  /** `leader`, `follower1`, ... (set once the cluster formed; `node` before). */
  name: string;
  url: string;
  port: number;
  pid: number;
  child: ChildProcess;
  dir: string;
  /** Snapshot log events (`raft: snapshot taken|sent|installed`, `snapshot started`). */
  snapshots: LogEvent[];
  /** Lines logged at warn or error. */
  problems: LogEvent[];
}

/** Every warn/error line of every broker of this run, for the report at the end, with the case running then. */
export const brokerProblems: { broker: Broker; during: string; event: LogEvent }[] = [];

/** What the bench is doing now (set by its progress lines), recorded with each broker warning. */
export const activity = { now: 'starting' };

/**
 * The join token a member keeps in its data folder (`main.ts --print-join-token`),
 * or `undefined` when this broker has no such option (a tree from before join
 * tokens): then nodes join without one.
 */
export async function joinToken(member: Broker): Promise<string | undefined> {
  const child = track(
    spawn(process.execPath, ['--conditions=@msg/source', '--import', tsxLoader, brokerMain, '--print-join-token', '--data-dir', member.dir], { cwd: appDir, stdio: ['ignore', 'pipe', 'ignore'] }),
  );
  let out = '';
  child.stdout!.setEncoding('utf8').on('data', (text: string) => (out += text));
  const code = await new Promise<number | null>((resolve) => {
    const timer = setTimeout(() => void kill(child), 30_000);
    child.once('close', (exitCode) => {
      clearTimeout(timer);
      resolve(exitCode);
    });
  });
  const token = out.trim();
  return code === 0 && token !== '' && !token.includes('\n') ? token : undefined;
}

/**
 * Starts a broker (joining `join.url` with `join.token` when given; `extraArgs`
 * go on its command line) and resolves once it logs `listening`.
 */
export async function startBroker(join?: { url: string; token: string | undefined }, extraArgs: readonly string[] = []): Promise<Broker> {
  const dir = await tempDir();
  const args = ['--conditions=@msg/source', '--import', tsxLoader, brokerMain, '--data-dir', dir, '--listen', '127.0.0.1:0', '--sync', 'always', '--log-level', 'info', ...extraArgs];
  if (join !== undefined) args.push('--join', join.url);
  if (join?.token !== undefined) args.push('--join-token', join.token);
  const child = track(spawn(process.execPath, args, { cwd: appDir, stdio: ['ignore', 'ignore', 'pipe'] }));
  const snapshots: LogEvent[] = [];
  const problems: LogEvent[] = [];
  const broker: Broker = { name: 'node', url: '', port: 0, pid: child.pid!, child, dir, snapshots, problems };
  const url = await new Promise<string>((resolve, reject) => {
    let buffered = '';
    const timer = setTimeout(() => reject(new Error(`a broker (${dir}) did not start within 60 s`)), 60_000);
    // Keep draining stderr for the broker's whole life: a full pipe would block it.
    child.stderr!.setEncoding('utf8').on('data', (text: string) => {
      buffered += text;
      for (let at = buffered.indexOf('\n'); at >= 0; at = buffered.indexOf('\n')) {
        const line = buffered.slice(0, at);
        buffered = buffered.slice(at + 1);
        let entry: { time?: string; level?: string; msg?: string; url?: string; blockedMs?: number; writeMs?: number; fsyncMs?: number };
        try {
          entry = JSON.parse(line) as typeof entry;
        } catch {
          problems.push({ atMs: Date.now(), level: 'stderr', msg: line.slice(0, 200), line });
          continue;
        }
        const event: LogEvent = { atMs: entry.time ? Date.parse(entry.time) : Date.now(), level: entry.level ?? '?', msg: entry.msg ?? '', line };
        if (/snapshot (taken|sent|installed|started)|log compacted behind|needs a snapshot/.test(event.msg)) snapshots.push(event);
        // The stall suspects, with their numbers, for the latency section's list of the worst stalls.
        if (event.msg === 'event loop blocked') snapshots.push({ ...event, msg: `event loop blocked ${entry.blockedMs} ms` });
        if (event.msg === 'raft: slow log write') snapshots.push({ ...event, msg: `slow log write (write ${entry.writeMs} ms, fsync ${entry.fsyncMs} ms)` });
        if (event.level === 'warn' || event.level === 'error' || event.level === 'fatal') {
          problems.push(event);
          brokerProblems.push({ broker, during: activity.now, event });
        }
        if (event.msg === 'listening' && entry.url) {
          clearTimeout(timer);
          resolve(entry.url);
        }
      }
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`a broker exited (${code ?? signal}) before listening: ${problems.at(-1)?.line.slice(0, 300) ?? 'no error logged'}`));
    });
  });
  broker.url = url;
  broker.port = Number(new URL(url).port);
  return broker;
}

/** Kills a broker by its PID and removes its data folder. */
export async function stopBroker(broker: Broker): Promise<void> {
  await kill(broker.child);
  await removeDir(broker.dir);
}

const agent = new Agent({ keepAlive: true, maxSockets: 8 });

/** Closes the bench's own keep-alive connections. */
export function closeAgent(): void {
  agent.destroy();
}

/** One HTTP request from the bench process; resolves with the status and the body. */
export function httpRequest(url: string, method: 'GET' | 'POST', body?: Uint8Array): Promise<{ status: number; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method, agent, headers: body ? { 'content-length': body.byteLength } : {} }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.setTimeout(60_000, () => req.destroy(new Error(`${method} ${url}: no answer in 60 s`)));
    req.on('error', reject);
    req.end(body);
  });
}

/** The parts of `GET /status` the bench reads. */
export interface BrokerStatusView {
  isLeader: boolean;
  commitIndex: number;
  appliedIndex: number;
  counters: { checkpoints: number; messagesApplied: number };
  /** The broker's own fsyncs (checkpoints, snapshots, topic creation), not raft's log fsyncs. */
  fsync: { count: number; totalMs: number; maxMs: number };
  config: { voters: string[]; learners: string[] };
  topics: { id: string; lastIndex: string }[];
}

/** `GET /status` of a broker. */
export async function status(broker: Broker): Promise<BrokerStatusView> {
  const res = await httpRequest(`${broker.url}/status`, 'GET');
  if (res.status !== 200) throw new Error(`${broker.name} /status answered ${res.status}`);
  return JSON.parse(res.body.toString('utf8')) as BrokerStatusView;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * A cluster of `size` brokers: the first bootstraps, the others join it.
 * Resolves once every node is a voter and every node has applied what the
 * leader has committed (bounded: 60 s). The leader is first in the list.
 */
export async function startCluster(size: number): Promise<Broker[]> {
  const first = await startBroker();
  const nodes = [first];
  const token = size > 1 ? await joinToken(first) : undefined;
  for (let i = 1; i < size; i++) nodes.push(await startBroker({ url: first.url, token }));
  const deadline = Date.now() + 60_000;
  for (;;) {
    const views = await Promise.all(nodes.map(status));
    const leaderAt = views.findIndex((v) => v.isLeader);
    const leader = views[leaderAt];
    if (leader && leader.config.voters.length === size && leader.config.learners.length === 0 && views.every((v) => v.appliedIndex >= leader.commitIndex)) {
      const [lead] = nodes.splice(leaderAt, 1);
      const ordered = [lead!, ...nodes];
      ordered.forEach((n, i) => (n.name = size === 1 ? 'broker' : i === 0 ? 'leader' : `follower${i}`));
      return ordered;
    }
    if (Date.now() > deadline) throw new Error(`cluster of ${size} not formed in 60 s: ${JSON.stringify(views.map((v) => ({ leader: v.isLeader, voters: v.config.voters.length, applied: v.appliedIndex })))}`);
    await sleep(100);
  }
}

/** Waits until every node has applied at least what `leader` has committed now (bounded). */
export async function settle(nodes: readonly Broker[], limitMs = 30_000): Promise<void> {
  const target = (await status(nodes[0]!)).commitIndex;
  const deadline = Date.now() + limitMs;
  for (;;) {
    const views = await Promise.all(nodes.map(status));
    if (views.every((v) => v.appliedIndex >= target)) return;
    if (Date.now() > deadline) throw new Error(`nodes did not apply index ${target} within ${limitMs} ms`);
    await sleep(50);
  }
}
