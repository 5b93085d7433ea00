import { Agent as HttpAgent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import type { Duplex } from 'node:stream';
import { BrokerError } from '@msg/wire';
import got, { type Got, type Response } from 'got';
import { abortError, type ResponseHeaders } from './errors.js';

/** A whole answer of a broker. */
export interface HttpAnswer {
  status: number;
  headers: ResponseHeaders;
  body: Uint8Array;
}

/** An answer whose body is still streaming in. */
export interface HttpStream {
  status: number;
  headers: ResponseHeaders;
  /** The body in chunks, with backpressure: reading slowly slows the socket. */
  body: AsyncIterable<Uint8Array>;
  /** Reads at most `limit` bytes of the body (for error texts). */
  readSome(limit: number): Promise<Uint8Array>;
  /** Ends the request and frees its socket. Idempotent. */
  destroy(): void;
}

/** Options of one request. */
export interface RequestOptions {
  method: 'GET' | 'POST';
  url: URL;
  body?: Uint8Array;
  contentType?: string;
  /** Whole-request deadline in milliseconds (connect, send, answer, body). */
  timeoutMs: number;
  signal?: AbortSignal;
}

/** Options of a streaming GET. */
export interface StreamOptions {
  url: URL;
  /** Deadline for the answer's headers, in milliseconds. The body has none: a stream may be idle for ever. */
  responseTimeoutMs: number;
  signal?: AbortSignal;
}

/**
 * The client's HTTP layer: got over its own keep-alive agents, with no
 * automatic redirects or retries (the client does both itself). `close()`
 * destroys the agents, so no socket outlives the client.
 */
export class Transport {
  readonly #httpAgent = new HttpAgent({ keepAlive: true, scheduling: 'lifo' });
  readonly #httpsAgent = new HttpsAgent({ keepAlive: true, scheduling: 'lifo' });
  readonly #got: Got = got.extend({
    agent: { http: this.#httpAgent, https: this.#httpsAgent },
    followRedirect: false,
    throwHttpErrors: false,
    retry: { limit: 0 },
    decompress: true,
  });

  /** Sends one request and reads the whole answer. Transport failures are mapped by {@link transportError}. */
  async request(options: RequestOptions): Promise<HttpAnswer> {
    const body = options.body ?? new Uint8Array(0);
    try {
      const response: Response<Buffer> = await this.#got(options.url, {
        method: options.method,
        body: options.method === 'POST' ? Buffer.from(body.buffer, body.byteOffset, body.byteLength) : undefined,
        headers: options.contentType ? { 'content-type': options.contentType } : undefined,
        responseType: 'buffer',
        timeout: { request: options.timeoutMs },
        signal: options.signal,
      });
      return { status: response.statusCode, headers: response.headers, body: response.body };
    } catch (error) {
      throw transportError(error, options.url, options.signal);
    }
  }

  /** Starts a GET and resolves once the answer's headers are in. */
  stream(options: StreamOptions): Promise<HttpStream> {
    const duplex: Duplex = this.#got.stream(options.url, {
      method: 'GET',
      timeout: { response: options.responseTimeoutMs },
      signal: options.signal,
    });
    return new Promise<HttpStream>((resolve, reject) => {
      const onError = (error: unknown): void => {
        duplex.destroy();
        reject(transportError(error, options.url, options.signal));
      };
      duplex.once('error', onError);
      duplex.once('response', (response: { statusCode: number; headers: ResponseHeaders }) => {
        duplex.off('error', onError);
        // Keep an error listener so an error while nobody reads is not unhandled;
        // the reader sees it through iteration.
        duplex.on('error', () => undefined);
        resolve(wrapStream(duplex, response.statusCode, response.headers, options.url, options.signal));
      });
    });
  }

  /** Destroys every pooled and active socket. */
  close(): void {
    this.#httpAgent.destroy();
    this.#httpsAgent.destroy();
  }
}

function wrapStream(duplex: Duplex, status: number, headers: ResponseHeaders, url: URL, signal: AbortSignal | undefined): HttpStream {
  return {
    status,
    headers,
    body: {
      async *[Symbol.asyncIterator]() {
        try {
          for await (const chunk of duplex) yield chunk as Uint8Array;
        } catch (error) {
          throw transportError(error, url, signal);
        } finally {
          duplex.destroy();
        }
      },
    },
    async readSome(limit) {
      const parts: Uint8Array[] = [];
      let size = 0;
      try {
        for await (const chunk of duplex) {
          parts.push(chunk as Uint8Array);
          size += (chunk as Uint8Array).byteLength;
          if (size >= limit) break;
        }
      } catch {
        // An error body cut short is still an error answer.
      } finally {
        duplex.destroy();
      }
      return Buffer.concat(parts).subarray(0, limit);
    },
    destroy() {
      duplex.destroy();
    },
  };
}

/**
 * Maps a failure of the HTTP layer: an aborted `signal` is `ABORTED`
 * (ClientError); a timeout is `TIMEOUT` and anything else (refused, reset,
 * DNS, ...) `UNAVAILABLE`, both retriable BrokerErrors naming the URL.
 */
export function transportError(error: unknown, url: URL, signal: AbortSignal | undefined): Error {
  if (signal?.aborted) return abortError(signal);
  if (error instanceof BrokerError) return error;
  const code = (error as { code?: unknown }).code;
  const name = (error as { name?: unknown }).name;
  if (name === 'TimeoutError' || code === 'ETIMEDOUT') {
    return new BrokerError('TIMEOUT', { message: `timeout: ${url.origin}: ${(error as Error).message}`, cause: error });
  }
  return new BrokerError('UNAVAILABLE', {
    message: `unavailable: ${url.origin}: ${typeof code === 'string' ? code : (error as Error).message}`,
    cause: error,
  });
}
