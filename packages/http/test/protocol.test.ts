// Raw-HTTP tests written from docs/protocol.md §1-2 (the original's wire format and API) only:
// bytes on a TCP socket, as a client of the original broker sees them.
import { describe, expect, it } from '@jest/globals';
import { connect } from 'node:net';
import { sleep, waitFor } from '@msg/test-utils';
import { fakeBroker, startServer } from './fake-broker.js';
import { dechunk, parseRaw, rawExchange } from './http-client.js';

const text = (s: string): Uint8Array => new TextEncoder().encode(s);

describe('the original protocol on the wire', () => {
  it('streams the worked example message byte for byte', async () => {
    const s = await startServer();
    s.broker.append({ type: 9, topicID: 3n, data: text('other topic') }); // index 1
    s.broker.append({ type: 1, topicID: 7n, data: text('hello-0') }); // index 2
    const raw = await rawExchange(s.port, 'GET /messaging/messages?topicID=7&index=0 HTTP/1.1\r\nHost: broker\r\nConnection: close\r\n\r\n');
    const answer = parseRaw(raw);
    expect(answer.statusLine).toBe('HTTP/1.1 200 OK');
    expect(answer.headers.get('transfer-encoding')).toBe('chunked');
    expect(dechunk(answer.body).toString('hex')).toBe('0001' + '0000000000000007' + '0000000000000002' + '00000007' + '68656c6c6f2d30');
  });

  it('publishes with a raw POST and answers 200, X-Broker-Index and an empty body', async () => {
    const s = await startServer();
    const raw = await rawExchange(
      s.port,
      'POST /messaging/messages?type=1&topicID=7 HTTP/1.1\r\nHost: broker\r\nContent-Length: 7\r\nConnection: close\r\n\r\nhello-0',
    );
    const answer = parseRaw(raw);
    expect(answer.statusLine).toBe('HTTP/1.1 200 OK');
    expect(answer.rawHeaders).toContain('X-Broker-Index: 1');
    expect(answer.headers.get('content-length')).toBe('0');
    expect(answer.body.byteLength).toBe(0);
    expect(Buffer.from(s.broker.log[0]!.message.data).toString()).toBe('hello-0');
  });

  it('accepts a chunked publish body', async () => {
    const s = await startServer();
    const raw = await rawExchange(
      s.port,
      'POST /messaging/messages?type=2&topicID=8 HTTP/1.1\r\nHost: b\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n',
    );
    expect(parseRaw(raw).statusLine).toBe('HTTP/1.1 200 OK');
    expect(Buffer.from(s.broker.log[0]!.message.data).toString()).toBe('abcdefg');
  });

  it('answers errors with the status, X-Broker-Error and the text as a text/plain body', async () => {
    const s = await startServer();
    const cases: [string, string, string][] = [
      ['POST /messaging/messages?topicID=7', '400 Bad Request', 'message type required'],
      ['POST /messaging/messages?type=1', '400 Bad Request', 'topic required'],
      ['POST /messaging/messages?type=1&topicID=7', '400 Bad Request', 'message data required'],
      ['GET /messaging/messages?index=0', '400 Bad Request', 'topic required'],
      ['GET /messaging/messages?topicID=7', '400 Bad Request', 'index required'],
      ['POST /messaging/heartbeat?index=0', '400 Bad Request', 'topic required'],
      ['POST /messaging/heartbeat?topicID=7', '400 Bad Request', 'index required'],
    ];
    for (const [line, status, message] of cases) {
      const answer = parseRaw(await rawExchange(s.port, `${line} HTTP/1.1\r\nHost: b\r\nContent-Length: 0\r\nConnection: close\r\n\r\n`));
      expect(answer.statusLine).toBe(`HTTP/1.1 ${status}`);
      expect(answer.rawHeaders).toContain(`X-Broker-Error: ${message}`);
      expect(answer.headers.get('content-type')).toBe('text/plain; charset=utf-8');
      expect(answer.body.toString()).toBe(`${message}\n`);
    }
  });

  it('redirects a publish to a follower with 307 to the leader, path and query kept', async () => {
    const broker = fakeBroker();
    broker.leader = false;
    broker.leader_ = 'http://10.0.0.1:8086';
    const s = await startServer(broker);
    const answer = parseRaw(
      await rawExchange(s.port, 'POST /messaging/messages?type=1&topicID=7 HTTP/1.1\r\nHost: b\r\nContent-Length: 1\r\nConnection: close\r\n\r\nx'),
    );
    expect(answer.statusLine).toBe('HTTP/1.1 307 Temporary Redirect');
    expect(answer.headers.get('location')).toBe('http://10.0.0.1:8086/messaging/messages?type=1&topicID=7');
  });

  it('names the cluster\'s members on a follower\'s 307 (X-Broker-Members), so a client that knows only the follower may trust the leader', async () => {
    const broker = fakeBroker();
    broker.leader = false;
    broker.leader_ = 'http://127.0.0.1:2';
    const s = await startServer(broker);
    for (const request of [
      'POST /messaging/ping HTTP/1.1\r\nHost: b\r\nContent-Length: 0\r\nConnection: close\r\n\r\n',
      'POST /messaging/messages?type=1&topicID=7 HTTP/1.1\r\nHost: b\r\nContent-Length: 1\r\nConnection: close\r\n\r\nx',
    ]) {
      const answer = parseRaw(await rawExchange(s.port, request));
      expect(answer.statusLine).toBe('HTTP/1.1 307 Temporary Redirect');
      expect(answer.headers.get('x-broker-members')).toBe('http://127.0.0.1:1,http://127.0.0.1:2');
    }
  });

  it('answers a ping on the leader with the URLs as JSON and a newline', async () => {
    const s = await startServer();
    const answer = parseRaw(await rawExchange(s.port, 'POST /messaging/ping HTTP/1.1\r\nHost: b\r\nContent-Length: 0\r\nConnection: close\r\n\r\n'));
    expect(answer.statusLine).toBe('HTTP/1.1 200 OK');
    expect(answer.body.toString()).toBe('{"urls":["http://127.0.0.1:1","http://127.0.0.1:2"]}\n');
  });

  it('answers 405 for a wrong method on a known path and 404 for an unknown path', async () => {
    const s = await startServer();
    const a = parseRaw(await rawExchange(s.port, 'DELETE /messaging/messages HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n'));
    expect(a.statusLine).toBe('HTTP/1.1 405 Method Not Allowed');
    const b = parseRaw(await rawExchange(s.port, 'GET /messaging/unknown HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n'));
    expect(b.statusLine).toBe('HTTP/1.1 404 Not Found');
  });

  it('serves many requests on one keep-alive connection, pipelined', async () => {
    const s = await startServer();
    const requests =
      'POST /messaging/messages?type=1&topicID=7 HTTP/1.1\r\nHost: b\r\nContent-Length: 1\r\n\r\na' +
      'POST /messaging/messages?type=1&topicID=7 HTTP/1.1\r\nHost: b\r\nContent-Length: 1\r\n\r\nb' +
      'POST /messaging/messages?topicID=7 HTTP/1.1\r\nHost: b\r\nContent-Length: 1\r\n\r\nc' +
      'GET /messaging/messages?topicID=7&index=2 HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n';
    const raw = (await rawExchange(s.port, requests)).toString('latin1');
    const statuses = [...raw.matchAll(/HTTP\/1\.1 (\d{3})/g)].map((m) => m[1]);
    expect(statuses).toEqual(['200', '200', '400', '200']);
    expect(raw).toContain('X-Broker-Index: 1');
    expect(raw).toContain('X-Broker-Index: 2');
    expect(s.broker.log.map((e) => Buffer.from(e.message.data).toString())).toEqual(['a', 'b']);
  });

  it('survives a client that disconnects in the middle of a request body', async () => {
    const s = await startServer();
    const socket = connect(s.port, '127.0.0.1');
    socket.on('error', () => undefined);
    socket.write('POST /messaging/messages?type=1&topicID=7 HTTP/1.1\r\nHost: b\r\nContent-Length: 100\r\n\r\nonly ten b');
    await waitFor(() => s.handler.metrics.requests('publish') === 0 && socket.writableLength === 0);
    await sleep(20);
    socket.destroy();
    await waitFor(() => s.handler.metrics.requests('publish', 499) === 1);
    expect(s.broker.log).toHaveLength(0);
    const answer = parseRaw(
      await rawExchange(s.port, 'POST /messaging/messages?type=1&topicID=7 HTTP/1.1\r\nHost: b\r\nContent-Length: 1\r\nConnection: close\r\n\r\nx'),
    );
    expect(answer.statusLine).toBe('HTTP/1.1 200 OK');
  });

  it('aborts the broker wait when the publisher disconnects, and keeps serving', async () => {
    let signal: AbortSignal | undefined;
    const s = await startServer(
      fakeBroker({
        publish: (_message, given) => {
          signal = given;
          return new Promise<bigint>((_resolve, reject) => given?.addEventListener('abort', () => reject(new Error('aborted', { cause: given.reason }))));
        },
      }),
    );
    const socket = connect(s.port, '127.0.0.1');
    socket.on('error', () => undefined);
    socket.write('POST /messaging/messages?type=1&topicID=7 HTTP/1.1\r\nHost: b\r\nContent-Length: 1\r\n\r\nx');
    await waitFor(() => signal);
    expect(signal!.aborted).toBe(false);
    socket.destroy();
    await waitFor(() => signal!.aborted);
    await waitFor(() => s.handler.metrics.requests('publish', 499) === 1);
    expect(s.errors).toHaveLength(0);
    expect(parseRaw(await rawExchange(s.port, 'GET /health HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n')).statusLine).toBe('HTTP/1.1 200 OK');
  });

  it('answers 413 to a declared oversized body before it is sent', async () => {
    const s = await startServer(fakeBroker(), { maxBodyBytes: 1000 });
    const socket = connect(s.port, '127.0.0.1');
    const chunks: Buffer[] = [];
    socket.on('data', (c: Buffer) => chunks.push(c));
    const closed = new Promise<void>((resolve) => socket.on('close', () => resolve()));
    socket.on('error', () => undefined);
    socket.write('POST /messaging/batch HTTP/1.1\r\nHost: b\r\nContent-Length: 1000000000\r\n\r\n');
    await closed;
    const answer = parseRaw(Buffer.concat(chunks));
    expect(answer.statusLine).toBe('HTTP/1.1 413 Payload Too Large');
    expect(answer.headers.get('x-broker-error-code')).toBe('BODY_TOO_LARGE');
  });

  it('answers 413 to a chunked body once it passes the limit, having read no more than the limit', async () => {
    const s = await startServer(fakeBroker(), { maxBodyBytes: 1000 });
    const socket = connect(s.port, '127.0.0.1');
    const chunks: Buffer[] = [];
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('error', () => undefined);
    const closed = new Promise<void>((resolve) => socket.on('close', () => resolve()));
    socket.write('POST /messaging/messages?type=1&topicID=1 HTTP/1.1\r\nHost: b\r\nTransfer-Encoding: chunked\r\n\r\n');
    // 600 + 600 bytes: over the limit while the body is still open.
    socket.write(`258\r\n${'a'.repeat(600)}\r\n`);
    socket.write(`258\r\n${'b'.repeat(600)}\r\n`);
    await closed;
    const answer = parseRaw(Buffer.concat(chunks));
    expect(answer.statusLine).toBe('HTTP/1.1 413 Payload Too Large');
    expect(s.broker.log).toHaveLength(0);
  });
});
