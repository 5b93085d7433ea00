import { setMaxListeners } from 'node:events';
import { readFileSync } from 'node:fs';
import { isClientError } from '@msg/client';
import { leaveUsage, runLeave } from '../leave.js';
import { runBench, BENCH_USAGE } from './bench.js';
import { runCluster, CLUSTER_USAGE } from './cluster.js';
import { CliExitCodes, cliExitCode, describeError, type CliExitCode } from './errors.js';
import { IMPORT_USAGE, runImport } from './import.js';
import type { CommandIO } from './io.js';
import { PUBLISH_USAGE, runPublish } from './publish.js';
import { serve } from './serve.js';
import { runStatus, STATUS_USAGE } from './status.js';
import { runTail, TAIL_USAGE } from './tail.js';
import { runTopics, TOPICS_USAGE } from './topics.js';

/** The version of `msg` (the broker-server package's). */
export function msgVersion(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version?: unknown };
  return typeof pkg.version === 'string' ? pkg.version : '0.0.0';
}

/** `msg leave`'s usage: `leave`'s own, under the name `msg leave`, with `--url` as another name of `--cluster`. */
export function msgLeaveUsage(): string {
  return `${leaveUsage().replaceAll('broker-server leave', 'msg leave').replaceAll('`broker-server --print-join-token`', '`msg serve --print-join-token`')}
--url <url> is another name of --cluster.`;
}

/** Runs `msg leave`: the broker's `leave`, with `--url` accepted for `--cluster`. */
async function runMsgLeave(argv: readonly string[], io: CommandIO): Promise<CliExitCode> {
  if (argv.includes('--help') || argv.includes('-h')) {
    io.out(`${msgLeaveUsage()}\n`);
    return CliExitCodes.OK;
  }
  const translated = argv.map((arg) => (arg === '--url' ? '--cluster' : arg.startsWith('--url=') ? `--cluster=${arg.slice(6)}` : arg));
  return (await runLeave(translated, (text) => io.out(text), (text) => void io.err.write(text.replace(/^broker-server leave:/, 'msg leave:')), io.env)) as CliExitCode;
}

/** A subcommand of `msg` that runs and returns an exit code (`serve` is not one: it owns the process). */
interface Command {
  /** One line for `msg --help`. */
  summary: string;
  /** Its usage text (`msg <command> --help`). */
  usage: () => string;
  run(argv: readonly string[], io: CommandIO): Promise<CliExitCode>;
  /** It handles SIGINT/SIGTERM itself (`cluster`). */
  ownSignals?: boolean;
}

/** The subcommands of `msg`, in the order `msg --help` lists them. */
export const COMMANDS: Readonly<Record<string, Command>> = {
  cluster: { summary: 'run a local cluster (n nodes on loopback)', usage: () => CLUSTER_USAGE, run: (argv, io) => runCluster(argv, io), ownSignals: true },
  status: { summary: 'members, roles, term, commit/applied index, follower lag, readiness', usage: () => STATUS_USAGE, run: runStatus },
  topics: { summary: 'topics: first/last index, bytes, messages, publish rate, readers and their lag', usage: () => TOPICS_USAGE, run: runTopics },
  tail: { summary: 'print a topic\'s messages (--from, --follow, --format text|hex|json)', usage: () => TAIL_USAGE, run: runTail },
  publish: { summary: 'publish stdin to a topic, one message per line (or --raw)', usage: () => PUBLISH_USAGE, run: runPublish },
  leave: { summary: 'remove a node from the cluster', usage: msgLeaveUsage, run: runMsgLeave },
  import: { summary: 'import the original broker\'s data dir or snapshot through the leader', usage: () => IMPORT_USAGE, run: runImport },
  bench: { summary: 'a quick publish and consume benchmark (msg/s, latency p50/p99)', usage: () => BENCH_USAGE, run: runBench },
};

/** The text of `msg --help`. */
export function msgUsage(): string {
  const width = Math.max(...Object.keys(COMMANDS).map((name) => name.length), 'serve'.length);
  const line = (name: string, summary: string): string => `  ${name.padEnd(width)}  ${summary}`;
  return [
    'Usage: msg <command> [flags]      (msg <command> --help for its flags)',
    '',
    'The msg broker and its operator tools.',
    '',
    'Commands:',
    line('serve', 'run a broker node (msg serve --help lists its flags)'),
    ...Object.entries(COMMANDS).map(([name, c]) => line(name, c.summary)),
    '',
    'Commands that talk to a cluster take --url <url> (repeatable; default $MSG_URL or',
    'http://127.0.0.1:8086), --token <token> (default $MSG_TOKEN), --ca <file> (default $MSG_CA),',
    '--cert <file> and --key <file>.',
    '',
    '  -h, --help       show this help (or a command\'s, after it)',
    '  -V, --version    print the version (also after a command)',
    '',
    'Exit codes (each command lists its own): 0 ok, 64 usage error, 65 refused, 66 an input',
    'file cannot be read, 69 no broker answered / no leader / timed out, 70 internal error,',
    '74 damaged input, 77 credentials refused; serve has its own (msg serve --help).',
  ].join('\n');
}

/** How {@link runMsg} was started. */
export interface RunOptions {
  /**
   * `main.js` compatibility: arguments that do not start with a subcommand
   * are `serve`'s (`node dist/main.js --data-dir d` serves), and errors start
   * with `broker-server`. Default false (`msg`).
   */
  compat?: boolean;
}

/**
 * Runs `msg <argv>` in this process: `serve` (which owns the process and
 * resolves once it serves), a subcommand of {@link COMMANDS}, `--help` or
 * `--version`. Resolves with the exit code to leave with (`undefined` after
 * `serve`: the process ends when the server stops). A first SIGINT/SIGTERM
 * aborts `io.signal` (tail, bench, import stop cleanly); a second exits 130.
 */
export async function runMsg(argv: readonly string[], io: CommandIO, options: RunOptions = {}): Promise<number | undefined> {
  const [first, ...given] = argv;
  // `msg <command> --version` too (flags before a `--` only: after it they are the nodes' of `msg cluster`).
  const own = given.includes('--') ? given.slice(0, given.indexOf('--')) : given;
  if (first !== undefined && (first === 'serve' || first in COMMANDS) && (own.includes('--version') || own.includes('-V'))) {
    io.out(`msg ${msgVersion()}\n`);
    return CliExitCodes.OK;
  }
  // `-h` is `--help` for serve as for every command (the broker's own flag parser knows only --help).
  const rest = first === 'serve' ? given.map((arg, i) => (arg === '-h' && i < own.length ? '--help' : arg)) : given;
  if (first === 'serve') {
    await serve(rest, options.compat === true ? 'broker-server' : 'msg serve');
    return undefined;
  }
  if (options.compat === true && (first === undefined || !(first in COMMANDS))) {
    await serve(argv, 'broker-server');
    return undefined;
  }
  if (first === '--version' || first === '-V') {
    io.out(`msg ${msgVersion()}\n`);
    return CliExitCodes.OK;
  }
  if (first === '--help' || first === '-h' || first === 'help') {
    const topic = first === 'help' ? rest[0] : undefined;
    if (topic !== undefined && topic in COMMANDS) io.out(`${COMMANDS[topic]!.usage()}\n`);
    else io.out(`${msgUsage()}\n`);
    return CliExitCodes.OK;
  }
  if (first === undefined) {
    io.err.write(`${msgUsage()}\n`);
    return CliExitCodes.USAGE;
  }
  const command = COMMANDS[first];
  if (command === undefined) {
    io.err.write(`msg: unknown command ${JSON.stringify(first)}; commands: serve, ${Object.keys(COMMANDS).join(', ')} (msg --help)\n`);
    return CliExitCodes.USAGE;
  }
  try {
    return await command.run(rest, io);
  } catch (error) {
    if (io.signal.aborted && (isClientError(error, 'ABORTED') || (error as { name?: unknown }).name === 'AbortError')) {
      io.err.write(`msg ${first}: interrupted\n`);
      return 130;
    }
    io.err.write(`msg ${first}: ${describeError(error)}\n`);
    return cliExitCode(error);
  }
}

/** Whether `argv` runs a command that handles SIGINT/SIGTERM itself (`serve`, `cluster`; `main.js` without a subcommand). */
export function ownsSignals(argv: readonly string[], options: RunOptions = {}): boolean {
  const first = argv[0];
  if (first === 'serve' || (first !== undefined && COMMANDS[first]?.ownSignals === true)) return true;
  return options.compat === true && (first === undefined || !(first in COMMANDS));
}

/**
 * The process around {@link runMsg}: stdout/stderr/stdin/env of this
 * process, an uncaught error as exit 70, SIGINT/SIGTERM as an abort (a second
 * one exits 130) unless the command handles them itself, and the exit code.
 */
export async function runMsgProcess(argv: readonly string[], options: RunOptions = {}): Promise<void> {
  const name = options.compat === true ? 'broker-server' : 'msg';
  const fatal = (error: unknown): void => {
    process.stderr.write(`${name}: internal error: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exit(CliExitCodes.INTERNAL);
  };
  process.on('uncaughtException', fatal);
  process.on('unhandledRejection', fatal);
  // A reader that went away (`msg tail 7 | head`) is the end of the output, not an error.
  process.stdout.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    fatal(error);
  });
  const controller = new AbortController();
  // Every call in flight (bench: --concurrency of them) listens on it.
  setMaxListeners(0, controller.signal);
  if (!ownsSignals(argv, options)) {
    const onSignal = (signal: NodeJS.Signals): void => {
      if (controller.signal.aborted) process.exit(130);
      controller.abort(new Error(`${signal} received`));
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  }
  const code = await runMsg(argv, {
    out: (text) => void process.stdout.write(text),
    err: process.stderr,
    env: process.env,
    // Only `publish` reads stdin: touching process.stdin otherwise could hold a terminal.
    stdin: { [Symbol.asyncIterator]: () => process.stdin[Symbol.asyncIterator]() },
    signal: controller.signal,
  }, options);
  if (code !== undefined) {
    process.exitCode = code;
    // A command that is done leaves nothing running; should a socket linger, do not wait for it.
    setTimeout(() => process.exit(code), 2000).unref();
  }
}
