import { afterEach } from '@jest/globals';
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';

const app = join(import.meta.dirname, '..');
const root = join(app, '..', '..');
const main = join(app, 'src', 'main.ts');
const tsx = join(root, 'node_modules', 'tsx', 'dist', 'esm', 'index.mjs');

const running = new Set<ChildProcess>();
afterEach(async () => {
  const all = [...running];
  running.clear();
  await Promise.all(
    all.map(async (child) => {
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise((resolve) => child.once('exit', resolve));
        process.kill(child.pid!, 'SIGKILL');
        await exited;
      }
    }),
  );
});

/** A `main.ts` child process, run from source with tsx; killed by its PID after each test. */
export interface ServerProcess {
  readonly child: ChildProcess;
  /** Parsed JSON log lines from stderr so far. */
  readonly logs: Record<string, unknown>[];
  /** All of stdout and stderr so far, as text. */
  readonly output: { stdout: string; stderr: string };
  /** The exit code (or signal name) once the process has exited. */
  readonly exited: Promise<number | string>;
  /** Resolves with the URL of the `listening` line; rejects if the process exits first or after `timeoutMs`. */
  listening(timeoutMs?: number): Promise<string>;
}

/** Runs `main.ts <args>` with `env` added to this process's environment. */
export function runMain(args: readonly string[], env: NodeJS.ProcessEnv = {}): ServerProcess {
  const child = spawn(process.execPath, ['--conditions=@msg/source', '--import', tsx, main, ...args], {
    cwd: app,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  running.add(child);
  const logs: Record<string, unknown>[] = [];
  const output = { stdout: '', stderr: '' };
  const listeners = new Set<(line: Record<string, unknown>) => void>();
  let partial = '';
  child.stdout.setEncoding('utf8').on('data', (text: string) => (output.stdout += text));
  child.stderr.setEncoding('utf8').on('data', (text: string) => {
    output.stderr += text;
    partial += text;
    for (let at = partial.indexOf('\n'); at >= 0; at = partial.indexOf('\n')) {
      const line = partial.slice(0, at);
      partial = partial.slice(at + 1);
      if (!line.startsWith('{')) continue;
      const entry = JSON.parse(line) as Record<string, unknown>;
      logs.push(entry);
      for (const listener of listeners) listener(entry);
    }
  });
  const exited = new Promise<number | string>((resolve) => {
    child.once('close', (code, signal) => {
      running.delete(child);
      resolve(code ?? signal ?? 'unknown');
    });
  });
  return {
    child,
    logs,
    output,
    exited,
    listening(timeoutMs = 30_000) {
      return new Promise<string>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no listening line within ${timeoutMs} ms:\n${output.stderr}`)), timeoutMs);
        const found = (entry: Record<string, unknown>): void => {
          if (entry.msg === 'listening' && typeof entry.url === 'string') {
            clearTimeout(timer);
            listeners.delete(found);
            resolve(entry.url);
          }
        };
        for (const entry of logs) found(entry);
        listeners.add(found);
        void exited.then((code) => {
          clearTimeout(timer);
          reject(new Error(`exited (${code}) before listening:\n${output.stderr}`));
        });
      });
    },
  };
}
