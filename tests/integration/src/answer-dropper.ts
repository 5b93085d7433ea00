import { createServer, request as httpRequest, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

/** What the proxy does with one upstream answer: relay it, or drop it (the request was served; the caller never hears). */
export type AnswerVerdict = 'relay' | 'drop';

/** Options of {@link startAnswerDropper}. */
export interface AnswerDropperOptions {
  /** The broker every request is forwarded to (`http://127.0.0.1:PORT`). */
  upstream: string;
  /**
   * Called once the upstream answer of a request arrived whole (the broker has served it: a publish is
   * committed). `'drop'` destroys the caller's connection instead of answering. May be async, to do
   * something first (kill the broker, say). Default: relay everything.
   */
  onAnswer?: (req: IncomingMessage, status: number) => AnswerVerdict | Promise<AnswerVerdict>;
}

/** A running {@link startAnswerDropper} proxy. */
export interface AnswerDropper extends AsyncDisposable {
  /** `http://127.0.0.1:PORT` of the proxy. */
  readonly url: string;
  /** Answers dropped so far. */
  readonly dropped: number;
  /** Requests forwarded so far. */
  readonly forwarded: number;
  close(): Promise<void>;
}

/**
 * A fault-injecting HTTP proxy on 127.0.0.1 (port 0): forwards each request to `upstream` as it is, reads the
 * whole answer, then relays it or drops it as {@link AnswerDropperOptions.onAnswer} says. A dropped answer is
 * the fault exactly-once publish must survive: the write happened, and the client cannot know.
 */
export async function startAnswerDropper(options: AnswerDropperOptions): Promise<AnswerDropper> {
  const upstream = new URL(options.upstream);
  const sockets = new Set<Socket>();
  let dropped = 0;
  let forwarded = 0;
  const handle = (req: IncomingMessage, res: ServerResponse): void => {
    forwarded++;
    const out = httpRequest(
      { host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers: { ...req.headers, host: upstream.host }, agent: false },
      (answer) => {
        const chunks: Buffer[] = [];
        answer.on('data', (chunk: Buffer) => chunks.push(chunk));
        answer.on('end', () => {
          void (async () => {
            const verdict = (await options.onAnswer?.(req, answer.statusCode ?? 0)) ?? 'relay';
            if (verdict === 'drop') {
              dropped++;
              req.socket.destroy();
              return;
            }
            const headers = { ...answer.headers };
            delete headers['transfer-encoding'];
            res.writeHead(answer.statusCode ?? 502, { ...headers, 'content-length': String(Buffer.concat(chunks).byteLength) });
            res.end(Buffer.concat(chunks));
          })().catch(() => req.socket.destroy());
        });
        answer.on('error', () => req.socket.destroy());
      },
    );
    // The broker is gone (killed): the caller sees a reset, as it would without the proxy.
    out.on('error', () => req.socket.destroy());
    req.pipe(out);
  };
  const server: Server = createServer(handle);
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  const close = async (): Promise<void> => {
    for (const socket of sockets) socket.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  };
  return {
    url: `http://127.0.0.1:${port}`,
    get dropped() {
      return dropped;
    },
    get forwarded() {
      return forwarded;
    },
    close,
    [Symbol.asyncDispose]: close,
  };
}
