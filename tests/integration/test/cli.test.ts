// `msg` as an operator runs it, against real brokers: `msg cluster` starts three
// nodes, and status, topics, publish, tail, import, bench and leave work on it as
// docs/cli.md says; then tokens and TLS on a single https node with an auth file.
// Every process is killed by its PID at the end; every wait is bounded.
import { afterEach, describe, expect, it } from '@jest/globals';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { connect, createServer, type AddressInfo, type Server } from 'node:net';
import { join } from 'node:path';
import { spawn, type ChildProcess } from 'node:child_process';
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import { makeTempDir, makeTestPki, waitFor } from '@msg/test-utils';
import { startBroker } from '../src/broker-process.js';
import { FAST_RAFT_ARGS } from '../src/cluster.js';

const root = join(import.meta.dirname, '..', '..', '..');
const msg = join(root, 'apps', 'broker-server', 'src', 'cli', 'msg.ts');
const tsx = pathToFileURL(createRequire(join(root, 'package.json')).resolve('tsx')).href;
const FIXTURES = join(root, 'fixtures', 'original');

/** A running or finished `msg` process. */
interface MsgProcess {
  readonly child: ChildProcess;
  readonly stdout: () => string;
  readonly stderr: () => string;
  /** Resolves with how it ended, once its output is read to the end. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

const running = new Set<MsgProcess>();
/** PIDs of broker nodes `msg cluster` started (read from their data dirs' locks), killed after each test. */
const nodePids = new Set<number>();

afterEach(async () => {
  for (const proc of running) {
    if (proc.child.exitCode === null && proc.child.signalCode === null) process.kill(proc.child.pid!, 'SIGKILL');
  }
  await Promise.all([...running].map((p) => p.exited));
  running.clear();
  for (const pid of nodePids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone already
    }
  }
  nodePids.clear();
});

/** Starts `msg <args>` from source (tsx) with `env` added; stdin gets `input` (then ends) or stays open. */
function startMsg(args: readonly string[], options: { env?: NodeJS.ProcessEnv; input?: string | Buffer } = {}): MsgProcess {
  const child = spawn(process.execPath, ['--conditions=@msg/source', '--import', tsx, msg, ...args], {
    cwd: root,
    env: { ...process.env, ...options.env },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (text: string) => (stdout += text));
  child.stderr.setEncoding('utf8').on('data', (text: string) => (stderr += text));
  if (options.input !== undefined) child.stdin.end(options.input);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('close', (code, signal) => resolve({ code, signal }));
  });
  const proc = { child, stdout: () => stdout, stderr: () => stderr, exited };
  running.add(proc);
  return proc;
}

/** Runs `msg <args>` to its end (SIGKILL by PID after `timeoutMs`). */
async function runMsg(
  args: readonly string[],
  options: { env?: NodeJS.ProcessEnv; input?: string | Buffer; timeoutMs?: number } = {},
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const proc = startMsg(args, { input: '', ...options });
  const timer = setTimeout(() => process.kill(proc.child.pid!, 'SIGKILL'), options.timeoutMs ?? 60_000);
  try {
    const { code } = await proc.exited;
    return { code, stdout: proc.stdout(), stderr: proc.stderr() };
  } finally {
    clearTimeout(timer);
  }
}

/** Waits until `proc`'s stdout (or stderr) matches `pattern`. */
async function waitForOutput(proc: MsgProcess, pattern: RegExp, stream: 'stdout' | 'stderr' = 'stdout', timeoutMs = 60_000): Promise<RegExpExecArray> {
  try {
    return await waitFor(() => pattern.exec(proc[stream]()) ?? undefined, { timeoutMs, intervalMs: 50, message: `${pattern}` });
  } catch (error) {
    throw new Error(`${(error as Error).message}\nstdout:\n${proc.stdout()}\nstderr:\n${proc.stderr()}`, { cause: error });
  }
}

/** Waits (bounded) for `proc` to exit. */
async function exitOf(proc: MsgProcess, timeoutMs = 30_000): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`no exit within ${timeoutMs} ms\nstdout:\n${proc.stdout()}\nstderr:\n${proc.stderr()}`)), timeoutMs);
  });
  try {
    return await Promise.race([proc.exited, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** `count` ports that were free a moment ago on 127.0.0.1. */
async function freePorts(count: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from({ length: count }, () => new Promise<Server>((resolve) => {
      const server = createServer();
      server.listen(0, '127.0.0.1', () => resolve(server));
    })),
  );
  const ports = servers.map((s) => (s.address() as AddressInfo).port);
  await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))));
  return ports;
}

/** Remembers the PID in each node's data dir lock, so that the test kills it should `msg cluster` not. */
function trackNodes(dir: string, count: number): void {
  for (let i = 1; i <= count; i++) {
    const lock = join(dir, `n${i}`, '.lock');
    if (!existsSync(lock)) continue;
    const pid = Number(/\d+/.exec(readFileSync(lock, 'utf8'))?.[0]);
    if (Number.isSafeInteger(pid) && pid > 0) nodePids.add(pid);
  }
}

/** Whether nothing accepts connections on `port` any more. */
async function refused(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('error', () => resolve(true));
  });
}

interface StatusJSON {
  leader: string | null;
  members: { url: string; role: string | null; ready: boolean | null; reachable: boolean; commitIndex: number | null; replication: unknown }[];
}

describe('msg against a local cluster', () => {
  it('runs a three-node cluster, shows it, publishes, tails, imports, benches and removes a node, and Ctrl-C stops it all', async () => {
    const dir = await makeTempDir('msg-it-cli-');
    const ports = await freePorts(3);
    const urls = ports.map((p) => `http://127.0.0.1:${p}`);
    const clusterArgs = ['cluster', '--nodes', '3', '--dir', dir, '--ports', ports.join(','), '--', ...FAST_RAFT_ARGS, '--sync', 'never'];
    const cluster = startMsg(clusterArgs);
    await waitForOutput(cluster, /3-node cluster running \(Ctrl-C stops it\):\n(.*\n){3}/);
    trackNodes(dir, 3);
    for (const [i, url] of urls.entries()) expect(cluster.stdout()).toContain(`n${i + 1} ${url}  data ${join(dir, `n${i + 1}`)}`);
    expect(cluster.stderr()).toContain('waiting for catch-up: all 3 nodes ready');

    // status: from any one member, every member with its role, and readiness.
    const status = await runMsg(['status', '--url', urls[1]!]);
    expect(status).toMatchObject({ code: 0, stderr: '' });
    expect(status.stdout).toMatch(/^leader http:\/\/127\.0\.0\.1:\d+, term \d+, 3 members\n/);
    expect(status.stdout).toMatch(/MEMBER +KIND +ROLE +TERM +COMMIT +APPLIED +LAG +LEADER CONTACT +READY/);
    for (const url of urls) expect(status.stdout).toMatch(new RegExp(`${url} +voter +(leader|follower) .* yes\\n`));
    const json = JSON.parse((await runMsg(['status', '--json', '--url', urls[2]!])).stdout) as StatusJSON;
    expect(json.members.map((m) => m.url).sort()).toEqual([...urls].sort());
    expect(json.members.filter((m) => m.role === 'leader').map((m) => m.url)).toEqual([json.leader]);
    expect(json.members.every((m) => m.reachable && m.ready === true)).toBe(true);
    const waited = await runMsg(['status', '--wait', '--timeout-ms', '20000', '--url', urls[0]!]);
    expect(waited.code).toBe(0);
    expect(waited.stderr).toContain('waiting for catch-up: all 3 members ready');

    // publish: one message per line, through a follower's URL; indexes on stdout.
    const published = await runMsg(['publish', '5', '--url', urls[2]!], { input: 'alpha\nbeta\r\n\ngamma\n' });
    expect(published).toMatchObject({ code: 0, stderr: '' });
    const indexes = published.stdout.trim().split('\n').map(BigInt);
    expect(indexes).toHaveLength(3);
    expect(indexes[1]).toBe(indexes[0]! + 1n);
    const raw = await runMsg(['publish', '6', '--raw', '--type', '9', '--url', urls[0]!], { input: Buffer.from([0, 1, 2, 0xff, 0x0a]) });
    expect(raw.code).toBe(0);

    // tail: text, from an index, json, hex.
    const tail = await runMsg(['tail', '5', '--url', urls[1]!]);
    expect(tail).toEqual({ code: 0, stderr: '', stdout: `${indexes[0]} 1 alpha\n${indexes[1]} 1 beta\n${indexes[2]} 1 gamma\n` });
    const from = await runMsg(['tail', '5', '--from', String(indexes[1]), '--format', 'json', '--url', urls[0]!]);
    expect(from.stdout.trim().split('\n').map((l) => (JSON.parse(l) as { text: string }).text)).toEqual(['beta', 'gamma']);
    const hex = await runMsg(['tail', '6', '--format', 'hex', '--url', urls[0]!]);
    expect(hex.stdout).toMatch(/^index \d+ type 9 5 bytes\n00000000  00 01 02 ff 0a +\|\.\.\.\.\.\|\n$/);

    // tail --follow gets new messages as they are committed, and Ctrl-C ends it with 0.
    const follow = startMsg(['tail', '5', '--follow', '--from', String(indexes[2]), '--url', urls[1]!]);
    await waitForOutput(follow, / 1 gamma\n/);
    expect((await runMsg(['publish', '5', '--url', urls[0]!], { input: 'delta\n' })).code).toBe(0);
    await waitForOutput(follow, / 1 delta\n/);
    process.kill(follow.child.pid!, 'SIGINT');
    expect(await exitOf(follow)).toEqual({ code: 0, signal: null });

    // import: the original's snapshot, through the leader; a second import is refused.
    const imported = await runMsg(['import', join(FIXTURES, 'snapshot.bin'), '--url', urls[1]!]);
    expect(imported.code).toBe(0);
    expect(imported.stdout).toMatch(/^topic 20: 10 messages, original 2\.\.29 -> \d+\.\.\d+\ntopic 21: 10 messages.*\ntopic 22: 10 messages/);
    expect(imported.stderr).toContain('import: 30 messages in 3 topics');
    const again = await runMsg(['import', join(FIXTURES, 'broker-dir'), '--url', urls[1]!]);
    expect(again.code).toBe(65);
    expect(again.stderr).toContain('topics 20, 21, 22 already have messages');
    const topic21 = await runMsg(['tail', '21', '--format', 'json', '--url', urls[2]!]);
    expect(topic21.stdout.trim().split('\n')).toHaveLength(10);

    // topics: every topic with its indexes and count; a reader's lag.
    const reader = await fetch(`${json.leader}/messaging/heartbeat?topicID=5&index=${indexes[0]}&readerID=ops-check`, { method: 'POST' });
    expect(reader.status).toBe(200);
    const topics = await runMsg(['topics', '--url', urls[2]!]);
    expect(topics.code).toBe(0);
    expect(topics.stdout).toMatch(new RegExp(`^topics \\(read from ${json.leader}\\):\n`));
    const last = BigInt(new RegExp(` 5 +${indexes[0]} +(\\d+) +4 +`).exec(topics.stdout)?.[1] ?? '0');
    expect(last).toBeGreaterThan(indexes[2]!);
    expect(topics.stdout).toMatch(/ 20 +\d+ +\d+ +10 /);
    expect(topics.stdout).toMatch(new RegExp(` 5 +ops-check +${indexes[0]} +${last - indexes[0]!}\n`));
    const topicsJSON = JSON.parse((await runMsg(['topics', '--json', '--url', urls[0]!])).stdout) as { topics: { id: string; messages: number | null }[] };
    expect(topicsJSON.topics.map((t) => t.id)).toEqual(['5', '6', '20', '21', '22']);

    // bench: publish and consume, msg/s and latency percentiles.
    const bench = await runMsg(['bench', '--messages', '300', '--concurrency', '8', '--size', '32', '--json', '--url', urls[0]!]);
    expect(bench.code).toBe(0);
    const result = JSON.parse(bench.stdout) as { messages: number; publish: { perSecond: number; p50Ms: number; p99Ms: number }; consume: { perSecond: number } };
    expect(result.messages).toBe(300);
    expect(result.publish.perSecond).toBeGreaterThan(0);
    expect(result.publish.p50Ms).toBeLessThanOrEqual(result.publish.p99Ms);
    expect(result.consume.perSecond).toBeGreaterThan(0);
    expect(bench.stderr).toContain('bench publish: 300 messages in');

    // leave: n3 is removed; the cluster says so, and status shows two members.
    const token = readFileSync(join(dir, 'n1', 'join-token'), 'utf8').trim();
    const leave = await runMsg(['leave', '--member', urls[2]!, '--url', urls[0]!], { env: { MSG_JOIN_TOKEN: token } });
    expect(leave.code).toBe(0);
    expect(JSON.parse(leave.stdout)).toMatchObject({ removed: urls[2] });
    await waitForOutput(cluster, new RegExp(`n3 \\(${urls[2]}\\) was removed from the cluster \\(leave\\) and stopped`), 'stderr');
    const after = JSON.parse((await runMsg(['status', '--json', '--url', urls[0]!])).stdout) as StatusJSON;
    expect(after.members.map((m) => m.url).sort()).toEqual([urls[0], urls[1]].sort());

    // Ctrl-C: forwarded to each node by its PID; all stop, and the cluster exits 0.
    process.kill(cluster.child.pid!, 'SIGINT');
    expect(await exitOf(cluster)).toEqual({ code: 0, signal: null });
    for (const port of ports) expect(await refused(port)).toBe(true);

    // A restart resumes n1 and n2, and reports the removed n3 instead of listing it.
    const restarted = startMsg(clusterArgs);
    await waitForOutput(restarted, /cluster with 2 of 3 nodes \(n3 removed\) running/);
    trackNodes(dir, 3);
    expect(restarted.stderr()).toContain(`n3 was removed from the cluster (leave) and cannot serve from ${join(dir, 'n3')} again`);
    expect((await runMsg(['tail', '5', '--url', urls[1]!])).stdout).toContain(' 1 delta\n');
    process.kill(restarted.child.pid!, 'SIGTERM');
    expect(await exitOf(restarted)).toEqual({ code: 0, signal: null });
  }, 240_000);

  it('tail starts at the first retained message of a topic whose oldest segments were reclaimed; an explicit --from below it exits 65', async () => {
    const broker = await startBroker({ dataDir: await makeTempDir('msg-it-cli-reclaim-'), args: [...FAST_RAFT_ARGS, '--segment-bytes', '1024', '--sync', 'never'] });
    const lines = Array.from({ length: 60 }, (_v, i) => `line-${String(i).padStart(2, '0')}-${'x'.repeat(40)}`);
    // Six publishes of ten lines: six batch entries, so the 1 KiB segments roll between them.
    const indexes: bigint[] = [];
    for (let at = 0; at < lines.length; at += 10) {
      const published = await runMsg(['publish', '4', '--url', broker.url], { input: `${lines.slice(at, at + 10).join('\n')}\n` });
      expect(published.code).toBe(0);
      indexes.push(...published.stdout.trim().split('\n').map(BigInt));
    }
    expect(indexes).toHaveLength(60);
    // A reader past most of it lets the broker reclaim the segments it passed.
    const heartbeat = await fetch(`${broker.url}/messaging/heartbeat?topicID=4&index=${indexes[50]}&readerID=done`, { method: 'POST' });
    expect(heartbeat.status).toBe(200);
    const first = await waitFor(
      async () => {
        const json = JSON.parse((await runMsg(['topics', '--json', '--url', broker.url])).stdout) as { topics: { id: string; firstIndex: string }[] };
        const firstIndex = BigInt(json.topics.find((t) => t.id === '4')?.firstIndex ?? '0');
        return firstIndex > indexes[0]! ? firstIndex : undefined;
      },
      { timeoutMs: 20_000, intervalMs: 200, message: 'segments reclaimed' },
    );
    const tail = await runMsg(['tail', '4', '--url', broker.url]);
    expect(tail.code).toBe(0);
    const shown = tail.stdout.trim().split('\n');
    expect(shown[0]!.split(' ')[0]).toBe(String(first));
    expect(shown.at(-1)).toBe(`${indexes[59]} 1 ${lines[59]}`);
    const below = await runMsg(['tail', '4', '--from', String(indexes[0]), '--url', broker.url]);
    expect(below).toMatchObject({ code: 65, stdout: '' });
    expect(below.stderr).toContain(`msg tail: --from ${indexes[0]} is below topic 4's first retained index ${first} (SEGMENT_RECLAIMED)`);
  });

  it('exits 69 when no broker answers, and 64 for usage errors, with the message on stderr', async () => {
    const [port] = await freePorts(1);
    const down = await runMsg(['topics', '--url', `http://127.0.0.1:${port}`]);
    expect(down.code).toBe(69);
    expect(down.stderr).toMatch(/^msg topics: no broker answered: http:\/\/127\.0\.0\.1:\d+: connect ECONNREFUSED/);
    const usage = await runMsg(['tail', '5', '--from', 'soon']);
    expect(usage).toMatchObject({ code: 64, stdout: '' });
    expect(usage.stderr).toBe('msg tail: --from: expected an integer in 0..18446744073709551615, got "soon"\n');
    // A node that cannot start (its port is taken) stops the cluster: 69, naming the node's log.
    const dir = await makeTempDir('msg-it-cli-busy-');
    const busy = createServer();
    await new Promise<void>((resolve) => busy.listen(port, '127.0.0.1', () => resolve()));
    try {
      const cluster = await runMsg(['cluster', '--nodes', '1', '--dir', dir, '--ports', String(port)]);
      expect(cluster.code).toBe(69);
      expect(cluster.stderr).toContain(`msg cluster: n1 exited (69) before listening; see ${join(dir, 'n1.log')}`);
      expect(readFileSync(join(dir, 'n1.log'), 'utf8')).toContain('EADDRINUSE');
    } finally {
      await new Promise((resolve) => busy.close(resolve));
    }
    const version = await runMsg(['--version']);
    expect(version.stdout).toMatch(/^msg \d+\.\d+\.\d+\n$/);
  });
});

describe('msg with credentials', () => {
  const sha256 = (token: string): string => createHash('sha256').update(token).digest('hex');

  it('uses --token (or MSG_TOKEN) and --ca against an https broker with an auth file; a refused token exits 77', async () => {
    const dir = await makeTempDir('msg-it-cli-auth-');
    const pki = makeTestPki(dir, 'cli');
    const server = pki.issue('server');
    const admin = randomBytes(32).toString('base64url');
    const reader = randomBytes(32).toString('base64url');
    const authFile = join(dir, 'auth.json');
    await writeFile(
      authFile,
      JSON.stringify({
        identities: [
          { name: 'ops', tokenSha256: sha256(admin), permissions: { publish: ['*'], subscribe: ['*'], admin: true } },
          { name: 'reader', tokenSha256: sha256(reader), permissions: { publish: [], subscribe: ['*'], admin: false } },
        ],
      }),
      { mode: 0o600 },
    );
    const broker = await startBroker({ dataDir: join(dir, 'data'), args: [...FAST_RAFT_ARGS, '--tls-cert', server.cert, '--tls-key', server.key, '--auth-file', authFile] });
    expect(broker.url).toMatch(/^https:/);
    const conn = ['--url', broker.url, '--ca', pki.ca];

    const published = await runMsg(['publish', '3', ...conn, '--token', admin], { input: 'secret one\nsecret two\n' });
    expect(published).toMatchObject({ code: 0, stderr: '' });
    const tail = await runMsg(['tail', '3', ...conn], { env: { MSG_TOKEN: reader } });
    expect(tail.stdout).toMatch(/^\d+ 1 secret one\n\d+ 1 secret two\n$/);
    const status = await runMsg(['status', ...conn], { env: { MSG_TOKEN: admin } });
    expect(status.code).toBe(0);
    expect(status.stdout).toMatch(new RegExp(`${broker.url} +voter +leader `));

    const noToken = await runMsg(['status', ...conn]);
    expect(noToken.code).toBe(77);
    expect(noToken.stderr).toContain('answered 401');
    const notAdmin = await runMsg(['topics', ...conn, '--token', reader]);
    expect(notAdmin.code).toBe(77);
    const refusedPublish = await runMsg(['publish', '3', ...conn, '--token', reader], { input: 'nope\n' });
    expect(refusedPublish.code).toBe(77);
    expect(refusedPublish.stderr).toContain('FORBIDDEN');
    // The token is never echoed.
    for (const output of [noToken, notAdmin, refusedPublish]) expect(output.stderr).not.toContain(reader);

    const noCA = await runMsg(['tail', '3', '--url', broker.url, '--token', admin]);
    expect(noCA.code).not.toBe(0);
    const badCA = await runMsg(['tail', '3', '--url', broker.url, '--ca', join(dir, 'missing.pem')]);
    expect(badCA.code).toBe(66);
  }, 120_000);
});
