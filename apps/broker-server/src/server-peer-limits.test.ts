import { describe, expect, it } from '@jest/globals';
import { connect } from 'node:net';
import { makeTempDir } from '@msg/test-utils';
import { createLogger } from './logger.js';
import { startServer } from './server.js';
import { configFor } from '../test/server-config.js';

/** Opens a connection to `port`, sends the start of a request's headers and never the rest; resolves with the ms until the server closed it, or `undefined` when it did not within `withinMs`. */
function slowHeaders(port: number, withinMs: number): Promise<number | undefined> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    const started = Date.now();
    const timer = setTimeout(() => {
      socket.destroy();
      resolve(undefined);
    }, withinMs);
    socket.once('connect', () => socket.write('POST /raft/vote HTTP/1.1\r\nHost: 127.0.0.1\r\n'));
    socket.on('data', () => undefined);
    socket.on('error', () => undefined);
    socket.once('close', () => {
      clearTimeout(timer);
      resolve(Date.now() - started);
    });
  });
}

describe('startServer: the peer listener’s limits', () => {
  it('closes a connection to the peer listener that does not finish its headers within the headers timeout', async () => {
    const dir = await makeTempDir();
    const server = await startServer(
      configFor(dir, { peerListen: { host: '127.0.0.1', port: 0 }, headersTimeoutMs: 300, requestTimeoutMs: 1000 }),
      createLogger('error', () => undefined),
    );
    try {
      const peerPort = Number(new URL(server.peerURL!).port);
      const closedAfter = await slowHeaders(peerPort, 4000);
      expect(closedAfter).toBeDefined();
      expect(closedAfter!).toBeGreaterThanOrEqual(250);
      // And the client listener's limit still holds.
      expect(await slowHeaders(server.port, 4000)).toBeDefined();
    } finally {
      await server.close();
    }
  });
});
