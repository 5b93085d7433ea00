import { describe, expect, it } from '@jest/globals';
import { readFile, writeFile } from 'node:fs/promises';
import { request } from 'node:https';
import { join } from 'node:path';
import { makeTempDir, makeTestPki } from '@msg/test-utils';
import type { TlsFiles } from './config.js';
import { createLogger } from './logger.js';
import { startServer } from './server.js';
import { configFor } from '../test/server-config.js';

/** POSTs one message to `topic` over https on a fresh connection, with no Authorization header; resolves with the status. */
function publish(url: string, topic: number, tls: { ca: Buffer; cert: Buffer; key: Buffer }): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(`${url}/messaging/messages?type=1&topicID=${topic}`, { method: 'POST', agent: false, ...tls, signal: AbortSignal.timeout(5000) }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.once('error', reject);
    req.end('hello');
  });
}

describe('startServer: client-certificate identities (--tls-ca with --auth-file)', () => {
  it('authenticates a client certificate by its subject (no bearer token) and applies that identity’s permissions', async () => {
    const dir = await makeTempDir();
    const pki = makeTestPki(dir, 'c');
    const node = pki.issue('node');
    const svcA = pki.issue('svc-a');
    const stranger = pki.issue('svc-z');
    const authFile = join(dir, 'auth.json');
    await writeFile(authFile, JSON.stringify({ identities: [{ name: 'svc-a', certSubject: 'CN=svc-a', permissions: { publish: [1] } }] }));
    const tls: TlsFiles = { cert: node.cert, key: node.key, ca: pki.ca };
    const server = await startServer(configFor(join(dir, 'data'), { tls, authFile }), createLogger('error', () => undefined));
    try {
      const ca = await readFile(pki.ca);
      const asA = { ca, cert: await readFile(svcA.cert), key: await readFile(svcA.key) };
      expect(await publish(server.url, 1, asA)).toBe(200);
      expect(await publish(server.url, 2, asA)).toBe(403);
      // A certificate the CA signed whose subject no identity names is not authenticated.
      expect(await publish(server.url, 1, { ca, cert: await readFile(stranger.cert), key: await readFile(stranger.key) })).toBe(401);
    } finally {
      await server.close();
    }
  });
});
