import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { connect } from 'node:net';

/** An answer as a client sees it. */
export interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

/** One HTTP request through `node:http` (no agent: a fresh connection), bounded by `timeoutMs`. */
export function request(
  url: string,
  options: { method?: string; body?: Uint8Array | string; headers?: Record<string, string>; timeoutMs?: number } = {},
): Promise<Answer> {
  return new Promise<Answer>((resolve, reject) => {
    const req = httpRequest(url, { method: options.method ?? 'GET', headers: options.headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => {
        clearTimeout(timer);
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) });
      });
      res.on('error', (error) => {
        clearTimeout(timer);
        reject(error);
      });
    });
    const timer = setTimeout(() => req.destroy(new Error(`request to ${url} timed out`)), options.timeoutMs ?? 5000);
    req.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    req.end(options.body);
  });
}

/**
 * Sends `bytes` on a fresh TCP connection and collects everything the server
 * sends until it closes the connection (send `Connection: close`), bounded by
 * `timeoutMs`. With `halfClose` our side ends after the bytes, so the server
 * sees the end of a partial request.
 */
export function rawExchange(port: number, bytes: string | Uint8Array, timeoutMs = 5000, halfClose = false): Promise<Buffer> {
  return new Promise<Buffer>((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`raw exchange timed out; got ${JSON.stringify(Buffer.concat(chunks).toString('latin1'))}`));
    }, timeoutMs);
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(Buffer.concat(chunks));
    });
    if (halfClose) socket.end(bytes);
    else socket.write(bytes);
  });
}

/** Splits a raw HTTP/1.1 answer into status line, headers (lower-case names) and raw body. */
export function parseRaw(raw: Buffer): { statusLine: string; headers: Map<string, string>; rawHeaders: string[]; body: Buffer } {
  const end = raw.indexOf('\r\n\r\n');
  if (end < 0) throw new Error(`no header end in ${JSON.stringify(raw.toString('latin1'))}`);
  const lines = raw.subarray(0, end).toString('latin1').split('\r\n');
  const statusLine = lines.shift()!;
  const headers = new Map<string, string>();
  for (const line of lines) {
    const colon = line.indexOf(':');
    headers.set(line.slice(0, colon).toLowerCase(), line.slice(colon + 1).trim());
  }
  return { statusLine, headers, rawHeaders: lines, body: raw.subarray(end + 4) };
}

/** Decodes a chunked transfer-encoded body; throws on a body that does not end with the last chunk. */
export function dechunk(body: Buffer): Buffer {
  const out: Buffer[] = [];
  let pos = 0;
  for (let guard = 0; guard < 1_000_000; guard++) {
    const lineEnd = body.indexOf('\r\n', pos);
    if (lineEnd < 0) throw new Error('truncated chunked body');
    const size = parseInt(body.subarray(pos, lineEnd).toString('latin1'), 16);
    if (Number.isNaN(size)) throw new Error('bad chunk size');
    pos = lineEnd + 2;
    if (size === 0) return Buffer.concat(out);
    out.push(body.subarray(pos, pos + size));
    pos += size + 2;
  }
  throw new Error('too many chunks');
}
