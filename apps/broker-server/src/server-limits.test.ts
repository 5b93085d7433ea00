import { describe, expect, it } from '@jest/globals';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { connect } from 'node:net';
import { readFile } from 'node:fs/promises';
import { makeTempDir } from '@msg/test-utils';
import { fitToFileLimit } from '@msg/http';
import type { ServerConfig } from './config.js';
import { startServer, type RunningServer } from './server.js';
import { configFor, memoryLogger } from '../test/server-config.js';

const MiB = 1024 * 1024;

/** Starts a node with `overrides`, runs `body`, closes the node. */
async function withServer(overrides: Partial<ServerConfig>, body: (server: RunningServer, lines: Record<string, unknown>[]) => Promise<void>): Promise<void> {
  const { logger, lines } = memoryLogger();
  const server = await startServer(configFor(await makeTempDir(), overrides), logger);
  try {
    await body(server, lines);
  } finally {
    await server.close();
  }
}

/** POSTs `size` zero bytes to `url` on a fresh connection; resolves with the status (0 when the server cut the connection). */
function postZeros(url: string, size: number): Promise<number> {
  return new Promise((resolve) => {
    const req = httpRequest(url, { method: 'POST', agent: false, headers: { 'content-length': String(size), 'content-type': 'application/octet-stream' } });
    req.once('response', (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.once('error', () => resolve(0));
    req.end(Buffer.alloc(size));
  });
}

function openStream(url: string): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(`${url}/messaging/messages?topicID=1&index=0&streaming=true`, { agent: false });
    req.once('error', reject);
    req.once('response', resolve);
    req.end();
  });
}

async function metricsText(url: string): Promise<string> {
  return (await fetch(`${url}/metrics`)).text();
}

/** The soft fd limit of this process (Linux), as the server reads it. */
async function ownFileLimit(): Promise<number | undefined> {
  const text = await readFile('/proc/self/limits', 'utf8').catch(() => '');
  const match = /^Max open files\s+(\d+)/m.exec(text);
  return match ? Number(match[1]) : undefined;
}

describe('startServer: limits', () => {
  it('limits /raft bodies to --max-body-bytes plus the 2 MiB an AppendEntries batch may add, not to raft-ts\'s own 64 MiB', async () => {
    await withServer({ maxBodyBytes: 1024 }, async (server) => {
      expect(await postZeros(`${server.url}/raft/append`, 1024 + 2 * MiB + 1)).toBe(413);
      // Just under the limit the body is read (and refused for what it is, not for its size).
      const status = await postZeros(`${server.url}/raft/append`, 1024 + 2 * MiB);
      expect(status).not.toBe(413);
      expect(status).toBeGreaterThanOrEqual(400);
    });
  });

  it('applies the stream, connection and timeout settings and shows them in /metrics', async () => {
    await withServer({ maxStreams: 1, maxConnections: 5, headersTimeoutMs: 300, requestTimeoutMs: 1000, streamStallMs: 2000 }, async (server) => {
      const first = await openStream(server.url);
      expect(first.statusCode).toBe(200);
      const second = await openStream(server.url);
      expect(second.statusCode).toBe(503);
      expect(second.headers['x-broker-error-code']).toBe('TOO_MANY_STREAMS');
      expect(second.headers['retry-after']).toBe('1');
      second.resume();

      // A client that never finishes its headers is answered 408 and cut off.
      const slow = connect(server.port, '127.0.0.1');
      slow.write('GET /health HTTP/1.1\r\nHost: x\r\n');
      const answer = await new Promise<string>((resolve, reject) => {
        const chunks: Buffer[] = [];
        const timer = setTimeout(() => reject(new Error('the slow client is still connected after 3 s')), 3000);
        slow.on('data', (chunk: Buffer) => chunks.push(chunk));
        slow.once('close', () => {
          clearTimeout(timer);
          resolve(Buffer.concat(chunks).toString('latin1'));
        });
      });
      expect(answer).toMatch(/^HTTP\/1\.1 408 /);

      const text = await metricsText(server.url);
      for (const line of [
        'msg_http_limit{limit="streams"} 1',
        'msg_http_limit{limit="connections"} 5',
        'msg_http_limit{limit="streams_per_client"} 1000',
        'msg_http_timeout_seconds{timeout="headers"} 0.3',
        'msg_http_timeout_seconds{timeout="stream_stall"} 2',
        'msg_http_streams_refused_total{limit="streams"} 1',
        'msg_http_client_errors_total{kind="timeout"} 1',
      ]) {
        expect(text.split('\n')).toContain(line);
      }
      first.destroy();
    });
  });

  it('fits the default connection and stream limits to the fd limit, and logs the limits it runs with', async () => {
    const fileLimit = await ownFileLimit();
    await withServer({}, async (server, lines) => {
      const expected = fileLimit === undefined ? { maxConnections: 10_000, maxStreams: 5_000 } : fitToFileLimit(fileLimit);
      const text = (await metricsText(server.url)).split('\n');
      expect(text).toContain(`msg_http_limit{limit="connections"} ${expected.maxConnections}`);
      expect(text).toContain(`msg_http_limit{limit="streams"} ${expected.maxStreams}`);
      const listening = lines.find((l) => l.msg === 'listening');
      expect(listening?.limits).toMatchObject({ ...expected, headersTimeoutMs: 10_000, requestTimeoutMs: 60_000 });
    });
  });

  it('warns when the configured limits let clients take more descriptors than the process may open', async () => {
    const fileLimit = await ownFileLimit();
    if (fileLimit === undefined) return; // Not Linux: the limit is unknown, nothing to compare with.
    await withServer({ maxConnections: fileLimit, maxStreams: 10 }, async (_server, lines) => {
      expect(lines).toContainEqual(expect.objectContaining({ level: 'warn', msg: 'limits allow more open files than the process may have', fileLimit }));
    });
  });
});
