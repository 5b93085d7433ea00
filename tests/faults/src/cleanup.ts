/**
 * Last-resort cleanup on every exit path: synchronous callbacks that run on
 * `exit`, and on SIGINT/SIGTERM/SIGHUP before the signal is raised again (so
 * Ctrl-C still ends the process, with everything removed). Registered by
 * {@link Network} (namespaces, links, mounts) and by broker nodes (their
 * PIDs); each removes itself once the normal, asynchronous close ran.
 */

const callbacks = new Set<() => void>();
const SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;
let installed = false;

function runAll(): void {
  // Processes first (registered last), then the network they ran in.
  for (const callback of [...callbacks].reverse()) {
    callbacks.delete(callback);
    try {
      callback();
    } catch {
      // Best effort: the next callback still runs.
    }
  }
}

function onSignal(signal: NodeJS.Signals): void {
  runAll();
  for (const s of SIGNALS) process.removeListener(s, onSignal);
  process.removeListener('exit', runAll);
  installed = false;
  process.kill(process.pid, signal);
}

/** Registers `callback` to run synchronously if the process exits or is signalled first; returns its unregistration. */
export function onExit(callback: () => void): () => void {
  if (!installed) {
    installed = true;
    process.on('exit', runAll);
    for (const s of SIGNALS) process.on(s, onSignal);
  }
  callbacks.add(callback);
  return () => {
    callbacks.delete(callback);
  };
}
