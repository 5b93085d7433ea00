import type { IncomingMessage, ServerResponse } from 'node:http';
import { PEER_URL_HEADER } from 'raft-ts';

/** A node-style request listener. */
export type Listener = (req: IncomingMessage, res: ServerResponse) => void;

/** True when `url` (a request target) is under `/raft`. */
export function isRaftPath(url: string | undefined): boolean {
  if (url === undefined) return false;
  return url === '/raft' || url.startsWith('/raft/') || url.startsWith('/raft?');
}

function notFound(res: ServerResponse, headers: Record<string, string> = {}): void {
  const body = 'not found\n';
  res.writeHead(404, {
    'content-type': 'text/plain; charset=utf-8',
    'content-length': String(Buffer.byteLength(body)),
    'x-broker-error': 'not found',
    'x-broker-error-code': 'NOT_FOUND',
    ...headers,
  });
  res.end(body);
}

/**
 * The client listener of a node that serves raft on a separate peer
 * listener: `/raft/*` is answered 404, naming the peer listener's URL in
 * raft-ts's {@link PEER_URL_HEADER} (where a peer's transport then sends its
 * RPCs); everything else goes to `serve`.
 */
export function clientListener(serve: Listener, peerURL: string): Listener {
  return (req, res) => {
    if (!isRaftPath(req.url)) return serve(req, res);
    req.resume();
    notFound(res, { [PEER_URL_HEADER]: peerURL });
  };
}

/** The peer listener: only `/raft/*` goes to `serve`; anything else is 404. */
export function peerListener(serve: Listener): Listener {
  return (req, res) => {
    if (isRaftPath(req.url)) return serve(req, res);
    req.resume();
    notFound(res);
  };
}
