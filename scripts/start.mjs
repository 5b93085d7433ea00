// The last step of `npm start`: runs the broker (`msg serve`) and hands it each
// stop request exactly once, then exits with the broker's own exit code.
// Usage (from package.json, after `exec` so that no shell sits in between):
//   exec node scripts/start.mjs apps/broker-server/dist/cli/msg.js serve [broker args ...]
// (any <entry.js> [args ...] works: the entry is run with the args as they are).
//
// Why a launcher: npm runs a script through `sh -c` and forwards SIGINT and
// SIGTERM to that shell. On Ctrl-C the terminal signals the whole process group
// as well, so a broker run straight from the script got SIGINT twice (its
// second signal means "exit at once") or lost its shell under it, and npm,
// seeing the shell killed by SIGINT, killed itself the same way: exit 130
// while the broker was still shutting down. Here the broker runs in its own
// process group; only this launcher receives signals, passes the first of a
// burst on (the terminal's and npm's copy of one Ctrl-C arrive together), and
// waits for the broker to finish before exiting with its code.
import { spawn } from 'node:child_process';
import { constants } from 'node:os';

/** Signals that arrive within this many ms of a forwarded one are copies of it. */
const BURST_MS = 250;

const [entry, ...args] = process.argv.slice(2);
if (entry === undefined) {
  console.error('usage: node scripts/start.mjs <entry.js> [args ...]');
  process.exit(64);
}

// Should this launcher die without a word (SIGKILL), the broker must not run on
// unseen: its stdin is our pipe, and the end of it stops the broker gracefully.
const PARENT_GUARD =
  'data:text/javascript,process.stdin.on("end",()=>process.kill(process.pid,"SIGTERM")).on("data",()=>{}).unref()';

const broker = spawn(process.execPath, ['--import', PARENT_GUARD, entry, ...args], {
  // Its own process group: a Ctrl-C reaches the broker only through us, once.
  detached: true,
  stdio: ['pipe', 'inherit', 'inherit'],
});

let lastForwarded = -Infinity;
/** @param {NodeJS.Signals} received @param {NodeJS.Signals} forwarded */
function forward(received, forwarded) {
  process.on(received, () => {
    const now = performance.now();
    if (now - lastForwarded < BURST_MS) return;
    lastForwarded = now;
    if (broker.exitCode === null && broker.signalCode === null) broker.kill(forwarded);
  });
}
forward('SIGINT', 'SIGINT');
forward('SIGTERM', 'SIGTERM');
// The terminal went away: stop the broker gracefully rather than orphan it.
forward('SIGHUP', 'SIGTERM');

broker.once('error', (error) => {
  console.error(`cannot start ${entry}: ${error.message}`);
  process.exitCode = 70;
});
broker.once('exit', (code, signal) => {
  process.exitCode = code ?? 128 + (signal === null ? 0 : constants.signals[signal]);
});
