import type { ProgressStream } from './progress.js';

/** What a `msg` subcommand reads and writes: injected, so that tests run a command in process. */
export interface CommandIO {
  /** Writes to stdout (results). */
  out(text: string): void;
  /** stderr: errors, progress (a bar when `isTTY`). */
  err: ProgressStream;
  /** The environment (`MSG_URL`, `MSG_TOKEN`, `MSG_CA`, ...). */
  env: NodeJS.ProcessEnv;
  /** stdin, for `publish`. */
  stdin: AsyncIterable<Uint8Array | string>;
  /** Aborted on SIGINT/SIGTERM: long commands (tail --follow, bench, import) stop cleanly. */
  signal: AbortSignal;
}
