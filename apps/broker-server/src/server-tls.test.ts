import { describe, expect, it } from '@jest/globals';
import { copyFile, readFile, writeFile } from 'node:fs/promises';
import { request } from 'node:https';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import { makeTempDir, makeTestPki } from '@msg/test-utils';
import type { TlsFiles } from './config.js';
import { ExitCodes, exitCodeFor } from './exit-codes.js';
import { createLogger } from './logger.js';
import { startServer } from './server.js';
import { configFor, memoryLogger } from '../test/server-config.js';

interface Answer {
  status: number;
  body: string;
  /** The serial of the certificate the server presented. */
  serial: string;
}

/** One GET over https on a fresh connection. */
function get(url: string, tls: { ca: Buffer; cert?: Buffer; key?: Buffer }): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(url, { agent: false, ...tls, signal: AbortSignal.timeout(5000) }, (res) => {
      const serial = (res.socket as TLSSocket).getPeerCertificate().serialNumber;
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString(), serial }));
    });
    req.once('error', reject);
    req.end();
  });
}

describe('startServer: TLS', () => {
  it('serves the client API over https with the given certificate and advertises an https URL', async () => {
    const dir = await makeTempDir();
    const pki = makeTestPki(dir, 'c');
    const node = pki.issue('node');
    const server = await startServer(configFor(join(dir, 'data'), { tls: { cert: node.cert, key: node.key, ca: undefined } }), createLogger('error', () => undefined));
    try {
      expect(server.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
      const answer = await get(`${server.url}/status`, { ca: await readFile(pki.ca) });
      expect(answer).toMatchObject({ status: 200, serial: node.serial });
    } finally {
      await server.close();
    }
  });

  it('with a CA requires a client certificate it signed', async () => {
    const dir = await makeTempDir();
    const pki = makeTestPki(dir, 'c');
    const other = makeTestPki(dir, 'o');
    const node = pki.issue('node');
    const tls: TlsFiles = { cert: node.cert, key: node.key, ca: pki.ca };
    const server = await startServer(configFor(join(dir, 'data'), { tls, peerTls: tls }), createLogger('error', () => undefined));
    try {
      const ca = await readFile(pki.ca);
      const client = pki.issue('client');
      expect((await get(`${server.url}/status`, { ca, cert: await readFile(client.cert), key: await readFile(client.key) })).status).toBe(200);
      await expect(get(`${server.url}/status`, { ca })).rejects.toThrow();
      const stranger = other.issue('stranger');
      await expect(get(`${server.url}/status`, { ca, cert: await readFile(stranger.cert), key: await readFile(stranger.key) })).rejects.toThrow();
    } finally {
      await server.close();
    }
  });

  it('refuses an unreadable or invalid PEM file with a config error (64) naming the flag and the path', async () => {
    const dir = await makeTempDir();
    const pki = makeTestPki(dir, 'c');
    const node = pki.issue('node');
    const garbage = join(dir, 'garbage.pem');
    await writeFile(garbage, 'not a certificate\n');
    const quiet = createLogger('error', () => undefined);
    for (const [tls, flag, path] of [
      [{ cert: join(dir, 'missing.crt'), key: node.key, ca: undefined }, '--tls-cert', join(dir, 'missing.crt')],
      [{ cert: garbage, key: node.key, ca: undefined }, '--tls-cert', garbage],
      [{ cert: node.cert, key: garbage, ca: undefined }, '--tls-key', garbage],
      [{ cert: node.cert, key: pki.issue('other').key, ca: undefined }, '--tls-key', join(dir, 'other.key')],
      [{ cert: node.cert, key: node.key, ca: garbage }, '--tls-ca', garbage],
    ] as const) {
      const error = (await startServer(configFor(join(dir, 'data'), { tls }), quiet).catch((e: unknown) => e)) as Error;
      expect(exitCodeFor(error)).toBe(ExitCodes.USAGE);
      expect(error.message).toContain(flag);
      expect(error.message).toContain(path);
    }
  });

  it('reloadTls() serves a new certificate without a restart, keeps the old one when the new files are bad, and shows expiry in /metrics', async () => {
    const dir = await makeTempDir();
    const pki = makeTestPki(dir, 'c');
    const first = pki.issue('first', 2);
    const second = pki.issue('second', 30);
    const files: TlsFiles = { cert: join(dir, 'live.crt'), key: join(dir, 'live.key'), ca: undefined };
    await copyFile(first.cert, files.cert);
    await copyFile(first.key, files.key);
    const { logger, lines } = memoryLogger();
    const server = await startServer(configFor(join(dir, 'data'), { tls: files }), logger);
    try {
      const ca = await readFile(pki.ca);
      expect((await get(`${server.url}/status`, { ca })).serial).toBe(first.serial);
      const expiry = (body: string): number => Number(/^msg_tls_certificate_expiry_seconds\{listener="client"\} (\d+)$/m.exec(body)?.[1]);
      const before = expiry((await get(`${server.url}/metrics`, { ca })).body);
      expect(Math.abs(before - (Date.now() / 1000 + 2 * 86400))).toBeLessThan(600);

      await copyFile(second.cert, files.cert);
      await copyFile(second.key, files.key);
      await expect(server.reloadTls()).resolves.toBe(true);
      expect((await get(`${server.url}/status`, { ca })).serial).toBe(second.serial);
      expect(expiry((await get(`${server.url}/metrics`, { ca })).body) - before).toBeGreaterThan(27 * 86400);

      await writeFile(files.cert, 'garbage\n');
      await expect(server.reloadTls()).resolves.toBe(false);
      expect(lines.find((l) => l.level === 'error' && String(l.msg).includes('TLS reload failed'))).toBeDefined();
      expect((await get(`${server.url}/status`, { ca })).serial).toBe(second.serial);
    } finally {
      await server.close();
    }
  });
});
