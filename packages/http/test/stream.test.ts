import { describe, expect, it } from '@jest/globals';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { connect } from 'node:net';
import { sleep, waitFor } from '@msg/test-utils';
import { MessageDecoder, type Message } from '@msg/wire';
import type { TopicFrames } from '../src/index.js';
import { fakeBroker, startServer } from './fake-broker.js';

const data = (text: string): Uint8Array => new TextEncoder().encode(text);

/** Opens a GET and resolves with the response once its headers are in. */
function openStream(url: string): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { agent: false }, resolve);
    req.on('error', reject);
    req.end();
  });
}

/** Feeds a response into a decoder; `messages` fills as frames arrive. */
function decodeInto(res: IncomingMessage): { messages: Message[]; arrivals: number[]; ended: Promise<void> } {
  const decoder = new MessageDecoder();
  const messages: Message[] = [];
  const arrivals: number[] = [];
  res.on('data', (chunk: Buffer) => {
    for (const m of decoder.push(chunk)) {
      messages.push(m);
      arrivals.push(performance.now());
    }
  });
  const ended = new Promise<void>((resolve, reject) => {
    res.on('end', resolve);
    res.on('error', reject);
  });
  return { messages, arrivals, ended };
}

/** A streaming reader that yields `chunkBytes` chunks forever and counts what was pulled. */
function endlessFrames(chunkBytes: number): { frames: TopicFrames; pulled: () => number; closed: () => number } {
  let pulled = 0;
  let closed = 0;
  const chunk = new Uint8Array(chunkBytes);
  const frames: TopicFrames = {
    async *[Symbol.asyncIterator]() {
      for (let i = 0; i < 1_000_000 && closed === 0; i++) {
        pulled += chunk.byteLength;
        yield chunk;
      }
    },
    close: () => {
      closed++;
    },
  };
  return { frames, pulled: () => pulled, closed: () => closed };
}

describe('streaming GET /messaging/messages', () => {
  it('pushes each new message to an open stream within milliseconds of its commit', async () => {
    const s = await startServer();
    const res = await openStream(`${s.url}/messaging/messages?topicID=1&index=0&streaming=true`);
    expect(res.statusCode).toBe(200);
    const stream = decodeInto(res);
    await waitFor(() => s.broker.opened === 1);
    const latencies: number[] = [];
    for (let i = 0; i < 20; i++) {
      const sent = performance.now();
      s.broker.append({ type: 1, topicID: 1n, data: data(`m${i}`) });
      await waitFor(() => stream.messages.length === i + 1, { intervalMs: 1, timeoutMs: 5000 });
      latencies.push(stream.arrivals[i]! - sent);
    }
    expect(stream.messages.map((m) => Buffer.from(m.data).toString())).toEqual(Array.from({ length: 20 }, (_, i) => `m${i}`));
    latencies.sort((a, b) => a - b);
    // Generous bound for a shared machine; typically well under 5 ms.
    expect(latencies[10]!).toBeLessThan(250);
    res.destroy();
  });

  it('sends the headers at once so a client knows its stream is open before any message', async () => {
    const s = await startServer();
    const res = await openStream(`${s.url}/messaging/messages?topicID=1&index=0&streaming=true`);
    expect(res.statusCode).toBe(200);
    expect(res.headers['transfer-encoding']).toBe('chunked');
    res.destroy();
  });

  it('streams only for the exact string true', async () => {
    const s = await startServer();
    s.broker.append({ type: 1, topicID: 1n, data: data('x') });
    for (const value of ['TRUE', '1', 'yes', 'true ']) {
      const res = await openStream(`${s.url}/messaging/messages?topicID=1&index=0&streaming=${encodeURIComponent(value)}`);
      const stream = decodeInto(res);
      await stream.ended;
      expect(stream.messages).toHaveLength(1);
    }
  });

  it('delivers a burst of messages in order and complete', async () => {
    const s = await startServer();
    const res = await openStream(`${s.url}/messaging/messages?topicID=4&index=0&streaming=true`);
    const stream = decodeInto(res);
    for (let i = 0; i < 2000; i++) s.broker.append({ type: 1, topicID: 4n, data: data(`burst-${i}`) });
    await waitFor(() => stream.messages.length === 2000, { timeoutMs: 10_000 });
    expect(stream.messages.every((m, i) => m.index === BigInt(i + 1))).toBe(true);
    res.destroy();
  });

  it('closes the reader when the client disconnects while the stream waits for messages', async () => {
    const s = await startServer();
    const res = await openStream(`${s.url}/messaging/messages?topicID=1&index=0&streaming=true`);
    await waitFor(() => s.handler.activeStreams === 1);
    res.destroy();
    await waitFor(() => s.broker.closed === 1, { message: 'reader closed' });
    await waitFor(() => s.handler.activeStreams === 0);
    expect(s.broker.opened).toBe(1);
  });

  it('closes the reader when the client disconnects in the middle of a fast stream', async () => {
    const endless = endlessFrames(16 * 1024);
    const s = await startServer(fakeBroker({ openTopicReader: () => endless.frames }));
    const res = await openStream(`${s.url}/messaging/messages?topicID=1&index=0&streaming=true`);
    let received = 0;
    await new Promise<void>((resolve) => {
      res.on('data', (chunk: Buffer) => {
        received += chunk.byteLength;
        if (received > 1024 * 1024) {
          res.destroy();
          resolve();
        }
      });
    });
    await waitFor(() => endless.closed() === 1);
    const pulled = endless.pulled();
    await sleep(100);
    expect(endless.pulled()).toBe(pulled);
    expect(s.handler.activeStreams).toBe(0);
    // The server keeps serving.
    const again = await openStream(`${s.url}/health`);
    expect(again.statusCode).toBe(200);
    again.resume();
  });

  it('stops pulling from the reader while the client does not read (bounded buffering), and resumes when it does', async () => {
    const endless = endlessFrames(64 * 1024);
    const s = await startServer(fakeBroker({ openTopicReader: () => endless.frames }));
    const socket = connect(s.port, '127.0.0.1');
    socket.write('GET /messaging/messages?topicID=1&index=0&streaming=true HTTP/1.1\r\nHost: x\r\n\r\n');
    // Read the first bytes, then stop reading entirely.
    await new Promise<void>((resolve) => socket.once('data', () => resolve()));
    socket.pause();
    // Wait until the server stops pulling: the pulled count stays still for 300 ms.
    let last = -1;
    await waitFor(
      async () => {
        const now = endless.pulled();
        if (now === last) return true;
        last = now;
        await sleep(300);
        return endless.pulled() === now;
      },
      { timeoutMs: 20_000, intervalMs: 10, message: 'the pump to stop pulling' },
    );
    const stalled = endless.pulled();
    // Socket buffers on both sides plus one chunk; about 4 MiB here, far from the 64 GB the reader would produce.
    expect(stalled).toBeLessThan(16 * 1024 * 1024);
    const heapBefore = process.memoryUsage().heapUsed;
    await sleep(300);
    expect(endless.pulled()).toBe(stalled);
    expect(process.memoryUsage().heapUsed - heapBefore).toBeLessThan(32 * 1024 * 1024);
    // Reading again lets the stream move on.
    let drained = 0;
    socket.on('data', (chunk: Buffer) => {
      drained += chunk.byteLength;
    });
    socket.resume();
    await waitFor(() => endless.pulled() > stalled + 4 * 1024 * 1024, { timeoutMs: 20_000 });
    expect(drained).toBeGreaterThan(0);
    socket.destroy();
    await waitFor(() => endless.closed() === 1);
  });

  it('ends open streams cleanly when the handler closes, closing their readers', async () => {
    const s = await startServer();
    const res = await openStream(`${s.url}/messaging/messages?topicID=1&index=0&streaming=true`);
    const stream = decodeInto(res);
    s.broker.append({ type: 1, topicID: 1n, data: data('last') });
    await waitFor(() => stream.messages.length === 1);
    s.handler.close();
    await stream.ended;
    expect(s.broker.closed).toBe(1);
    expect(s.handler.activeStreams).toBe(0);
  });

  it('closes a reader opened for a client that left before the reader was ready', async () => {
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const broker = fakeBroker();
    const open = broker.openTopicReader;
    let calls = 0;
    broker.openTopicReader = async (...args) => {
      calls++;
      await gate;
      return open(...args);
    };
    const s = await startServer(broker);
    const req = httpRequest(`${s.url}/messaging/messages?topicID=1&index=0&streaming=true`, { agent: false });
    req.on('error', () => undefined);
    req.end();
    await waitFor(() => calls === 1);
    req.destroy();
    await sleep(50);
    release();
    await waitFor(() => broker.closed === 1);
    expect(s.handler.activeStreams).toBe(0);
  });

  it('counts streamed bytes and stream requests in the metrics', async () => {
    const s = await startServer();
    s.broker.append({ type: 1, topicID: 1n, data: data('abc') });
    const res = await openStream(`${s.url}/messaging/messages?topicID=1&index=0`);
    await decodeInto(res).ended;
    expect(s.handler.metrics.streamedBytes).toBe(25);
    await waitFor(() => s.handler.metrics.requests('stream', 200) === 1);
  });

  it('hands each chunk back to a reader that takes them (release) only once its bytes are written', async () => {
    const chunks = 12;
    const size = 1024 * 1024;
    let yielded = 0;
    const released: Uint8Array[] = [];
    const frames: TopicFrames & { release(chunk: Uint8Array): void } = {
      async *[Symbol.asyncIterator]() {
        for (let i = 0; i < chunks; i++) {
          yielded++;
          yield new Uint8Array(size).fill(i + 1);
        }
      },
      close: () => undefined,
      // A reader reuses the memory at once: had the pump handed a chunk back
      // before its bytes were written, the client would see the garbage.
      release: (chunk) => {
        released.push(chunk);
        chunk.fill(0xff);
      },
    };
    const s = await startServer(fakeBroker({ openTopicReader: () => frames }));
    const res = await openStream(`${s.url}/messaging/messages?topicID=1&index=0`);
    const parts: Buffer[] = [];
    let events = 0;
    res.on('data', (chunk: Buffer) => {
      parts.push(chunk);
      // A slow client: the socket fills, so writes wait in the pump.
      if (++events % 8 === 0) {
        res.pause();
        setTimeout(() => res.resume(), 5);
      }
    });
    await new Promise<void>((resolve, reject) => {
      res.on('end', resolve);
      res.on('error', reject);
    });
    const body = Buffer.concat(parts);
    expect(body.byteLength).toBe(chunks * size);
    for (let i = 0; i < chunks; i++) expect(body.subarray(i * size, (i + 1) * size).equals(Buffer.alloc(size, i + 1))).toBe(true);
    expect(yielded).toBe(chunks);
    expect(released).toHaveLength(chunks);
    expect(new Set(released).size).toBe(chunks);
  });

  it('hands back no chunk whose bytes are still being sent, also when the client goes away in the middle of one', async () => {
    const size = 64 * 1024 * 1024; // far more than the socket buffers hold: the chunk goes out in many writes
    let closed = 0;
    const frames: TopicFrames & { release(chunk: Uint8Array): void } = {
      async *[Symbol.asyncIterator]() {
        for (let i = 0; i < 4 && closed === 0; i++) yield new Uint8Array(size).fill(1);
      },
      close: () => {
        closed++;
      },
      release: (chunk) => {
        chunk.fill(0xff); // reused at once
      },
    };
    const s = await startServer(fakeBroker({ openTopicReader: () => frames }));
    const socket = connect(s.port, '127.0.0.1');
    socket.write('GET /messaging/messages?topicID=1&index=0 HTTP/1.1\r\nHost: x\r\n\r\n');
    const parts: Buffer[] = [];
    let received = 0;
    await new Promise<void>((resolve) => {
      socket.on('data', (chunk: Buffer) => {
        parts.push(chunk);
        received += chunk.byteLength;
        // A slow reader of 8 MiB, then gone.
        socket.pause();
        setTimeout(() => socket.resume(), 1);
        if (received > 8 * 1024 * 1024) {
          socket.destroy();
          resolve();
        }
      });
    });
    await waitFor(() => closed === 1);
    const bytes = Buffer.concat(parts);
    const head = bytes.indexOf('\r\n\r\n') + 4;
    const body = bytes.subarray(bytes.indexOf('\r\n', head) + 2);
    expect(body.byteLength).toBeGreaterThan(4 * 1024 * 1024);
    expect(body.indexOf(0xff)).toBe(-1);
  });
});
