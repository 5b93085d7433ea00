// The child processes and temp folders of the broker bench: every child is
// registered here and killed by its PID (on success, failure and signals), and
// every temp folder is removed at the end.
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const app = join(import.meta.dirname, '..');
const root = join(app, '..', '..');
/** tsx's loader, for children that run TypeScript (`--import <tsx>`). */
export const tsxLoader = join(root, 'node_modules', 'tsx', 'dist', 'esm', 'index.mjs');
/** The broker server's entry point. */
export const brokerMain = join(app, 'src', 'main.ts');
/** The broker server package folder (children's working directory). */
export const appDir = app;

const children = new Set<ChildProcess>();
const dirs = new Set<string>();

/** Registers `child` so it is killed by its PID when the bench ends, however it ends. */
export function track(child: ChildProcess): ChildProcess {
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

/** True while `child` has not exited. */
export function alive(child: ChildProcess): boolean {
  return child.exitCode === null && child.signalCode === null;
}

/** SIGKILLs `child` by its PID and waits for its exit. */
export async function kill(child: ChildProcess): Promise<void> {
  if (!alive(child) || child.pid === undefined) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  process.kill(child.pid, 'SIGKILL');
  await exited;
}

function killAllNow(): void {
  for (const child of children) {
    if (alive(child) && child.pid !== undefined) {
      try {
        process.kill(child.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  }
}

/** A fresh temp folder, removed by {@link cleanUp}. */
export async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'msg-bench-'));
  dirs.add(dir);
  return dir;
}

/** Removes one temp folder now (a case done with its data). */
export async function removeDir(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true });
  dirs.delete(dir);
}

/** Kills every child still running (by PID) and removes every temp folder. */
export async function cleanUp(): Promise<void> {
  const running = [...children];
  await Promise.all(running.map(kill));
  await Promise.all([...dirs].map(removeDir));
}

process.on('exit', () => {
  killAllNow();
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    killAllNow();
    process.exit(130);
  });
}

/**
 * Runs a TypeScript script (with tsx and the `@msg/source` condition) in its
 * own process with one JSON argument. Lines `{"event":name}` on its stdout
 * call `onEvent(name)` as they arrive; the last other line is the result.
 * Killed by PID when it outlives `limitMs`.
 */
export function runScript<T>(script: string, options: object, limitMs: number, onEvent: (name: string) => void = () => {}): Promise<T> {
  const child = track(
    spawn(process.execPath, ['--conditions=@msg/source', '--import', tsxLoader, script, JSON.stringify(options)], { stdio: ['ignore', 'pipe', 'inherit'] }),
  );
  return new Promise<T>((resolve, reject) => {
    let buffered = '';
    let last = '';
    const timer = setTimeout(() => {
      void kill(child);
      reject(new Error(`${script} overstayed ${limitMs} ms; killed`));
    }, limitMs);
    child.stdout!.setEncoding('utf8').on('data', (text: string) => {
      buffered += text;
      for (let at = buffered.indexOf('\n'); at >= 0; at = buffered.indexOf('\n')) {
        const line = buffered.slice(0, at);
        buffered = buffered.slice(at + 1);
        if (line.startsWith('{"event":')) onEvent((JSON.parse(line) as { event: string }).event);
        else if (line.trim() !== '') last = line;
      }
    });
    child.once('close', (code) => {
      clearTimeout(timer);
      if (code !== 0) reject(new Error(`${script} exited ${code}`));
      else resolve(JSON.parse(last) as T);
    });
  });
}

/**
 * CPU time (user + system) a process has used so far, in milliseconds, from
 * `/proc/<pid>/stat` (fields 14 and 15, in USER_HZ = 100 ticks per second on
 * Linux, so 10 ms resolution). NaN when the process is gone.
 */
export function cpuMs(pid: number): number {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100;
  } catch {
    return NaN;
  }
}

/** Resident set size of a process in bytes (`VmRSS` of `/proc/<pid>/status`); NaN when gone. */
export function rssBytes(pid: number): number {
  try {
    const match = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match ? Number(match[1]) * 1024 : NaN;
  } catch {
    return NaN;
  }
}
