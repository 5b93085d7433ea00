import { isBrokerError, isClientError } from '@msg/client';

/**
 * Exit codes of `msg` (sysexits.h values), the same as the broker's where
 * they overlap. Documented in docs/cli.md and in `msg --help`.
 */
export const CliExitCodes = {
  /** Done. */
  OK: 0,
  /** Bad command line: an unknown subcommand or flag, a missing or malformed value; stderr names it. */
  USAGE: 64,
  /** The cluster refused the request as such (`leave` of an unknown member; `import` into topics that have data). */
  REFUSED: 65,
  /** An input file (`--ca`, `--cert`, `--key`, the import source) does not exist or cannot be read. */
  NO_INPUT: 66,
  /** No broker could be reached, none answered in time, or the cluster has no leader; `status --wait`: not ready in time. */
  UNAVAILABLE: 69,
  /** Internal error (a bug, or a failure with no better code). */
  INTERNAL: 70,
  /** An input file is damaged (a corrupt import source). */
  IO: 74,
  /** The broker refused the credentials (401 `UNAUTHENTICATED`, 403 `FORBIDDEN`) or the join token. */
  NOPERM: 77,
} as const;

/** One of {@link CliExitCodes}. */
export type CliExitCode = (typeof CliExitCodes)[keyof typeof CliExitCodes];

/** Codes of {@link CliError}. */
export const CliErrorCodes = {
  /** A command-line error (exit 64). */
  USAGE: 'USAGE',
  /** An input file is missing or unreadable (exit 66). */
  NO_INPUT: 'NO_INPUT',
  /** No broker answered (exit 69). */
  UNAVAILABLE: 'UNAVAILABLE',
  /** The cluster or the command refused to go on (exit 65). */
  REFUSED: 'REFUSED',
  /** A broker answered something the command cannot read (exit 70). */
  BAD_RESPONSE: 'BAD_RESPONSE',
  /** An input file is damaged (exit 74). */
  CORRUPT_INPUT: 'CORRUPT_INPUT',
} as const;

/** One of {@link CliErrorCodes}. */
export type CliErrorCode = (typeof CliErrorCodes)[keyof typeof CliErrorCodes];

const EXIT_OF: Record<CliErrorCode, CliExitCode> = {
  USAGE: CliExitCodes.USAGE,
  NO_INPUT: CliExitCodes.NO_INPUT,
  UNAVAILABLE: CliExitCodes.UNAVAILABLE,
  REFUSED: CliExitCodes.REFUSED,
  BAD_RESPONSE: CliExitCodes.INTERNAL,
  CORRUPT_INPUT: CliExitCodes.IO,
};

/** An error of a `msg` subcommand: a stable `code`, the exit code it means, and a message for stderr. */
export class CliError extends Error {
  override readonly name = 'CliError';
  /** What went wrong, stable. */
  readonly code: CliErrorCode;
  /** The process exit code this error means. */
  readonly exitCode: CliExitCode;

  /** `message` is shown as is on stderr after `msg <command>: `. */
  constructor(code: CliErrorCode, message: string, options: { cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.exitCode = EXIT_OF[code];
  }
}

/** A {@link CliError} of code `USAGE` (exit 64). */
export function usageError(message: string): CliError {
  return new CliError('USAGE', message);
}

/** Broker and client error codes that mean "no broker could take it now". */
const UNAVAILABLE_CODES = new Set(['NO_LEADER', 'UNAVAILABLE', 'TIMEOUT', 'BROKER_CLOSED', 'NO_URLS', 'UNTRUSTED_REDIRECT', 'RAFT_UNAVAILABLE']);
/** Codes that mean the credentials were refused. */
const NOPERM_CODES = new Set(['UNAUTHENTICATED', 'FORBIDDEN']);

/**
 * The exit code for an error that ended a subcommand: a {@link CliError}'s
 * own; {@link CliExitCodes.NOPERM} for `UNAUTHENTICATED`/`FORBIDDEN`;
 * {@link CliExitCodes.UNAVAILABLE} for `NO_LEADER`, `UNAVAILABLE`,
 * `TIMEOUT` and connection errors (`ECONNREFUSED`, ...);
 * {@link CliExitCodes.USAGE} for the client's `INVALID_OPTIONS`/`INVALID_URL`
 * and the broker's validation codes; {@link CliExitCodes.INTERNAL} otherwise.
 */
export function cliExitCode(error: unknown): CliExitCode {
  if (error instanceof CliError) return error.exitCode;
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code === 'string') {
    if (NOPERM_CODES.has(code)) return CliExitCodes.NOPERM;
    if (UNAVAILABLE_CODES.has(code) || /^E(CONNREFUSED|CONNRESET|HOSTUNREACH|NETUNREACH|TIMEDOUT|NOTFOUND|AI_AGAIN)$/.test(code)) return CliExitCodes.UNAVAILABLE;
    if (isClientError(error) && (code === 'INVALID_OPTIONS' || code === 'INVALID_URL')) return CliExitCodes.USAGE;
    if (isBrokerError(error) && /_REQUIRED$/.test(code)) return CliExitCodes.USAGE;
  }
  return CliExitCodes.INTERNAL;
}

/** One line for stderr: the message, and the stable code in parentheses when the error has one. */
export function describeError(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const code = (error as { code?: unknown }).code;
  const cause = error.cause instanceof Error && !error.message.includes(error.cause.message) ? `: ${error.cause.message}` : '';
  return `${error.message}${cause}${typeof code === 'string' && !(error instanceof CliError) ? ` (${code})` : ''}`;
}
