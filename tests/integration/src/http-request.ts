import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { request as httpsRequest } from 'node:https';

/** A complete HTTP answer. */
export interface HttpAnswer {
  status: number;
  headers: IncomingHttpHeaders;
  /** The whole body. */
  body: Buffer;
}

/** Options of {@link request}. */
export interface RequestOptions {
  /** Default `'GET'`. */
  method?: string;
  /** Sent as is, with a `Content-Length`. */
  body?: Uint8Array | string;
  headers?: Record<string, string>;
  /** Deadline of the whole exchange in milliseconds. Default 10000. */
  timeoutMs?: number;
  /** For `https:` URLs: the CA to verify the server with, and a client certificate and key (mutual TLS). */
  tls?: RequestTls;
}

/** PEM material of an `https:` request. */
export interface RequestTls {
  ca?: string | Buffer;
  cert?: string | Buffer;
  key?: string | Buffer;
}

/**
 * One HTTP/1.1 request on a fresh connection (no agent, no keep-alive, no
 * redirect following): resolves with the status, headers and the whole body;
 * rejects on a connection error or after `timeoutMs`.
 */
export function request(url: string | URL, options: RequestOptions = {}): Promise<HttpAnswer> {
  const { method = 'GET', body, headers = {}, timeoutMs = 10_000, tls = {} } = options;
  const https = new URL(url).protocol === 'https:';
  return new Promise<HttpAnswer>((resolve, reject) => {
    const bytes = body === undefined ? undefined : typeof body === 'string' ? Buffer.from(body) : body;
    const req = (https ? httpsRequest : httpRequest)(url, {
      ...(https ? tls : {}),
      method,
      agent: false,
      headers: bytes === undefined ? headers : { 'Content-Length': String(bytes.byteLength), ...headers },
      signal: AbortSignal.timeout(timeoutMs),
    });
    req.once('error', reject);
    req.once('response', (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.once('error', reject);
      res.once('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
    });
    req.end(bytes);
  });
}

/** Options of {@link readStream}. */
export interface ReadStreamOptions {
  /** Stop once at least this many bytes arrived. */
  untilBytes: number;
  /** Give up (rejecting) after this many milliseconds. Default 10000. */
  timeoutMs?: number;
  /** Called once the response headers arrived (the stream is open). */
  onOpen?: (status: number, headers: IncomingHttpHeaders) => void;
}

/**
 * GETs `url` and collects body bytes until at least `untilBytes` arrived, then
 * closes the connection: for streaming answers that never end on their own.
 * Rejects if the answer is not 200, ends early, or time runs out.
 */
export function readStream(url: string | URL, options: ReadStreamOptions): Promise<Buffer> {
  const { untilBytes, timeoutMs = 10_000, onOpen } = options;
  return new Promise<Buffer>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let received = 0;
    let done = false;
    const finish = (error: Error | undefined): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      req.destroy();
      if (error) reject(error);
      else resolve(Buffer.concat(chunks));
    };
    const timer = setTimeout(() => finish(new Error(`stream: ${received} of ${untilBytes} bytes after ${timeoutMs} ms`)), timeoutMs);
    const req = httpRequest(url, { agent: false });
    req.once('error', (error) => finish(error));
    req.once('response', (res) => {
      if (res.statusCode !== 200) {
        finish(new Error(`stream: status ${res.statusCode} (${String(res.headers['x-broker-error'])})`));
        return;
      }
      onOpen?.(res.statusCode, res.headers);
      res.on('data', (chunk: Buffer) => {
        chunks.push(chunk);
        received += chunk.byteLength;
        if (received >= untilBytes) finish(undefined);
      });
      res.once('end', () => finish(new Error(`stream: ended after ${received} of ${untilBytes} bytes`)));
    });
    req.end();
  });
}

/** A GET whose body is collected as it arrives, until {@link CollectedStream.close}. */
export interface CollectedStream {
  /** Resolves when the answer's headers arrived with status 200; rejects otherwise. */
  readonly opened: Promise<void>;
  /** Body bytes received so far. */
  readonly received: number;
  /** True once the body ended or failed (a streaming answer should not, until closed). */
  readonly ended: boolean;
  /** All body bytes received so far, in one buffer. */
  bytes(): Buffer;
  /** Closes the connection. */
  close(): void;
}

/** GETs `url` (e.g. a streaming topic) and collects its body in memory as it arrives. */
export function collectStream(url: string | URL): CollectedStream {
  const chunks: Buffer[] = [];
  let received = 0;
  let ended = false;
  const req = httpRequest(url, { agent: false });
  const opened = new Promise<void>((resolve, reject) => {
    req.once('error', (error) => {
      ended = true;
      reject(error);
    });
    req.once('response', (res) => {
      if (res.statusCode !== 200) {
        ended = true;
        req.destroy();
        reject(new Error(`stream: status ${res.statusCode} (${String(res.headers['x-broker-error'])})`));
        return;
      }
      res.on('data', (chunk: Buffer) => {
        chunks.push(chunk);
        received += chunk.byteLength;
      });
      res.once('end', () => (ended = true));
      res.once('error', () => (ended = true));
      resolve();
    });
  });
  // Failures after the answer started show as `ended`; before it, through `opened`.
  opened.catch(() => undefined);
  req.end();
  return {
    opened,
    get received() {
      return received;
    },
    get ended() {
      return ended;
    },
    bytes: () => Buffer.concat(chunks),
    close: () => req.destroy(),
  };
}
