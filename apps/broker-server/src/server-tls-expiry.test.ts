import { describe, expect, it } from '@jest/globals';
import { copyFile, readFile } from 'node:fs/promises';
import { request, type RequestOptions } from 'node:https';
import { join } from 'node:path';
import { makeTempDir, makeTestPki } from '@msg/test-utils';
import type { TlsFiles } from './config.js';
import { createLogger } from './logger.js';
import { startServer } from './server.js';
import { configFor, memoryLogger } from '../test/server-config.js';

const DAY_MS = 86_400_000;

/** One GET over https on a fresh connection; resolves with status and body. */
function get(url: string, options: RequestOptions): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { agent: false, ...options, signal: AbortSignal.timeout(5000) }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }));
    });
    req.once('error', reject);
    req.end();
  });
}

const expiryWarnings = (lines: Record<string, unknown>[]): Record<string, unknown>[] => lines.filter((l) => l.level === 'warn' && /TLS certificate/.test(String(l.msg)));

describe('startServer: expired certificates', () => {
  it('refuses a client certificate that has expired under --tls-ca', async () => {
    const dir = await makeTempDir();
    const pki = makeTestPki(dir, 'c');
    const node = pki.issue('node');
    const fresh = pki.issue('fresh');
    const expired = pki.issueBetween('expired', new Date(Date.now() - 10 * DAY_MS), new Date(Date.now() - DAY_MS));
    const tls: TlsFiles = { cert: node.cert, key: node.key, ca: pki.ca };
    const server = await startServer(configFor(join(dir, 'data'), { tls }), createLogger('error', () => undefined));
    try {
      const ca = await readFile(pki.ca);
      expect((await get(`${server.url}/status`, { ca, cert: await readFile(fresh.cert), key: await readFile(fresh.key) })).status).toBe(200);
      await expect(get(`${server.url}/status`, { ca, cert: await readFile(expired.cert), key: await readFile(expired.key) })).rejects.toThrow();
    } finally {
      await server.close();
    }
  });

  it('reports an expired served certificate as past in the expiry gauge, and warns at startup and reload when it is expired or expires within 7 days', async () => {
    const dir = await makeTempDir();
    const pki = makeTestPki(dir, 'c');
    const expired = pki.issueBetween('expired', new Date(Date.now() - 10 * DAY_MS), new Date(Date.now() - DAY_MS));
    const soon = pki.issue('soon', 3);
    const later = pki.issue('later', 30);
    const files: TlsFiles = { cert: join(dir, 'live.crt'), key: join(dir, 'live.key'), ca: undefined };
    await copyFile(expired.cert, files.cert);
    await copyFile(expired.key, files.key);
    const { logger, lines } = memoryLogger();
    const server = await startServer(configFor(join(dir, 'data'), { tls: files }), logger);
    try {
      const metrics = await get(`${server.url}/metrics`, { rejectUnauthorized: false });
      const gauge = Number(/^msg_tls_certificate_expiry_seconds\{listener="client"\} (\d+)$/m.exec(metrics.body)?.[1]);
      expect(gauge).toBeLessThan(Date.now() / 1000 - 0.5 * 86400);
      expect(expiryWarnings(lines)).toEqual([expect.objectContaining({ msg: 'TLS certificate expired', listener: 'client', serial: expired.serial, flag: '--tls-cert' })]);

      await copyFile(soon.cert, files.cert);
      await copyFile(soon.key, files.key);
      await expect(server.reloadTls()).resolves.toBe(true);
      expect(expiryWarnings(lines).slice(1)).toEqual([expect.objectContaining({ msg: 'TLS certificate expires soon', listener: 'client', serial: soon.serial })]);

      await copyFile(later.cert, files.cert);
      await copyFile(later.key, files.key);
      await expect(server.reloadTls()).resolves.toBe(true);
      expect(expiryWarnings(lines)).toHaveLength(2);
    } finally {
      await server.close();
    }
  });
});
