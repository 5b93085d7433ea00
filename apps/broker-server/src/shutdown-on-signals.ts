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
}

/**
 * Turns SIGINT/SIGTERM into a graceful shutdown: the first signal calls the
 * server's `close()` and then `exit(0)` (or `exit(exitCodeFor(error))` when
 * closing fails); a second signal calls `exit(70)` at once. A signal during
 * startup (before {@link SignalShutdown.started}) is remembered.
 */
export function shutdownOnSignals(source: SignalSource, logger: JsonLogger, exit: (code: ExitCode) => void): SignalShutdown {
  let received: NodeJS.Signals | undefined;
  let close: (() => Promise<void>) | undefined;
  const begin = (signal: NodeJS.Signals, closeServer: () => Promise<void>): void => {
    logger.info('signal received: shutting down', { signal });
    closeServer().then(
      () => exit(ExitCodes.OK),
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
    if (close !== undefined) begin(signal, close);
  };
  source.on('SIGINT', onSignal);
  source.on('SIGTERM', onSignal);
  return {
    started(closeServer) {
      close = closeServer;
      if (received !== undefined) begin(received, closeServer);
    },
  };
}
