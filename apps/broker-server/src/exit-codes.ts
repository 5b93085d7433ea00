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
  /** `leave`: a `--ca`, `--cert` or `--key` file cannot be read (EX_NOINPUT). */
  NO_INPUT: 66,
  /** The listen address is in use or not available, or joining failed; `leave`: the cluster could not be reached in time. */
  UNAVAILABLE: 69,
  /** Internal error (a bug, or a failure with no better code). */
  INTERNAL: 70,
  /** I/O error or corrupt data while opening the data dir; stderr names the file. */
  IO: 74,
  /** The data dir is in use: another live broker process holds its lock; stderr names the dir and that process's PID (EX_TEMPFAIL). */
  IN_USE: 75,
  /** The cluster refused this node's join token (`UNAUTHENTICATED`): the token is of another cluster, or mistyped. */
  NOPERM: 77,
  /** The data dir's node was removed from its cluster (`leave`) and cannot serve again: start with a new, empty data dir (EX_CONFIG). */
  REMOVED: 78,
} as const;

/** One of {@link ExitCodes}. */
export type ExitCode = (typeof ExitCodes)[keyof typeof ExitCodes];

/** Error codes of raft-ts, @msg/segments and @msg/broker that mean damaged or unwritable files. */
const IO_CODES = new Set([
  'CORRUPT',
  'CORRUPT_SEGMENT',
  'CORRUPT_META',
  'CORRUPT_SNAPSHOT',
  'WRITE_FAILED',
  'DATA_LOST',
  'STORAGE_FAILED',
  'JOIN_TOKEN_CORRUPT',
  'JOIN_TOKEN_UNREADABLE',
  'JOIN_TOKEN_WRITE_FAILED',
  'NODE_IDENTITY_CORRUPT',
  'NODE_IDENTITY_UNREADABLE',
  'NODE_IDENTITY_WRITE_FAILED',
]);

/** Codes that mean the start asked for something the data dir does not allow (exit 64). */
const USAGE_CODES = new Set(['INVALID_CONFIG', 'NODE_IDENTITY_CHANGED']);

/** Codes that mean a peer refused this node's credentials. */
const REFUSED_CODES = new Set(['JOIN_REFUSED', 'UNAUTHENTICATED']);

/** System calls whose errors are about the network, not files. */
const NETWORK_SYSCALLS = new Set(['connect', 'getaddrinfo', 'bind']);

/**
 * The exit code for an error that stopped the server: {@link ExitCodes.NOPERM}
 * when the cluster refused the node's join token (`JOIN_REFUSED` or
 * `UNAUTHENTICATED` anywhere in the `cause` chain), {@link ExitCodes.USAGE}
 * for `INVALID_CONFIG` and `NODE_IDENTITY_CHANGED` (another URL than the data
 * dir's node has), {@link ExitCodes.IN_USE} for `DATA_DIR_LOCKED`,
 * {@link ExitCodes.REMOVED} for `NODE_REMOVED`, {@link ExitCodes.UNAVAILABLE} when the listen address
 * cannot be bound (`EADDRINUSE`, `EADDRNOTAVAIL`) or no `--join` URL
 * accepted the node (`JOIN_FAILED`), {@link ExitCodes.IO} for a corrupt file or a system I/O
 * error (an errno such as `EACCES`, `ENOSPC`, `EIO`) anywhere in the `cause`
 * chain, {@link ExitCodes.INTERNAL} otherwise.
 */
export function exitCodeFor(error: unknown): ExitCode {
  for (let e: unknown = error, depth = 0; typeof e === 'object' && e !== null && depth < 10; e = (e as { cause?: unknown }).cause, depth++) {
    if (REFUSED_CODES.has((e as { code?: unknown }).code as string)) return ExitCodes.NOPERM;
  }
  // Duck-typed, not `instanceof Error`: errors of another realm (vm contexts) count too.
  for (let e: unknown = error, depth = 0; typeof e === 'object' && e !== null && depth < 10; e = (e as { cause?: unknown }).cause, depth++) {
    const coded = e as { code?: unknown; syscall?: unknown };
    if (typeof coded.code === 'string' && USAGE_CODES.has(coded.code)) return ExitCodes.USAGE;
    if (coded.code === 'DATA_DIR_LOCKED') return ExitCodes.IN_USE;
    if (coded.code === 'NODE_REMOVED') return ExitCodes.REMOVED;
    if (typeof coded.code === 'string' && IO_CODES.has(coded.code)) return ExitCodes.IO;
    if (coded.code === 'JOIN_FAILED' || coded.syscall === 'listen' || coded.code === 'EADDRINUSE' || coded.code === 'EADDRNOTAVAIL') return ExitCodes.UNAVAILABLE;
    if (typeof coded.syscall === 'string' && !NETWORK_SYSCALLS.has(coded.syscall) && typeof coded.code === 'string' && coded.code.startsWith('E')) {
      return ExitCodes.IO;
    }
  }
  return ExitCodes.INTERNAL;
}
