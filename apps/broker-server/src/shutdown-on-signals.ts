import type { ExitCode } from './exit-codes.js';
import { ExitCodes, exitCodeFor } from './exit-codes.js';
import type { JsonLogger } from './logger.js';

/** The part of `process` that {@link shutdownOnSignals} uses; inject a fake in tests. */
export interface SignalSource {
  on(event: 'SIGINT' | 'SIGTERM', listener: (signal: NodeJS.Signals) => void): unknown;
}

/** What {@link shutdownOnSignals} returns. */
export interface SignalShutdown {
  /**
   * Call once the server runs, with its graceful `close`. A signal that came
   * during startup then starts the shutdown at once.
   */
  started(close: () => Promise<void>): void;
  /**
   * Starts the same graceful shutdown as a signal, for a reason of the
   * server's own (e.g. this node was removed from the cluster), exiting with
   * `code` once closed. Ignored when a shutdown is already under way or the
   * server has not started.
   */
  stop(reason: string, code: ExitCode): void;
}

/**
 * Turns SIGINT/SIGTERM into a graceful shutdown: the first signal calls the
 * server's `close()` and then `exit(0)` (or `exit(exitCodeFor(error))` when
 * closing fails); a second signal calls `exit(70)` at once. A signal during
 * startup (before {@link SignalShutdown.started}) is remembered.
 */
export function shutdownOnSignals(source: SignalSource, logger: JsonLogger, exit: (code: ExitCode) => void): SignalShutdown {
  let received: NodeJS.Signals | undefined;
  let stopping = false;
  let close: (() => Promise<void>) | undefined;
  const begin = (signal: NodeJS.Signals, closeServer: () => Promise<void>): void => {
    logger.info('signal received: shutting down', { signal });
    closeAndExit(closeServer, ExitCodes.OK);
  };
  const closeAndExit = (closeServer: () => Promise<void>, code: ExitCode): void => {
    stopping = true;
    closeServer().then(
      () => exit(code),
      (error: unknown) => {
        logger.error('shutdown failed', { err: error });
        exit(exitCodeFor(error));
      },
    );
  };
  const onSignal = (signal: NodeJS.Signals): void => {
    if (received !== undefined) {
      logger.warn('second signal: exiting now', { signal });
      exit(ExitCodes.INTERNAL);
      return;
    }
    received = signal;
    if (close !== undefined && !stopping) begin(signal, close);
  };
  source.on('SIGINT', onSignal);
  source.on('SIGTERM', onSignal);
  return {
    started(closeServer) {
      close = closeServer;
      if (received !== undefined) begin(received, closeServer);
    },
    stop(reason, code) {
      if (close === undefined || stopping || received !== undefined) return;
      logger.warn('shutting down', { reason, exitCode: code });
      closeAndExit(close, code);
    },
  };
}
