import type { ServerResponse } from 'node:http';
import type { TopicFrames } from './broker.js';

/** How a {@link pumpFrames} run ended. */
export type PumpEnd =
  /** The reader ended (non-streaming: end of topic); the response was ended cleanly. */
  | 'ended'
  /** The client went away; the response is gone. */
  | 'gone'
  /** {@link FramePump.stop} was called; the response was ended cleanly. */
  | 'stopped';

/**
 * Copies a reader's chunks into a response, one chunk at a time:
 * - backpressure: when `res.write()` returns false nothing more is pulled
 *   until the socket drains, so a client that does not read holds at most
 *   the socket's buffers plus one chunk;
 * - writes made in one tick are corked together and flushed on the next
 *   tick (one syscall for many small chunks, no added latency);
 * - a reader with `release(chunk)` gets each chunk back once its bytes are
 *   written, so it can read later chunks into the same memory;
 * - the reader is closed exactly once, however the pump ends;
 * - a reader error after the headers went out destroys the response (the
 *   client sees a broken chunked body, never a clean end) and rethrows.
 */
export class FramePump {
  readonly #res: ServerResponse;
  readonly #frames: TopicFrames;
  readonly #onBytes: (n: number) => void;
  readonly #onCloseError: (error: unknown) => void;
  #wake: (() => void) | undefined;
  #gone = false;
  #stopped = false;
  #corked = false;

  /**
   * @param onBytes called with the byte count of every chunk handed to the socket.
   * @param onCloseError called when the reader's `close()` fails; the answer is not affected.
   */
  constructor(res: ServerResponse, frames: TopicFrames, onBytes: (n: number) => void, onCloseError: (error: unknown) => void) {
    this.#res = res;
    this.#frames = frames;
    this.#onBytes = onBytes;
    this.#onCloseError = onCloseError;
  }

  /** Ends the stream cleanly at the next chunk boundary (shutdown). */
  stop(): void {
    this.#stopped = true;
    this.#wake?.();
  }

  /** Runs until the reader ends, the client goes away or {@link stop}. */
  async run(): Promise<PumpEnd> {
    const res = this.#res;
    const onClose = (): void => {
      this.#gone = true;
      this.#wake?.();
    };
    res.on('close', onClose);
    const iterator = this.#frames[Symbol.asyncIterator]();
    const frames = this.#frames;
    const release = frames.release === undefined ? undefined : (chunk: Uint8Array) => frames.release!(chunk);
    try {
      for (;;) {
        if (this.#gone || res.destroyed) return 'gone';
        if (this.#stopped) return this.#end('stopped');
        const next = iterator.next();
        const result = await this.#until(next);
        if (result === undefined) {
          // Woken by close or stop while the reader had nothing: never wait on it again.
          next.catch(() => undefined);
          continue;
        }
        if (result.done) return this.#end('ended');
        const chunk = result.value;
        if (chunk.byteLength === 0) continue;
        this.#cork();
        this.#onBytes(chunk.byteLength);
        const written =
          release === undefined
            ? res.write(chunk)
            : res.write(chunk, (error) => {
                if (error === null || error === undefined) release(chunk);
              });
        if (!written) {
          await this.#until(
            new Promise<void>((resolve) => {
              res.once('drain', resolve);
              this.#wakeCleanup = () => res.off('drain', resolve);
            }),
          );
          this.#wakeCleanup?.();
          this.#wakeCleanup = undefined;
        }
      }
    } catch (error) {
      if (!res.destroyed) res.destroy();
      throw error;
    } finally {
      res.off('close', onClose);
      this.#wake = undefined;
      try {
        await this.#frames.close();
      } catch (error) {
        this.#onCloseError(error);
      }
    }
  }

  #wakeCleanup: (() => void) | undefined;

  /** Awaits `promise`, or resolves `undefined` early on close or stop. */
  #until<T>(promise: Promise<T>): Promise<T | undefined> {
    if (this.#gone || this.#stopped) return Promise.resolve(undefined);
    return new Promise<T | undefined>((resolve, reject) => {
      this.#wake = () => resolve(undefined);
      promise.then(resolve, reject);
    });
  }

  #cork(): void {
    if (this.#corked) return;
    this.#corked = true;
    this.#res.cork();
    process.nextTick(() => {
      this.#corked = false;
      this.#res.uncork();
    });
  }

  #end(how: 'ended' | 'stopped'): PumpEnd {
    if (!this.#res.writableEnded && !this.#res.destroyed) this.#res.end();
    return how;
  }
}
