/**
 * Exit codes of the broker binary (sysexits.h values where one fits).
 * Documented in the README and in `--help`.
 */
export const ExitCodes = {
  /** Clean exit: `--help`, or a graceful shutdown after SIGINT/SIGTERM. */
  OK: 0,
  /** `leave` was refused by the cluster (unknown member, last voter, other cluster). */
  REFUSED: 65,
  /** Bad command line, environment variable or config file; stderr names the setting. */
  USAGE: 64,
  /** `leave`: the cluster could not be reached, or gave no answer in time. */
  UNAVAILABLE: 69,
  /** Internal error (a bug, or a failure with no better code, e.g. joining failed). */
  INTERNAL: 70,
  /** I/O error or corrupt data while opening the data dir; stderr names the file. */
  IO: 74,
} as const;

/** One of {@link ExitCodes}. */
export type ExitCode = (typeof ExitCodes)[keyof typeof ExitCodes];

/** Error codes of raft-ts, @msg/segments and @msg/broker that mean damaged or unwritable files. */
const IO_CODES = new Set(['CORRUPT', 'CORRUPT_SEGMENT', 'CORRUPT_META', 'CORRUPT_SNAPSHOT', 'WRITE_FAILED']);

/**
 * The exit code for an error that stopped the server: {@link ExitCodes.USAGE}
 * for `INVALID_CONFIG`, {@link ExitCodes.IO} for a corrupt file or a system I/O
 * error (an errno such as `EACCES`, `ENOSPC`, `EIO`) anywhere in the `cause`
 * chain, {@link ExitCodes.INTERNAL} otherwise.
 */
export function exitCodeFor(error: unknown): ExitCode {
  for (let e: unknown = error, depth = 0; e instanceof Error && depth < 10; e = e.cause, depth++) {
    const coded = e as Error & { code?: unknown; syscall?: unknown };
    if (coded.code === 'INVALID_CONFIG') return ExitCodes.USAGE;
    if (typeof coded.code === 'string' && IO_CODES.has(coded.code)) return ExitCodes.IO;
    if (typeof coded.syscall === 'string' && typeof coded.code === 'string' && coded.code.startsWith('E')) return ExitCodes.IO;
  }
  return ExitCodes.INTERNAL;
}
