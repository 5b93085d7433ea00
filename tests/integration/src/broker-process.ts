import { afterAll, afterEach } from '@jest/globals';
import { spawn, type ChildProcess } from 'node:child_process';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const root = join(import.meta.dirname, '..', '..', '..');
const main = join(root, 'apps', 'broker-server', 'src', 'main.ts');
// tsx runs the server from source, with workspace packages resolved through the @msg/source condition.
const tsxLoader = pathToFileURL(createRequire(join(root, 'package.json')).resolve('tsx')).href;
// Last resort against orphans when the test process dies without running its
// hooks (SIGKILL, a crashed worker): the child's stdin is a pipe from us, and
// the child kills itself when that pipe closes. It does not keep a child alive.
const ORPHAN_GUARD = 'data:text/javascript,process.stdin.on("end",()=>process.kill(process.pid,"SIGKILL")).on("data",()=>{}).unref()';

/** How a process ended: its exit code, or the signal that ended it. */
export interface ExitStatus {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** {@link startBroker} failed because the process exited before it listened. */
export class BrokerExitedError extends Error {
  override readonly name = 'BrokerExitedError';
  /** How it ended. */
  readonly status: ExitStatus;
  /** Every line it wrote to stderr (JSON lines parsed; others as `{level:'raw', msg}`). */
  readonly logs: readonly Record<string, unknown>[];

  constructor(status: ExitStatus, logs: readonly Record<string, unknown>[], tail: string) {
    super(`broker exited (${status.code ?? status.signal}) before listening; logs:\n${tail}`);
    this.status = status;
    this.logs = logs;
  }
}

/** Processes to kill after the current test, and after the current file. */
const perTest = new Set<ChildProcess>();
const perFile = new Set<ChildProcess>();

afterEach(async () => {
  const all = [...perTest];
  perTest.clear();
  await Promise.all(all.map(killChild));
});
afterAll(async () => {
  const all = [...perFile, ...perTest];
  perFile.clear();
  perTest.clear();
  await Promise.all(all.map(killChild));
});

function track(child: ChildProcess, lifetime: Lifetime): void {
  const set = lifetime === 'file' ? perFile : perTest;
  set.add(child);
  child.once('exit', () => set.delete(child));
}

function isAlive(child: ChildProcess): boolean {
  return child.exitCode === null && child.signalCode === null;
}

/** Sends SIGKILL to the child by its PID (if still running) and waits for its exit. */
async function killChild(child: ChildProcess): Promise<void> {
  if (!isAlive(child)) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  try {
    process.kill(child.pid!, 'SIGKILL');
  } catch {
    // Already gone between the check and the kill.
  }
  await exited;
}

/** `'test'`: killed after the current test (default); `'file'`: after the current test file. */
export type Lifetime = 'test' | 'file';

/** Options of {@link startBroker}. */
export interface StartOptions {
  /** The node's data directory (`--data-dir`). */
  dataDir: string;
  /**
   * Port to bind on 127.0.0.1; 0 (default) lets the OS choose. A node's URL is
   * its identity in the cluster: restart a node on the port it had.
   */
  port?: number;
  /** URLs to `--join` (each becomes one flag). */
  join?: readonly string[];
  /** The cluster's join token (`--join-token`), needed with `join` on a first start: see `readJoinToken`. */
  joinToken?: string;
  /** Extra command-line flags. */
  args?: readonly string[];
  /** Extra environment variables. */
  env?: NodeJS.ProcessEnv;
  /** How long to wait for the `listening` line, in milliseconds. Default 30000. */
  timeoutMs?: number;
  /** When the harness kills it. Default `'test'`. */
  lifetime?: Lifetime;
}

/** A broker-server child process. Killed by its own PID at the end of its {@link Lifetime}. */
export interface BrokerProcess {
  /** The URL it logged in its `listening` line (`http://127.0.0.1:PORT`). */
  readonly url: string;
  /** The port of {@link url}. */
  readonly port: number;
  /** The data directory it was started with. */
  readonly dataDir: string;
  readonly pid: number;
  readonly child: ChildProcess;
  /** Every JSON log line it wrote to stderr so far (a line that is not JSON as `{level:'raw', msg}`). */
  readonly logs: Record<string, unknown>[];
  /** Resolves once the process has exited. */
  readonly exited: Promise<ExitStatus>;
  /** True until the process has exited. */
  readonly alive: boolean;
  /** Sends `signal` (default SIGTERM) by PID and waits for the exit; SIGKILL after `timeoutMs` (default 20000). */
  stop(signal?: NodeJS.Signals, timeoutMs?: number): Promise<ExitStatus>;
  /** SIGKILL by PID, then waits for the exit. Safe to call twice. */
  kill(): Promise<void>;
  /** The last `count` log lines (default 40), one JSON text per line: for failure messages. */
  tail(count?: number): string;
}

/**
 * Command and arguments that run the broker server from source with the given
 * arguments. Spawn it with `stdio[0] = 'pipe'` and keep that pipe open: the
 * child exits when it closes.
 */
export function serverCommand(args: readonly string[]): { command: string; args: string[] } {
  return { command: process.execPath, args: ['--conditions=@msg/source', '--import', ORPHAN_GUARD, '--import', tsxLoader, main, ...args] };
}

/**
 * Starts `apps/broker-server` on 127.0.0.1 and waits until it logs that it is
 * listening. Rejects with {@link BrokerExitedError} if it exits first.
 */
export async function startBroker(options: StartOptions): Promise<BrokerProcess> {
  const args = ['--data-dir', options.dataDir, '--listen', `127.0.0.1:${options.port ?? 0}`, '--log-level', 'debug'];
  for (const url of options.join ?? []) args.push('--join', url);
  if (options.joinToken !== undefined) args.push('--join-token', options.joinToken);
  args.push(...(options.args ?? []));
  const { command, args: argv } = serverCommand(args);
  const child = spawn(command, argv, { cwd: root, env: { ...process.env, ...options.env }, stdio: ['pipe', 'pipe', 'pipe'] });
  track(child, options.lifetime ?? 'test');
  // 'close': the process has exited and its stderr is fully read.
  const exited = new Promise<ExitStatus>((resolve) => {
    child.once('close', (code: number | null, signal: NodeJS.Signals | null) => resolve({ code, signal }));
  });
  const logs: Record<string, unknown>[] = [];
  let onLine: ((line: Record<string, unknown>) => void) | undefined;
  let buffered = '';
  const consume = (text: string): void => {
    buffered += text;
    for (let at = buffered.indexOf('\n'); at >= 0; at = buffered.indexOf('\n')) {
      const line = buffered.slice(0, at);
      buffered = buffered.slice(at + 1);
      let entry: Record<string, unknown>;
      try {
        const parsed: unknown = JSON.parse(line);
        entry = typeof parsed === 'object' && parsed !== null ? (parsed as Record<string, unknown>) : { level: 'raw', msg: line };
      } catch {
        entry = { level: 'raw', msg: line };
      }
      logs.push(entry);
      onLine?.(entry);
    }
  };
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', consume);
  // A last line without its newline still counts.
  child.stderr.once('end', () => buffered !== '' && consume('\n'));
  child.stdout.resume();

  const tail = (count = 40): string =>
    logs
      .slice(-count)
      .map((l) => JSON.stringify(l))
      .join('\n');

  const timeoutMs = options.timeoutMs ?? 30_000;
  let url: string;
  try {
    url = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`broker did not listen within ${timeoutMs} ms; logs:\n${tail()}`)), timeoutMs);
      onLine = (entry) => {
        if (entry.msg === 'listening' && typeof entry.url === 'string') {
          clearTimeout(timer);
          resolve(entry.url);
        }
      };
      void exited.then((status) => {
        clearTimeout(timer);
        reject(new BrokerExitedError(status, logs, tail()));
      });
    });
  } catch (error) {
    await killChild(child);
    throw error;
  } finally {
    onLine = undefined;
  }

  return {
    url,
    port: Number(new URL(url).port),
    dataDir: options.dataDir,
    pid: child.pid!,
    child,
    logs,
    exited,
    get alive() {
      return isAlive(child);
    },
    async stop(signal: NodeJS.Signals = 'SIGTERM', stopTimeoutMs = 20_000) {
      if (isAlive(child)) process.kill(child.pid!, signal);
      const timer = setTimeout(() => void killChild(child), stopTimeoutMs);
      try {
        return await exited;
      } finally {
        clearTimeout(timer);
      }
    },
    kill: () => killChild(child),
    tail,
  };
}

/** What a one-shot command of the server printed, and how it ended. */
export interface CommandResult extends ExitStatus {
  stdout: string;
  stderr: string;
}

/**
 * Runs the server executable with `args` (e.g. the `leave` subcommand) and
 * waits for its exit; SIGKILL by PID after `timeoutMs` (default 30000).
 */
export async function runServerCommand(args: readonly string[], timeoutMs = 30_000): Promise<CommandResult> {
  const { command, args: argv } = serverCommand(args);
  const child = spawn(command, argv, { cwd: root, env: process.env, stdio: ['pipe', 'pipe', 'pipe'] });
  track(child, 'test');
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (text: string) => (stdout += text));
  child.stderr.setEncoding('utf8').on('data', (text: string) => (stderr += text));
  const timer = setTimeout(() => void killChild(child), timeoutMs);
  try {
    const status = await new Promise<ExitStatus>((resolve, reject) => {
      child.once('error', reject);
      child.once('close', (code, signal) => resolve({ code, signal }));
    });
    return { ...status, stdout, stderr };
  } finally {
    clearTimeout(timer);
  }
}
