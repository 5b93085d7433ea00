// Benchmark of @msg/http (not a jest test): `pnpm bench` in packages/http.
//
// Publish: 64 keep-alive connections, one request in flight each, 100-byte
// POST bodies, against (1) a bare node:http server answering 200, (2) a
// minimal express 5 app, (3) our handler through express only, (4) our
// handler's node:http fast path. The broker is an in-memory fake whose publish
// resolves at once, so the numbers are the HTTP layer's cost alone.
// Stream: one GET replaying a 64 MiB topic, in MB/s, through both paths.
//
// The load generator (@msg/test-utils' load-generator.ts) runs in a child process, bounded in
// time, and is killed by its PID if it overstays.
import { spawn } from 'node:child_process';
import { createServer, type IncomingMessage, type RequestListener, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import express from 'express';
import { loadGeneratorPath, type LoadResult } from '@msg/test-utils/load-generator';
import { encodeMessage } from '@msg/wire';
import { createHandler, type HandlerBroker, type TopicFrames } from '../src/index.js';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 64);
const PUBLISH_PATH = '/messaging/messages?type=1&topicID=7';

/** A broker that acknowledges at once and replays a fixed topic of `replayBytes`. */
function benchBroker(replayBytes: number): HandlerBroker {
  let index = 0n;
  // 64 KiB chunks of 1000-byte messages, as a segment reader would hand them out.
  const frame = encodeMessage({ type: 1, topicID: 7n, index: 1n, data: new Uint8Array(1000 - 22) });
  const perChunk = Math.floor((64 * 1024) / frame.byteLength);
  const chunk = new Uint8Array(perChunk * frame.byteLength);
  for (let i = 0; i < perChunk; i++) chunk.set(frame, i * frame.byteLength);
  const chunks = Math.ceil(replayBytes / chunk.byteLength);
  return {
    isLeader: () => true,
    leaderURL: () => 'http://127.0.0.1:1',
    urls: () => ['http://127.0.0.1:1'],
    publish: async () => ++index,
    publishBatch: async (messages) => {
      const first = index + 1n;
      index += BigInt(messages.length);
      return { firstIndex: first, lastIndex: index };
    },
    heartbeat: async () => undefined,
    openTopicReader: () => {
      let closed = false;
      const frames: TopicFrames = {
        async *[Symbol.asyncIterator]() {
          for (let i = 0; i < chunks && !closed; i++) yield chunk;
        },
        close: () => {
          closed = true;
        },
      };
      return frames;
    },
    ready: () => ({ ready: true }),
    status: () => ({}),
    metrics: () => ({ term: 1n, commitIndex: index, appliedIndex: index, topics: [] }),
  };
}

function bareListener(req: IncomingMessage, res: ServerResponse): void {
  req.resume();
  req.on('end', () => {
    res.writeHead(200, { 'Content-Length': '0' });
    res.end();
  });
}

function minimalExpress(): RequestListener {
  const app = express();
  app.post('/messaging/messages', (req, res) => {
    req.resume();
    req.on('end', () => {
      res.status(200).end();
    });
  });
  return app;
}

async function start(listener: RequestListener): Promise<{ server: Server; port: number }> {
  const server = createServer(listener);
  server.keepAliveTimeout = 30_000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, port: (server.address() as AddressInfo).port };
}

async function stop(server: Server): Promise<void> {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
}

/** Runs the load generator of @msg/test-utils in a child process; kills it by PID if it overstays. */
function load(options: Record<string, unknown>): Promise<LoadResult> {
  return new Promise<LoadResult>((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', loadGeneratorPath, JSON.stringify(options)], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    const limitMs = Number(options.warmupMs) + Number(options.durationMs) + 20_000;
    const timer = setTimeout(() => {
      if (child.pid !== undefined) process.kill(child.pid, 'SIGKILL');
      reject(new Error('load generator overstayed; killed'));
    }, limitMs);
    child.on('exit', (code) => {
      clearTimeout(timer);
      if (code !== 0) reject(new Error(`load generator exited with ${code}`));
      else resolve(JSON.parse(out) as LoadResult);
    });
  });
}

async function publishCase(name: string, listener: RequestListener): Promise<void> {
  const { server, port } = await start(listener);
  try {
    const cpu = process.cpuUsage();
    const r = await load({ mode: 'post', port, path: PUBLISH_PATH, connections: CONNECTIONS, bodyBytes: 100, warmupMs: 1000, durationMs: SECONDS * 1000 });
    const used = process.cpuUsage(cpu);
    const cpuPerRequest = (used.user + used.system) / r.allRequests;
    console.log(
      `${name.padEnd(34)} ${r.rps.toFixed(0).padStart(8)} req/s   p50 ${r.p50Ms.toFixed(2).padStart(6)} ms   p99 ${r.p99Ms.toFixed(2).padStart(6)} ms   server CPU ${cpuPerRequest.toFixed(1).padStart(5)} µs/req${r.errors ? `   errors ${r.errors}` : ''}`,
    );
  } finally {
    await stop(server);
  }
}

async function streamCase(name: string, listener: RequestListener): Promise<void> {
  const { server, port } = await start(listener);
  try {
    const r = await load({ mode: 'get', port, path: '/messaging/messages?topicID=7&index=0', connections: 1, warmupMs: 500, durationMs: SECONDS * 1000 });
    console.log(`${name.padEnd(34)} ${(r.bytes / r.seconds / 1e6).toFixed(0).padStart(8)} MB/s     (${r.requests} full replays of 64 MiB)${r.errors ? `   errors ${r.errors}` : ''}`);
  } finally {
    await stop(server);
  }
}

async function main(): Promise<void> {
  const broker = benchBroker(64 * 1024 * 1024);
  const quiet = { onInternalError: (e: unknown) => console.error(e) };
  console.log(`@msg/http benchmark: ${CONNECTIONS} keep-alive connections, 100-byte POST, ${SECONDS} s per case (node ${process.version})`);
  await publishCase('bare node:http (ceiling)', bareListener);
  await publishCase('minimal express 5', minimalExpress());
  await publishCase('@msg/http through express only', createHandler(broker, { ...quiet, fastPath: false }).listener);
  await publishCase('@msg/http fast path', createHandler(broker, quiet).listener);
  console.log('stream GET (non-streaming replay, 1 connection):');
  await streamCase('@msg/http through express only', createHandler(broker, { ...quiet, fastPath: false }).listener);
  await streamCase('@msg/http fast path', createHandler(broker, quiet).listener);
}

await main();
