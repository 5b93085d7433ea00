import { Agent as HttpAgent, request as httpRequest, type IncomingMessage, type OutgoingHttpHeaders } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { createSecureContext } from 'node:tls';
import type { Duplex } from 'node:stream';
import { brotliDecompressSync, gunzipSync, inflateSync } from 'node:zlib';
import { BrokerError } from '@msg/wire';
import got, { type Got } from 'got';
import { abortError, ClientError, type ResponseHeaders } from './errors.js';

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

/** PEM material for `https://` brokers (strings or buffers). */
export interface ClientTls {
  /** The CA(s) that sign the brokers' certificates. Default: Node's trusted CAs. */
  ca?: string | Buffer | readonly (string | Buffer)[];
  /** A client certificate, for brokers that require one (`--tls-ca`); needs `key`. */
  cert?: string | Buffer;
  /** The private key of `cert`. */
  key?: string | Buffer;
}

/** Options of one request. */
export interface RequestOptions {
  method: 'GET' | 'POST';
  /** The broker: only the scheme, host and port count. */
  url: URL;
  /** Path and query string, already encoded (`/messaging/messages?type=1&topicID=2`). */
  path: string;
  body?: Uint8Array;
  contentType?: string;
  /** Extra request headers (`authorization`). */
  headers?: Readonly<Record<string, string>> | undefined;
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
  /** Extra request headers (`authorization`). */
  headers?: Readonly<Record<string, string>> | undefined;
}

/**
 * The client's HTTP layer over its own keep-alive agents, with no automatic
 * redirects or retries (the client does both itself). Whole requests
 * (publish, ping, heartbeat) go straight through `node:http`: they are the
 * hot path of a publisher, and a general-purpose HTTP client costs several
 * times the CPU of the request itself. Streams go through got. `close()`
 * destroys the agents, so no socket outlives the client.
 */
export class Transport {
  readonly #httpAgent = new HttpAgent({ keepAlive: true, scheduling: 'lifo' });
  readonly #httpsAgent: HttpsAgent;
  readonly #got: Got;

  /**
   * With `tls`, `https://` requests verify brokers with `tls.ca` and present
   * `tls.cert` and `tls.key`.
   * @throws ClientError `INVALID_OPTIONS` when the PEM material does not parse (never shown).
   */
  constructor(options: { tls?: ClientTls | undefined } = {}) {
    const { ca, cert, key } = options.tls ?? {};
    const pem = { ca: ca as string | Buffer | (string | Buffer)[] | undefined, cert, key };
    try {
      createSecureContext(pem);
    } catch (error) {
      throw new ClientError('INVALID_OPTIONS', { message: `invalid options: tls: ${(error as Error).message}` });
    }
    this.#httpsAgent = new HttpsAgent({ keepAlive: true, scheduling: 'lifo', ...pem });
    this.#got = got.extend({
      agent: { http: this.#httpAgent, https: this.#httpsAgent },
      https: { certificateAuthority: pem.ca, certificate: cert, key },
      followRedirect: false,
      throwHttpErrors: false,
      retry: { limit: 0 },
      decompress: true,
    });
  }

  /**
   * Sends one request and reads the whole answer (a gzip, deflate or br body
   * is decompressed). Transport failures are mapped by {@link transportError};
   * past `timeoutMs` the request is destroyed and the call fails with `TIMEOUT`.
   */
  request(options: RequestOptions): Promise<HttpAnswer> {
    const { url, signal } = options;
    if (signal?.aborted) return Promise.reject(abortError(signal));
    const body = options.method === 'POST' ? (options.body ?? new Uint8Array(0)) : undefined;
    const headers: OutgoingHttpHeaders = { ...options.headers, 'accept-encoding': 'gzip, deflate, br' };
    if (body !== undefined) headers['content-length'] = body.byteLength;
    if (options.contentType) headers['content-type'] = options.contentType;
    const https = url.protocol === 'https:';
    const hostname = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
    const port = url.port === '' ? (https ? 443 : 80) : Number(url.port);
    return new Promise<HttpAnswer>((resolve, reject) => {
      let finished = false;
      const finish = (error: unknown, answer?: HttpAnswer): void => {
        if (finished) return;
        finished = true;
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        if (answer) resolve(answer);
        else {
          req.destroy();
          reject(transportError(error, url, signal));
        }
      };
      const onAbort = (): void => finish(signal?.reason);
      const req = (https ? httpsRequest : httpRequest)(
        { protocol: url.protocol, hostname, port, path: options.path, method: options.method, headers, agent: https ? this.#httpsAgent : this.#httpAgent },
        (res) => readAnswer(res, finish),
      );
      req.on('error', (error) => finish(error));
      const timer = setTimeout(() => {
        const error = new Error(`request took longer than ${options.timeoutMs} ms`);
        (error as Error & { code: string }).code = 'ETIMEDOUT';
        finish(error);
      }, options.timeoutMs);
      signal?.addEventListener('abort', onAbort, { once: true });
      req.end(body);
    });
  }

  /** Starts a GET and resolves once the answer's headers are in. */
  stream(options: StreamOptions): Promise<HttpStream> {
    const duplex: Duplex = this.#got.stream(options.url, {
      method: 'GET',
      timeout: { response: options.responseTimeoutMs },
      signal: options.signal,
      ...(options.headers === undefined ? {} : { headers: { ...options.headers } }),
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

function readAnswer(res: IncomingMessage, finish: (error: unknown, answer?: HttpAnswer) => void): void {
  const parts: Buffer[] = [];
  res.on('data', (chunk: Buffer) => parts.push(chunk));
  res.on('error', (error) => finish(error));
  // A connection lost mid-answer: the body is incomplete ('end' never comes).
  res.on('close', () => {
    if (!res.complete) finish(Object.assign(new Error('answer cut short'), { code: 'ECONNRESET' }));
  });
  res.on('end', () => {
    let body: Buffer = parts.length === 1 ? parts[0]! : Buffer.concat(parts);
    try {
      body = decompress(body, res.headers['content-encoding']);
    } catch (error) {
      finish(error);
      return;
    }
    finish(undefined, { status: res.statusCode ?? 0, headers: res.headers, body });
  });
}

function decompress(body: Buffer, encoding: string | undefined): Buffer {
  if (body.byteLength === 0 || encoding === undefined) return body;
  switch (encoding.trim().toLowerCase()) {
    case 'gzip':
    case 'x-gzip':
      return gunzipSync(body);
    case 'deflate':
      return inflateSync(body);
    case 'br':
      return brotliDecompressSync(body);
    default:
      return body;
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
