import { afterEach, describe, expect, it } from '@jest/globals';
import { createServer, type RequestListener, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { gzipSync } from 'node:zlib';
import { Transport } from './transport.js';

const servers: Server[] = [];
const transports: Transport[] = [];

afterEach(async () => {
  for (const transport of transports.splice(0)) transport.close();
  await Promise.all(
    servers.splice(0).map((server) => {
      const closed = new Promise((resolve) => server.close(resolve));
      server.closeAllConnections();
      return closed;
    }),
  );
});

async function serve(listener: RequestListener): Promise<URL> {
  const server = createServer(listener);
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return new URL(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
}

function transport(): Transport {
  const t = new Transport();
  transports.push(t);
  return t;
}

describe('Transport.request', () => {
  it('sends the path, the body with its length and content type, and reads status, headers and body', async () => {
    const seen: { method?: string; path?: string; length?: string; type?: string; body?: string } = {};
    const url = await serve((req, res) => {
      const parts: Buffer[] = [];
      req.on('data', (chunk: Buffer) => parts.push(chunk));
      req.on('end', () => {
        Object.assign(seen, { method: req.method, path: req.url, length: req.headers['content-length'], type: req.headers['content-type'], body: Buffer.concat(parts).toString() });
        res.writeHead(201, { 'x-broker-index': '7' });
        res.end('ok');
      });
    });
    const answer = await transport().request({ method: 'POST', url, path: '/messaging/messages?topicID=1', body: new TextEncoder().encode('hello'), contentType: 'application/octet-stream', timeoutMs: 5000 });
    expect(seen).toEqual({ method: 'POST', path: '/messaging/messages?topicID=1', length: '5', type: 'application/octet-stream', body: 'hello' });
    expect({ status: answer.status, index: answer.headers['x-broker-index'], body: Buffer.from(answer.body).toString() }).toEqual({ status: 201, index: '7', body: 'ok' });
  });

  it('decompresses a gzip answer', async () => {
    const url = await serve((req, res) => {
      req.resume();
      res.writeHead(200, { 'content-encoding': 'gzip' });
      res.end(gzipSync('{"urls":[]}'));
    });
    const answer = await transport().request({ method: 'POST', url, path: '/messaging/messages?topicID=1', timeoutMs: 5000 });
    expect(Buffer.from(answer.body).toString()).toBe('{"urls":[]}');
  });

  it('fails with TIMEOUT when the answer does not come within timeoutMs', async () => {
    const url = await serve(() => undefined);
    await expect(transport().request({ method: 'GET', url, path: '/messaging/messages?topicID=1', timeoutMs: 50 })).rejects.toMatchObject({ name: 'BrokerError', code: 'TIMEOUT' });
  });

  it('fails with UNAVAILABLE when the connection is lost mid-answer', async () => {
    const url = await serve((req, res) => {
      req.resume();
      res.writeHead(200, { 'content-length': '100' });
      res.write('partial');
      setTimeout(() => res.socket?.destroy(), 10);
    });
    await expect(transport().request({ method: 'GET', url, path: '/messaging/messages?topicID=1', timeoutMs: 5000 })).rejects.toMatchObject({ name: 'BrokerError', code: 'UNAVAILABLE' });
  });

  it('fails with UNAVAILABLE when the connection is refused', async () => {
    const url = await serve(() => undefined);
    await new Promise((resolve) => servers.pop()!.close(resolve));
    await expect(transport().request({ method: 'GET', url, path: '/messaging/messages?topicID=1', timeoutMs: 5000 })).rejects.toMatchObject({ name: 'BrokerError', code: 'UNAVAILABLE' });
  });

  it('fails with ABORTED when the signal aborts, before or during the request', async () => {
    const url = await serve(() => undefined);
    const t = transport();
    await expect(t.request({ method: 'GET', url, path: '/messaging/messages?topicID=1', timeoutMs: 5000, signal: AbortSignal.abort() })).rejects.toMatchObject({ name: 'ClientError', code: 'ABORTED' });
    const controller = new AbortController();
    const pending = t.request({ method: 'GET', url, path: '/messaging/messages?topicID=1', timeoutMs: 5000, signal: controller.signal });
    setTimeout(() => controller.abort(), 10);
    await expect(pending).rejects.toMatchObject({ name: 'ClientError', code: 'ABORTED' });
  });
});
