import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join, relative, resolve } from 'node:path';
import { ExitCodes } from '../exit-codes.js';
import { readJoinTokenFile } from '../join-token-file.js';
import { booleanFlag, integerFlag, parseCommandArgs, stringFlag } from './args.js';
import { adminReader } from './connect.js';
import { CliExitCodes, usageError, type CliExitCode } from './errors.js';
import type { CommandIO } from './io.js';
import { createProgress } from './progress.js';

/** Where and how `msg cluster` runs its nodes. */
export interface ClusterPlan {
  /** Folder of the nodes' data dirs (`n1`, `n2`, ...) and logs (`n1.log`, ...). */
  dir: string;
  /** Host every node listens on. */
  host: string;
  /** One port per node, in node order. */
  ports: number[];
  /** Flags given to every node after its own (everything after `--`). */
  extra: string[];
  /** Most milliseconds to wait for every node to be ready (`GET /ready`) before saying so; 0: do not wait. */
  readyTimeoutMs: number;
}

/** The usage text of `msg cluster`. */
export const CLUSTER_USAGE = `Usage: msg cluster [--nodes <n>] [--dir <dir>] [--base-port <port> | --ports <p1,p2,...>] [--host <host>]
                   [--ready-timeout-ms <ms>] [-- <flags for every node>]

Runs a local cluster for trying things out: node i (n1, n2, ...) serves
http://<host>:<port i> with its data in <dir>/n<i> and its log (JSON lines) in
<dir>/n<i>.log. On a first start n1 bootstraps the cluster and the others join it
with the join token n1 wrote to <dir>/n1/join-token (given to them in their
environment, never on the command line); later starts resume (same dirs, same
ports: a node's URL is its identity). Then it waits until every node is ready
(caught up) and prints the nodes. Ctrl-C (SIGINT) or SIGTERM is forwarded to each
node by its PID (each runs in its own process group, so it gets one signal); a
second one kills them. A node removed from the cluster (msg leave) exits 78 when
started again: it is reported and the others run; delete its data dir to start it
fresh (it joins n1 again).

  --nodes <n>             how many nodes, 1..9 (default 3)
  --dir <dir>             where their data dirs and logs go (default data/cluster)
  --base-port <port>      node i listens on port+i-1 (default 8086)
  --ports <p1,p2,...>     one port per node instead (as many as --nodes)
  --host <host>           listen host (default 127.0.0.1)
  --ready-timeout-ms <ms> how long to wait for every node to be ready (default 30000; 0: do not wait)
  -- <flags>              given to every node's \`msg serve\` (e.g. -- --sync never)

Exit codes: 0 every node stopped cleanly (a removed node's 78 included), 64 usage
error, 69 a node failed to start or exited with an error (its log is named).`;

/** Parses the arguments of `msg cluster` into a {@link ClusterPlan}; `'help'` for `--help`. Throws `USAGE` errors naming the flag. */
export function parseClusterArgs(argv: readonly string[]): ClusterPlan | 'help' {
  const split = argv.indexOf('--');
  const own = split < 0 ? argv : argv.slice(0, split);
  const extra = split < 0 ? [] : argv.slice(split + 1);
  const args = parseCommandArgs('cluster', own, {
    nodes: { type: 'string' },
    dir: { type: 'string' },
    'base-port': { type: 'string' },
    ports: { type: 'string' },
    host: { type: 'string' },
    'ready-timeout-ms': { type: 'string' },
  });
  if (booleanFlag(args, 'help')) return 'help';
  const nodes = integerFlag(args, 'nodes', 3, { min: 1, max: 9 });
  const portsText = stringFlag(args, 'ports');
  let ports: number[];
  if (portsText !== undefined) {
    if (stringFlag(args, 'base-port') !== undefined) throw usageError('give --base-port or --ports, not both');
    ports = portsText.split(',').map((p) => {
      const port = /^[0-9]+$/.test(p.trim()) ? Number(p.trim()) : NaN;
      if (!Number.isInteger(port) || port < 1 || port > 65535) throw usageError(`--ports: expected ports in 1..65535, got ${JSON.stringify(p)}`);
      return port;
    });
    if (ports.length !== nodes) throw usageError(`--ports: ${ports.length} port${ports.length === 1 ? '' : 's'} for ${nodes} nodes`);
    if (new Set(ports).size !== ports.length) throw usageError('--ports: a port is listed twice');
  } else {
    const base = integerFlag(args, 'base-port', 8086, { min: 1, max: 65536 - nodes });
    ports = Array.from({ length: nodes }, (_v, i) => base + i);
  }
  const host = stringFlag(args, 'host') ?? '127.0.0.1';
  if (host.trim() === '' || /[\s/]/.test(host)) throw usageError(`--host: expected a host name or address, got ${JSON.stringify(host)}`);
  return {
    dir: resolve(stringFlag(args, 'dir') ?? join('data', 'cluster')),
    host,
    ports,
    extra,
    readyTimeoutMs: integerFlag(args, 'ready-timeout-ms', 30_000, { min: 0 }),
  };
}

/** How the nodes are run: the same Node.js, flags and `msg` entry as this process (a build or the sources under tsx). */
export interface NodeCommand {
  /** The node executable. */
  command: string;
  /** Arguments before the subcommand: Node's flags and the entry script. */
  prefix: string[];
}

/**
 * Should `msg cluster` die without a word (SIGKILL), its nodes must not run on
 * unseen: each one's stdin is a pipe from it, and the end of that pipe stops
 * the node gracefully.
 */
const PARENT_GUARD = 'data:text/javascript,process.stdin.on("end",()=>process.kill(process.pid,"SIGTERM")).on("data",()=>{}).unref()';

/** This process's own command: `process.execPath`, its exec flags and its entry script. */
export function currentNodeCommand(): NodeCommand {
  return { command: process.execPath, prefix: ['--import', PARENT_GUARD, ...process.execArgv, process.argv[1]!] };
}

/** How to run `msg` as this process was run: `node <path>` for a build in or below the working dir, else `msg`. */
function msgInvocation(): string {
  const entry = process.argv[1] ?? '';
  const rel = relative(process.cwd(), entry);
  return entry.endsWith('.js') && !rel.startsWith('..') ? `node ${rel}` : 'msg';
}

interface RunningNode {
  name: string;
  url: string;
  log: string;
  child: ChildProcess;
  exited: Promise<number>;
  up: boolean;
  removed: boolean;
}

/** A node exited before it listened. */
class NodeExited extends Error {
  readonly node: string;
  readonly exitCode: number;
  constructor(node: string, exitCode: number, log: string) {
    super(`${node} exited (${exitCode}) before listening; see ${log}`);
    this.node = node;
    this.exitCode = exitCode;
  }
}

/**
 * Runs `msg cluster`: starts the nodes of `plan`, reports them, and resolves
 * with the exit code once they all stopped (after a signal, or when each
 * exits by itself). It handles SIGINT and SIGTERM itself while it runs (the
 * first is forwarded to every node by PID, a second kills them).
 */
export async function runCluster(argv: readonly string[], io: CommandIO, how: NodeCommand = currentNodeCommand()): Promise<CliExitCode> {
  const plan = parseClusterArgs(argv);
  if (plan === 'help') {
    io.out(`${CLUSTER_USAGE}\n`);
    return CliExitCodes.OK;
  }
  const show = (path: string): string => {
    const rel = relative(process.cwd(), path);
    return rel === '' ? '.' : rel.startsWith('..') ? path : rel;
  };
  const resuming = existsSync(join(plan.dir, 'n1', 'raft'));
  await mkdir(plan.dir, { recursive: true });
  const nodes: RunningNode[] = [];
  let stopping = false;
  let failed = false;
  const firstURL = `http://${plan.host}:${plan.ports[0]}`;

  const start = async (index: number): Promise<void> => {
    const name = `n${index + 1}`;
    const url = `http://${plan.host}:${plan.ports[index]}`;
    const dataDir = join(plan.dir, name);
    const logPath = join(plan.dir, `${name}.log`);
    const args = [...how.prefix, 'serve', '--data-dir', dataDir, '--listen', `${plan.host}:${plan.ports[index]}`];
    const env = { ...io.env };
    if (index > 0) {
      args.push('--join', firstURL);
      // The token goes in the environment, not the command line (which other users may read in ps).
      if (!existsSync(join(dataDir, 'join-token'))) {
        const stored = await readJoinTokenFile(join(plan.dir, 'n1'));
        if (stored !== undefined) env.MSG_JOIN_TOKEN = stored.token.text;
      }
    }
    args.push(...plan.extra);
    const log = createWriteStream(logPath, { flags: 'a' });
    // Its own process group: a Ctrl-C at the terminal reaches the node only through us, once.
    const child = spawn(how.command, args, { env, stdio: ['pipe', 'inherit', 'pipe'], detached: true });
    const exited = new Promise<number>((done) => child.once('exit', (code, signal) => done(code ?? (signal !== null ? 128 : 1))));
    const node: RunningNode = { name, url, log: show(logPath), child, exited, up: false, removed: false };
    nodes.push(node);
    child.stderr.once('end', () => log.end());
    const listening = new Promise<void>((resolveListening, reject) => {
      let buffered = '';
      child.stderr.on('data', (chunk: Buffer) => {
        log.write(chunk);
        buffered += chunk.toString('utf8');
        for (let at = buffered.indexOf('\n'); at >= 0; at = buffered.indexOf('\n')) {
          const line = buffered.slice(0, at);
          buffered = buffered.slice(at + 1);
          let entry: Record<string, unknown> | undefined;
          try {
            const parsed: unknown = JSON.parse(line);
            if (typeof parsed === 'object' && parsed !== null) entry = parsed as Record<string, unknown>;
          } catch {
            entry = undefined;
          }
          if (entry === undefined) {
            if (line.trim() !== '') io.err.write(`${name}: ${line}\n`);
          } else if (entry.msg === 'listening') resolveListening();
          else if (entry.reason === 'removed from the cluster') node.removed = true;
        }
      });
      void exited.then((code) => reject(new NodeExited(name, code, node.log)));
    });
    await listening;
    node.up = true;
    void exited.then((code) => {
      node.up = false;
      if (stopping) return;
      if (code !== 0) failed = true;
      const why = node.removed ? 'was removed from the cluster (leave) and stopped' : `exited (${code})`;
      io.err.write(`${name} (${url}) ${why}; see ${node.log}\n`);
    });
  };

  const stop = (signal: NodeJS.Signals): void => {
    const alive = nodes.filter((n) => n.child.exitCode === null && n.child.signalCode === null);
    if (stopping) {
      for (const n of alive) process.kill(n.child.pid!, 'SIGKILL');
      return;
    }
    stopping = true;
    io.err.write(`\nstopping the cluster (${signal})...\n`);
    for (const n of alive) process.kill(n.child.pid!, signal);
  };
  const onSignal = (signal: NodeJS.Signals): void => stop(signal);
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  try {
    const count = plan.ports.length;
    const results: PromiseSettledResult<void>[] = [];
    // A first start waits for n1's new cluster (and its join token) before the others join it; a restart starts all at once.
    const first = start(0);
    if (!resuming) results.push(...(await Promise.allSettled([first])));
    const rest = Array.from({ length: count - 1 }, (_v, i) => start(i + 1));
    results.push(...(await Promise.allSettled(resuming ? [first, ...rest] : rest)));
    const failures = results.flatMap((r) => (r.status === 'rejected' ? [r.reason as unknown] : []));
    const removed = failures.filter((f): f is NodeExited => f instanceof NodeExited && f.exitCode === ExitCodes.REMOVED);
    const other = failures.find((f) => !removed.includes(f as NodeExited));
    if (other !== undefined) throw other instanceof Error ? other : new Error('a node failed to start', { cause: other });
    for (const f of removed) {
      io.err.write(
        `${f.node} was removed from the cluster (leave) and cannot serve from ${show(join(plan.dir, f.node))} again; ` +
          `delete that dir and run \`msg cluster\` again to start it fresh (it joins n1).\n`,
      );
    }
    const up = nodes.filter((n) => n.up);
    if (up.length === 0) throw new Error('no node is running');
    if (plan.readyTimeoutMs > 0) await waitReady(up, plan.readyTimeoutMs, io, () => stopping);
    const what = up.length === count ? `${count}-node cluster` : `cluster with ${up.length} of ${count} nodes (${removed.map((f) => `${f.node} removed`).join(', ')})`;
    io.out(`${what} running (Ctrl-C stops it):\n`);
    for (const n of up) io.out(`  ${n.name} ${n.url}  data ${show(join(plan.dir, n.name))}  log ${n.log}\n`);
    io.out(`try: ${msgInvocation()} status --url ${up[0]!.url}\n`);
  } catch (error) {
    failed = true;
    io.err.write(`msg cluster: ${error instanceof Error ? error.message : String(error)}\n`);
    stop('SIGTERM');
  }
  const codes = await Promise.all(nodes.map((n) => n.exited));
  process.off('SIGINT', onSignal);
  process.off('SIGTERM', onSignal);
  // A removed node's 78 is reported above and does not fail a run that served with the others.
  const clean = codes.every((code) => code === 0 || code === ExitCodes.REMOVED);
  return clean && !failed ? CliExitCodes.OK : CliExitCodes.UNAVAILABLE;
}

/** Polls `GET /ready` of `nodes` until all answer 200 or `timeoutMs` passed, with progress; says which are not ready then. */
async function waitReady(nodes: readonly RunningNode[], timeoutMs: number, io: CommandIO, stopped: () => boolean): Promise<void> {
  const reader = await adminReader({ urls: [], tlsFiles: {} }, 2000);
  const progress = createProgress({ label: 'waiting for catch-up', total: nodes.length, unit: 'nodes ready', stream: io.err });
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const answers = await Promise.all(nodes.map((n) => reader.get(new URL(n.url), '/ready').then((a) => a.status === 200, () => false)));
    const ready = answers.filter(Boolean).length;
    progress.update(ready);
    if (ready === nodes.length) {
      progress.finish(`all ${nodes.length} nodes ready`);
      return;
    }
    if (Date.now() >= deadline || stopped() || nodes.some((n) => !n.up)) {
      progress.finish(`not ready after ${timeoutMs} ms: ${nodes.filter((_n, i) => !answers[i]).map((n) => n.name).join(', ')}`);
      return;
    }
    await new Promise((done) => setTimeout(done, 200));
  }
}
