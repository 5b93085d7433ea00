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
const STATE = Symbol('msg.http.body');

/** One body being read; kept on the request so the listeners need no closures (hot path). */
interface BodyState {
  limit: number;
  size: number;
  first: Buffer | undefined;
  chunks: Buffer[] | undefined;
  resolve: (body: Buffer) => void;
  reject: (error: Error) => void;
}

type Reading = IncomingMessage & { [STATE]?: BodyState | undefined };

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
  if (declared !== undefined && Number(declared) > limit) return Promise.reject(tooLarge(limit));
  if (req.readableEnded) return Promise.resolve(EMPTY);
  return new Promise<Buffer>((resolve, reject) => {
    (req as Reading)[STATE] = { limit, size: 0, first: undefined, chunks: undefined, resolve, reject };
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('close', onClose);
    req.on('error', onClose);
  });
}

function finish(req: Reading): BodyState {
  const state = req[STATE]!;
  req[STATE] = undefined;
  req.off('data', onData);
  req.off('end', onEnd);
  req.off('close', onClose);
  req.off('error', onClose);
  return state;
}

function onData(this: Reading, chunk: Buffer): void {
  const state = this[STATE];
  if (state === undefined) return;
  state.size += chunk.length;
  if (state.size > state.limit) {
    finish(this);
    this.pause();
    state.reject(tooLarge(state.limit));
    return;
  }
  if (state.first === undefined) state.first = chunk;
  else (state.chunks ??= [state.first]).push(chunk);
}

function onEnd(this: Reading): void {
  if (this[STATE] === undefined) return;
  const state = finish(this);
  state.resolve(state.chunks ? Buffer.concat(state.chunks, state.size) : (state.first ?? EMPTY));
}

function onClose(this: Reading): void {
  if (this[STATE] === undefined) return;
  finish(this).reject(new ClientGoneError());
}

function tooLarge(limit: number): BrokerError {
  return new BrokerError('BODY_TOO_LARGE', { message: `body too large: the limit is ${limit} bytes` });
}
