import { spawn, type ChildProcess } from 'node:child_process';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { onExit } from './cleanup.js';
import type { NetNode } from './network.js';

const root = join(import.meta.dirname, '..', '..', '..');
const main = join(root, 'apps', 'broker-server', 'src', 'main.ts');
const tsxLoader = pathToFileURL(createRequire(join(root, 'package.json')).resolve('tsx')).href;
// As in tests/integration: the child kills itself when its stdin pipe from
// us closes, so a driver that dies without cleaning up leaves no broker.
const ORPHAN_GUARD = 'data:text/javascript,process.stdin.on("end",()=>process.kill(process.pid,"SIGKILL")).on("data",()=>{}).unref()';

/** The port every node listens on (each has its own address). */
export const BROKER_PORT = 8086;

/** How a broker process ended. */
export interface ExitStatus {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** Options of {@link BrokerNode.start}. */
export interface StartOptions {
  /** URL of a running member to `--join` (first start of a joining node). */
  join?: string;
  /** The cluster's join token (`--join-token`). */
  joinToken?: string;
  /** Extra flags (raft timings, say). */
  args?: readonly string[];
  /** How long to wait for the `listening` log line, in ms. Default 60000. */
  timeoutMs?: number;
}

/**
 * One broker-server process inside its node's network namespace
 * (`ip netns exec <ns> node … main.ts`, which execs: the PID is the
 * broker's), listening on the node's bridge address with `--insecure` (the
 * namespaces are private to the test). Start, signal and restart it by PID;
 * a node object outlives its processes, so it can be restarted on the same
 * data dir with the same URL.
 */
export class BrokerNode {
  readonly net: NetNode;
  /** `http://<address>:8086`: its identity in the cluster. */
  readonly url: string;
  /** The last log lines (JSON parsed; other text as `{level:'raw', msg}`), at most 500. */
  readonly logs: Record<string, unknown>[] = [];
  #child: ChildProcess | undefined;
  #exited: Promise<ExitStatus> = Promise.resolve({ code: null, signal: null });
  #lastExit: ExitStatus | undefined;
  #paused = false;
  #unregister: () => void = () => {};

  constructor(net: NetNode) {
    this.net = net;
    this.url = `http://${net.address}:${BROKER_PORT}`;
  }

  /** The node's id (1-based). */
  get id(): number {
    return this.net.id;
  }

  /** The running process's PID, `undefined` when none runs. */
  get pid(): number | undefined {
    return this.alive ? this.#child?.pid : undefined;
  }

  /** True while a process runs (stopped with SIGSTOP included). */
  get alive(): boolean {
    const child = this.#child;
    return child !== undefined && child.exitCode === null && child.signalCode === null;
  }

  /** True between {@link pause} and {@link resume}. */
  get paused(): boolean {
    return this.#paused && this.alive;
  }

  /** How the last process ended (`undefined` while it runs or before the first). */
  get lastExit(): ExitStatus | undefined {
    return this.#lastExit;
  }

  /** Resolves when the current process has exited. */
  get exited(): Promise<ExitStatus> {
    return this.#exited;
  }

  /** Starts the broker and waits for its `listening` line; rejects (with its last log lines) if it exits first or times out. */
  async start(options: StartOptions = {}): Promise<void> {
    if (this.alive) throw new Error(`node ${this.id} is already running`);
    const args = ['--data-dir', this.net.dataDir, '--listen', `${this.net.address}:${BROKER_PORT}`, '--insecure', '--log-level', 'info'];
    if (options.join !== undefined) args.push('--join', options.join);
    if (options.joinToken !== undefined) args.push('--join-token', options.joinToken);
    args.push(...(options.args ?? []));
    const argv = ['netns', 'exec', this.net.namespace, process.execPath, '--conditions=@msg/source', '--import', ORPHAN_GUARD, '--import', tsxLoader, main, ...args];
    const child = spawn('ip', argv, { cwd: root, stdio: ['pipe', 'ignore', 'pipe'] });
    this.#child = child;
    this.#paused = false;
    this.#lastExit = undefined;
    const pid = child.pid;
    this.#unregister = onExit(() => {
      if (pid !== undefined && child.exitCode === null && child.signalCode === null) process.kill(pid, 'SIGKILL');
    });
    this.#exited = new Promise<ExitStatus>((resolve) => {
      child.once('close', (code: number | null, signal: NodeJS.Signals | null) => {
        this.#lastExit = { code, signal };
        this.#unregister();
        resolve({ code, signal });
      });
    });
    let onLine: ((line: Record<string, unknown>) => void) | undefined;
    let buffered = '';
    child.stderr.setEncoding('utf8').on('data', (text: string) => {
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
        this.logs.push(entry);
        if (this.logs.length > 500) this.logs.splice(0, this.logs.length - 500);
        onLine?.(entry);
      }
    });
    const timeoutMs = options.timeoutMs ?? 60_000;
    try {
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`node ${this.id} did not listen within ${timeoutMs} ms; logs:\n${this.tail()}`)), timeoutMs);
        onLine = (entry) => {
          if (entry.msg === 'listening') {
            clearTimeout(timer);
            resolve();
          }
        };
        void this.#exited.then((status) => {
          clearTimeout(timer);
          reject(new Error(`node ${this.id} exited (${status.code ?? status.signal}) before listening; logs:\n${this.tail()}`));
        });
      });
    } catch (error) {
      await this.kill();
      throw error;
    } finally {
      onLine = undefined;
    }
  }

  /** Sends `signal` to the running process by PID (nothing when none runs). */
  signal(signal: NodeJS.Signals): void {
    const pid = this.pid;
    if (pid === undefined) return;
    try {
      process.kill(pid, signal);
    } catch {
      // Exited between the check and the kill.
    }
  }

  /** SIGSTOP. */
  pause(): void {
    this.signal('SIGSTOP');
    this.#paused = this.alive;
  }

  /** SIGCONT (after {@link pause}). */
  resume(): void {
    this.signal('SIGCONT');
    this.#paused = false;
  }

  /** SIGKILL by PID and waits for the exit. Safe when nothing runs. */
  async kill(): Promise<void> {
    if (!this.alive) return;
    this.signal('SIGKILL');
    await this.#exited;
    this.#paused = false;
  }

  /** SIGTERM (after SIGCONT if paused), SIGKILL after `timeoutMs` (default 20000); resolves with how it ended. */
  async stop(timeoutMs = 20_000): Promise<ExitStatus> {
    if (!this.alive) return this.#lastExit ?? { code: null, signal: null };
    this.resume();
    this.signal('SIGTERM');
    const timer = setTimeout(() => this.signal('SIGKILL'), timeoutMs);
    try {
      return await this.#exited;
    } finally {
      clearTimeout(timer);
    }
  }

  /** The last `count` log lines (default 30), one JSON text each. */
  tail(count = 30): string {
    return this.logs
      .slice(-count)
      .map((l) => JSON.stringify(l))
      .join('\n');
  }
}
