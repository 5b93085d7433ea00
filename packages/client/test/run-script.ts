// Runs a script in a child process with a deadline: the child is killed by its
// own PID when the deadline passes, and its output is returned either way.
import { spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The package's folder. */
export const packageDir = join(dirname(fileURLToPath(import.meta.url)), '..');
/** The repository's root folder. */
export const repoDir = join(packageDir, '..', '..');
/** tsx of the workspace: runs a script that imports `@msg/client` from source. */
export const tsx = join(repoDir, 'node_modules', '.bin', 'tsx');

/** How a child process ended. */
export interface ScriptResult {
  /** Exit code; null when killed by a signal. */
  code: number | null;
  /** Whether the deadline passed and the child was killed. */
  timedOut: boolean;
  stdout: string;
  stderr: string;
}

/** Runs `command args` in `cwd` and resolves when it exits or `timeoutMs` (milliseconds) has passed. */
export function runScript(command: string, args: readonly string[], options: { cwd: string; timeoutMs: number; env?: NodeJS.ProcessEnv }): Promise<ScriptResult> {
  const child = spawn(command, args, { cwd: options.cwd, env: options.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  return new Promise((resolve) => {
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      if (child.pid !== undefined) process.kill(child.pid, 'SIGKILL');
    }, options.timeoutMs);
    child.once('error', (error) => {
      clearTimeout(timer);
      resolve({ code: null, timedOut, stdout, stderr: `${stderr}${String(error)}` });
    });
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, timedOut, stdout, stderr });
    });
  });
}

/** A code block of a Markdown file, with the `<!-- example: path -->` marker on the line before its fence, if any. */
export interface CodeBlock {
  lang: string;
  code: string;
  example: string | undefined;
}

/** The fenced code blocks of a Markdown text, in order. */
export function codeBlocks(markdown: string): CodeBlock[] {
  const blocks: CodeBlock[] = [];
  const pattern = /(?:<!-- example: (\S+) -->\n)?```(\w*)\n([\s\S]*?)```\n/g;
  for (const match of markdown.matchAll(pattern)) {
    blocks.push({ example: match[1], lang: match[2] ?? '', code: match[3] ?? '' });
  }
  return blocks;
}
