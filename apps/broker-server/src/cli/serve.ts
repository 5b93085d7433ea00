// `msg serve`: the broker. Parses the command line, starts a node, and turns
// signals and errors into a graceful shutdown and an exit code (it owns the process).
import { hashToken } from '@msg/http';
import { ConfigError, loadConfig } from '../config.js';
import { ExitCodes, exitCodeFor } from '../exit-codes.js';
import { joinTokenPath, readJoinTokenFile } from '../join-token-file.js';
import { createLogger } from '../logger.js';
import { startServer } from '../server.js';
import { shutdownOnSignals } from '../shutdown-on-signals.js';
import { watchRaft } from '../watch-raft.js';

/** What `msg serve --help` prints after the flags: the other subcommands, signals, joining and the exit codes. */
export const SERVE_HELP_TAIL = `Other subcommands of msg (msg --help lists them all):
  leave --member <url> --cluster <url>   remove a node from the cluster (see: msg leave --help)
  status, topics, tail, publish, cluster, import, bench

Signals: SIGINT/SIGTERM shut down gracefully (exit 0); a second signal exits at once (70).
SIGHUP reloads the TLS certificates and keys (a file that fails to load keeps the old ones, logged).
A running node removed from the cluster (leave) shuts down gracefully by itself (exit 0);
started again on that data dir it exits 78;
one whose raft log or state machine failed shuts down with 74 (I/O) or 70.

Joining: a node that bootstraps a cluster writes its join token to <data dir>/join-token
(mode 0600; --print-join-token prints it); a node started with --join needs it as
--join-token (or MSG_JOIN_TOKEN, or the config key joinToken) and keeps it.

Exit codes: 0 ok, 64 usage or config error (the message names the setting),
69 listen address in use or unavailable, or no --join URL accepted the node,
70 internal error, 74 I/O error or corrupt data on open (the message names the file),
75 the data dir is in use by another live process (the message names the dir and its PID),
77 the cluster refused the join token,
78 the data dir's node was removed from the cluster (start with a new, empty data dir).
64 also: --listen/--advertise-url would give the data dir's node another URL than
the one it recorded in <data dir>/node.json (see the README: moving a node).`;

/**
 * Runs the broker with the command-line `argv` (flags, no subcommand) and
 * the process environment: resolves once it serves (the process then lives
 * until a signal or a failure stops it, with the exit codes of
 * {@link SERVE_HELP_TAIL}), or after `--help`, `--hash-token` and
 * `--print-join-token`. Exits the process itself on a usage error or a failed start;
 * `name` starts its error lines (`msg serve`, or `broker-server` for `main.js`).
 */
export async function serve(argv: readonly string[], name: string): Promise<void> {
  const write = (text: string): void => void process.stderr.write(text);
  let loaded;
  try {
    loaded = await loadConfig([...argv], process.env);
  } catch (error) {
    if (error instanceof ConfigError) {
      write(`${name}: invalid ${error.message}\n`);
      process.exit(ExitCodes.USAGE);
    }
    throw error;
  }
  if (loaded.kind === 'help') {
    const usage = name === 'msg serve' ? loaded.text.replace(/^Usage: broker-server/, 'Usage: msg serve') : loaded.text;
    process.stdout.write(`${usage}\n\n${SERVE_HELP_TAIL}\n`);
    return;
  }
  if (loaded.kind === 'hash-token') {
    // Only the hash goes out: the token is not logged, echoed or kept.
    process.stdout.write(`${hashToken(loaded.token)}\n`);
    return;
  }
  if (loaded.kind === 'print-join-token') {
    let stored;
    try {
      stored = await readJoinTokenFile(loaded.dataDir);
    } catch (error) {
      write(`${name}: ${(error as Error).message}\n`);
      process.exit(exitCodeFor(error));
    }
    if (stored === undefined) {
      write(`${name}: no join token at ${joinTokenPath(loaded.dataDir)}: a node writes one when it bootstraps a cluster (start it first)\n`);
      process.exit(ExitCodes.USAGE);
    }
    process.stdout.write(`${stored.token.text}\n`);
    return;
  }
  // Readable lines on a terminal, JSON lines otherwise (files, pipes, supervisors).
  const logger = createLogger(loaded.config.logLevel, { stream: process.stderr });

  // A signal during startup stops the process once startup settles.
  const signals = shutdownOnSignals(process, logger, (code) => process.exit(code));

  // SIGHUP reloads the TLS certificates and keys (a bad file keeps the current ones); during startup it is ignored.
  const hangup: { reload?: () => Promise<boolean> } = {};
  process.on('SIGHUP', () => {
    if (hangup.reload === undefined) logger.warn('SIGHUP during startup ignored');
    else void hangup.reload();
  });

  let server;
  try {
    server = await startServer(loaded.config, logger);
  } catch (error) {
    const code = exitCodeFor(error);
    logger.error('startup failed', { err: error, exitCode: code });
    write(`${name}: ${(error as Error).message}\n`);
    process.exit(code);
  }
  signals.started(() => server.close());
  hangup.reload = () => server.reloadTls();
  // A node removed from the cluster stops (exit 0) rather than serve topics that no longer grow; a node
  // whose raft or broker failed (a disk error) stops with the failure's exit code so that a supervisor restarts it.
  // Raft's state comes as a stream (no polling); the broker has no failure event, so its `failure` is read every 250 ms.
  watchRaft(
    server.raft,
    (end) => {
      if (end.state === 'removed') signals.stop('removed from the cluster', ExitCodes.OK);
      else signals.stop(`node failed: ${end.error instanceof Error ? end.error.message : String(end.error)}`, exitCodeFor(end.error));
    },
    { stateMachine: server.broker, pollMs: 250 },
  );
}
