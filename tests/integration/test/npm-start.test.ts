// `npm start` as an operator runs it: npm, its `sh -c`, the pinned pnpm install,
// the cached build, then the broker. Ctrl-C sends SIGINT to the whole foreground
// process group; a supervisor sends SIGTERM to npm alone. Both must end in a
// graceful shutdown and exit 0, with npm returning only once the broker is gone.
import { afterEach, describe, expect, it } from '@jest/globals';
import { makeTempDir } from '@msg/test-utils';
import { spawn, type ChildProcess } from 'node:child_process';
import { connect } from 'node:net';
import { join } from 'node:path';

const root = join(import.meta.dirname, '..', '..', '..');
const LISTEN_TIMEOUT_MS = 90_000; // the first start after an edit may rebuild
const EXIT_TIMEOUT_MS = 20_000;

const started = new Set<ChildProcess>();
afterEach(() => {
  // A failed test must not leave npm or the broker behind: kill npm's whole group by its PID
  // (the broker, in a group of its own, stops when its launcher's pipe closes).
  for (const child of started) {
    try {
      process.kill(-child.pid!, 'SIGKILL');
    } catch {
      // the group is gone already
    }
  }
  started.clear();
});

interface NpmStart {
  readonly child: ChildProcess;
  readonly stderr: () => string;
  /** Resolves with the broker's URL once it logs `listening`. */
  readonly listening: Promise<string>;
  /** Resolves with npm's exit code, or the signal that killed it. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Resolves once npm has exited and its stderr is read to the end. */
  readonly closed: Promise<void>;
}

function npmStart(dataDir: string): NpmStart {
  // detached: npm leads a new process group, as a shell's foreground job does.
  const child = spawn('npm', ['start', '--', '--listen', '127.0.0.1:0', '--data-dir', dataDir], {
    cwd: root,
    detached: true,
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  started.add(child);
  let stderr = '';
  const listening = new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no "listening" within ${LISTEN_TIMEOUT_MS} ms:\n${stderr}`)), LISTEN_TIMEOUT_MS);
    child.stderr.setEncoding('utf8').on('data', (text: string) => {
      stderr += text;
      const url = /"msg":"listening","url":"([^"]+)"/.exec(stderr)?.[1];
      if (url !== undefined) {
        clearTimeout(timer);
        resolve(url);
      }
    });
    child.once('exit', () => {
      clearTimeout(timer);
      reject(new Error(`npm start exited before listening:\n${stderr}`));
    });
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('exit', (code, signal) => resolve({ code, signal }));
  });
  const closed = new Promise<void>((resolve) => child.once('close', () => resolve()));
  return { child, stderr: () => stderr, listening, exited, closed };
}

async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** True when nothing accepts connections at `url` any more. */
async function refused(url: string): Promise<boolean> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve) => {
    const socket = connect({ host: hostname, port: Number(port) });
    socket.once('connect', () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('error', () => resolve(true));
  });
}

describe('npm start', () => {
  it('exits 0 after a graceful shutdown when Ctrl-C sends SIGINT to its process group', async () => {
    const run = npmStart(await makeTempDir('msg-it-npm-start-'));
    const url = await run.listening;

    process.kill(-run.child.pid!, 'SIGINT');
    const end = await within(run.exited, EXIT_TIMEOUT_MS, 'npm start after SIGINT');

    const gone = await refused(url); // npm returned only after the broker closed its listener
    await within(run.closed, EXIT_TIMEOUT_MS, 'stderr of npm start');

    expect({ ...end, stderr: end.code === 0 ? '' : run.stderr() }).toEqual({ code: 0, signal: null, stderr: '' });
    expect(gone).toBe(true);
    expect(run.stderr()).toContain('"msg":"stopped"');
  }, 150_000);

  it('exits 0 after a graceful shutdown when only npm gets SIGTERM (a supervisor)', async () => {
    const run = npmStart(await makeTempDir('msg-it-npm-start-'));
    const url = await run.listening;

    process.kill(run.child.pid!, 'SIGTERM');
    const end = await within(run.exited, EXIT_TIMEOUT_MS, 'npm start after SIGTERM');

    const gone = await refused(url); // npm returned only after the broker closed its listener
    await within(run.closed, EXIT_TIMEOUT_MS, 'stderr of npm start');

    expect({ ...end, stderr: end.code === 0 ? '' : run.stderr() }).toEqual({ code: 0, signal: null, stderr: '' });
    expect(gone).toBe(true);
    expect(run.stderr()).toContain('"msg":"stopped"');
  }, 150_000);
});
