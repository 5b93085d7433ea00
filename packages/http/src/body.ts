import type { IncomingMessage } from 'node:http';
import { BrokerError } from '@msg/wire';

/** Default cap on a request body: 16 MiB. */
export const DEFAULT_MAX_BODY_BYTES = 16 * 1024 * 1024;

/** Thrown by {@link readBody} when the client went away before the body ended. */
export class ClientGoneError extends Error {
  override readonly name = 'ClientGoneError';
  readonly code = 'CLIENT_GONE';
  constructor() {
    super('client went away before the request body ended');
  }
}

const EMPTY = Buffer.alloc(0);

/**
 * Reads a whole request body of at most `limit` bytes. A `Content-Length`
 * above the limit is rejected before a byte is read; a chunked body is
 * rejected as soon as it passes the limit, so no more than `limit` bytes are
 * ever held. Rejects with `BODY_TOO_LARGE` (the rest of the body is left
 * unread: answer with `Connection: close`), or {@link ClientGoneError} when
 * the client disconnects mid-body.
 */
export function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  const declared = req.headers['content-length'];
  if (declared !== undefined && Number(declared) > limit) {
    return Promise.reject(tooLarge(limit));
  }
  if (req.readableEnded) return Promise.resolve(EMPTY);
  return new Promise<Buffer>((resolve, reject) => {
    let chunks: Buffer[] | undefined;
    let first: Buffer | undefined;
    let size = 0;
    const cleanup = (): void => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('close', onClose);
      req.off('error', onClose);
    };
    const onData = (chunk: Buffer): void => {
      size += chunk.length;
      if (size > limit) {
        cleanup();
        req.pause();
        reject(tooLarge(limit));
        return;
      }
      if (first === undefined) first = chunk;
      else (chunks ??= [first]).push(chunk);
    };
    const onEnd = (): void => {
      cleanup();
      resolve(chunks ? Buffer.concat(chunks, size) : (first ?? EMPTY));
    };
    const onClose = (): void => {
      cleanup();
      reject(new ClientGoneError());
    };
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('close', onClose);
    req.on('error', onClose);
  });
}

function tooLarge(limit: number): BrokerError {
  return new BrokerError('BODY_TOO_LARGE', { message: `body too large: the limit is ${limit} bytes` });
}
