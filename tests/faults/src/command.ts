import { execFile, execFileSync } from 'node:child_process';

/** A command of the harness (`ip`, `nft`, `mount`) failed. */
export class CommandError extends Error {
  override readonly name = 'CommandError';
  /** The command line, for the log. */
  readonly command: string;
  /** What it wrote to stderr. */
  readonly stderr: string;

  constructor(command: string, stderr: string, cause: unknown) {
    super(`${command}: ${stderr.trim() || (cause as Error).message}`, { cause });
    this.command = command;
    this.stderr = stderr;
  }
}

/**
 * Runs `file args` (no shell) with `input` on stdin and resolves with its
 * stdout; rejects with {@link CommandError} on a non-zero exit, and after
 * `timeoutMs` (default 20000 ms, the child is then killed).
 */
export function run(file: string, args: readonly string[], options: { input?: string; timeoutMs?: number } = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile(file, args, { timeout: options.timeoutMs ?? 20_000, encoding: 'utf8', maxBuffer: 16 << 20 }, (error, stdout, stderr) => {
      if (error) reject(new CommandError([file, ...args].join(' '), stderr, error));
      else resolve(stdout);
    });
    // A command that reads nothing may exit before we write: ignore EPIPE.
    child.stdin?.on('error', () => {});
    if (options.input !== undefined) child.stdin?.end(options.input);
    else child.stdin?.end();
  });
}

/** {@link run}, synchronously, for exit handlers: never throws, resolves to stdout or `undefined` on failure. */
export function runSync(file: string, args: readonly string[], input?: string): string | undefined {
  try {
    return execFileSync(file, args, { encoding: 'utf8', timeout: 10_000, input: input ?? '', stdio: ['pipe', 'pipe', 'pipe'] });
  } catch {
    return undefined;
  }
}
