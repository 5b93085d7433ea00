import { afterEach, describe, expect, it } from '@jest/globals';
import { spawn, type ChildProcess } from 'node:child_process';
import { readdir } from 'node:fs/promises';
import { Agent, request as httpRequest, type ClientRequest } from 'node:http';
import { connect } from 'node:net';
import { join } from 'node:path';
import { makeTempDir, sleep, waitFor } from '@msg/test-utils';
import { serverCommand } from '../src/broker-process.js';
import { request } from '../src/http-request.js';

/** The fd limit (soft and hard) every broker of this file runs under. */
const FILE_LIMIT = 1024;
const root = join(import.meta.dirname, '..', '..', '..');

interface LimitedBroker {
  url: string;
  port: number;
  pid: number;
  logs: Record<string, unknown>[];
  alive(): boolean;
}

const children = new Set<ChildProcess>();
afterEach(async () => {
  await Promise.all(
    [...children].map(async (child) => {
      children.delete(child);
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((resolve) => child.once('exit', resolve));
      process.kill(child.pid!, 'SIGKILL');
      await exited;
    }),
  );
});

/**
 * Starts a broker on 127.0.0.1 under `prlimit --nofile=N:N` (soft and hard,
 * so node cannot raise it), waits for its `listening` line. Killed (SIGKILL by
 * PID) after the test.
 */
async function startLimitedBroker(args: readonly string[]): Promise<LimitedBroker> {
  const dataDir = await makeTempDir('msg-it-limits-');
  const command = serverCommand(['--data-dir', dataDir, '--listen', '127.0.0.1:0', '--log-level', 'info', ...args]);
  const child = spawn('prlimit', [`--nofile=${FILE_LIMIT}:${FILE_LIMIT}`, '--', command.command, ...command.args], { cwd: root, stdio: ['pipe', 'pipe', 'pipe'] });
  children.add(child);
  child.stdout.resume();
  const logs: Record<string, unknown>[] = [];
  let buffered = '';
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no listening line after 30 s:\n${JSON.stringify(logs.slice(-20))}`)), 30_000);
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`broker exited (${code ?? signal}) before listening:\n${JSON.stringify(logs.slice(-20))}`));
    });
    child.stderr.setEncoding('utf8').on('data', (text: string) => {
      buffered += text;
      for (let at = buffered.indexOf('\n'); at >= 0; at = buffered.indexOf('\n')) {
        const line = buffered.slice(0, at);
        buffered = buffered.slice(at + 1);
        let entry: Record<string, unknown>;
        try {
          entry = JSON.parse(line) as Record<string, unknown>;
        } catch {
          entry = { level: 'raw', msg: line };
        }
        logs.push(entry);
        if (entry.msg === 'listening' && typeof entry.url === 'string') {
          clearTimeout(timer);
          resolve(entry.url);
        }
      }
    });
  });
  return { url, port: Number(new URL(url).port), pid: child.pid!, logs, alive: () => child.exitCode === null && child.signalCode === null };
}

/** Open file descriptors of `pid` now (`/proc/<pid>/fd`). */
async function openFiles(pid: number): Promise<number> {
  return (await readdir(`/proc/${pid}/fd`)).length;
}

/** Samples `openFiles(pid)` every 20 ms until `stop()`; `max` is the highest count seen. */
function sampleOpenFiles(pid: number): { readonly max: number; stop(): Promise<void> } {
  let max = 0;
  let running = true;
  const loop = (async () => {
    while (running) {
      max = Math.max(max, await openFiles(pid).catch(() => 0));
      await sleep(20);
    }
  })();
  return {
    get max() {
      return max;
    },
    async stop() {
      running = false;
      await loop;
    },
  };
}

/** One sample of the broker's `/metrics`. */
async function metric(url: string, sample: string): Promise<number | undefined> {
  const text = (await request(`${url}/metrics`)).body.toString();
  const line = text.split('\n').find((l) => l.startsWith(`${sample} `));
  return line === undefined ? undefined : Number(line.slice(sample.length + 1));
}

/** What became of the stream opens of a flood. */
interface FloodOutcome {
  /** Answered 200: an open stream, held until `closeAll`. */
  streams: number;
  /** Answered 503, by error code. */
  refused: Map<string, number>;
  /** Other statuses, by status. */
  other: Map<number, number>;
  /** Connection errors (closed without an answer: ECONNRESET, socket hang up), by code. */
  errors: Map<string, number>;
}

/**
 * Opens `total` streaming GETs of `path` from 127.0.0.2 (another client than
 * the publisher on 127.0.0.1), `concurrency` at a time; a stream answered 200 is
 * held open (returned in `held`), anything else is closed.
 */
async function flood(port: number, path: string, total: number, concurrency: number, held: ClientRequest[]): Promise<FloodOutcome> {
  const outcome: FloodOutcome = { streams: 0, refused: new Map(), other: new Map(), errors: new Map() };
  const add = <K>(map: Map<K, number>, key: K): void => void map.set(key, (map.get(key) ?? 0) + 1);
  const openOne = (): Promise<void> =>
    new Promise((resolve) => {
      const req = httpRequest({ host: '127.0.0.1', port, path, localAddress: '127.0.0.2', agent: false });
      const timer = setTimeout(() => req.destroy(new Error('open timed out')), 15_000);
      req.once('error', (error: NodeJS.ErrnoException) => {
        clearTimeout(timer);
        add(outcome.errors, error.code ?? error.message);
        resolve();
      });
      req.once('response', (res) => {
        clearTimeout(timer);
        if (res.statusCode === 200) {
          outcome.streams++;
          held.push(req);
        } else {
          if (res.statusCode === 503) add(outcome.refused, String(res.headers['x-broker-error-code']));
          else add(outcome.other, res.statusCode ?? 0);
          res.resume();
          res.once('end', () => req.destroy());
        }
        resolve();
      });
      req.end();
    });
  for (let sent = 0; sent < total; sent += concurrency) {
    await Promise.all(Array.from({ length: Math.min(concurrency, total - sent) }, openOne));
  }
  return outcome;
}

/** One POST through `agent`: its status and error code. */
function post(url: string, body: string, agent: Agent): Promise<{ status: number; code: string | undefined }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { method: 'POST', agent, headers: { 'content-length': String(Buffer.byteLength(body)) }, signal: AbortSignal.timeout(10_000) });
    req.once('error', reject);
    req.once('response', (res) => {
      res.resume();
      res.once('end', () => resolve({ status: res.statusCode ?? 0, code: res.headers['x-broker-error-code'] as string | undefined }));
    });
    req.end(body);
  });
}

/**
 * Publishes one message after another from 127.0.0.1 until `done()`, on one
 * keep-alive connection (as `@msg/client` does) or, with `agent` undefined, a
 * fresh connection each; counts what succeeded and what failed (and why).
 */
async function publishUntil(url: string, done: () => boolean, agent?: Agent): Promise<{ ok: number; failed: string[]; maxMs: number; medianMs: number }> {
  const result = { ok: 0, failed: [] as string[], maxMs: 0, medianMs: 0 };
  const latencies: number[] = [];
  for (let i = 0; i < 100_000 && !done(); i++) {
    const sent = performance.now();
    try {
      const target = `${url}/messaging/messages?type=1&topicID=5`;
      const answer =
        agent === undefined
          ? await request(target, { method: 'POST', body: `legit-${i}`, timeoutMs: 10_000 }).then((a) => ({ status: a.status, code: a.headers['x-broker-error-code'] as string | undefined }))
          : await post(target, `kept-${i}`, agent);
      if (answer.status === 200) result.ok++;
      else result.failed.push(`${answer.status} ${String(answer.code)}`);
    } catch (error) {
      result.failed.push((error as Error).message);
    }
    latencies.push(performance.now() - sent);
  }
  latencies.sort((a, b) => a - b);
  result.maxMs = Math.round(latencies.at(-1) ?? 0);
  result.medianMs = Math.round(latencies[Math.floor(latencies.length / 2)] ?? 0);
  return result;
}

describe('limits against exhaustion (a broker under ulimit -n 1024)', () => {
  it('keeps serving a publisher through a flood of 10,000 stream opens, far from its fd limit', async () => {
    const broker = await startLimitedBroker(['--max-streams', '200', '--max-connections', '700', '--max-connections-per-client', '500']);
    const idle = await openFiles(broker.pid);
    const sampler = sampleOpenFiles(broker.pid);
    const held: ClientRequest[] = [];
    let flooding = true;
    const started = performance.now();
    const keepAlive = new Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const publishing = publishUntil(broker.url, () => !flooding);
      const publishingKept = publishUntil(broker.url, () => !flooding, keepAlive);
      // 1000 opens at a time: more than the flooding client may hold (500 connections), ten times the stream limit.
      const outcome = await flood(broker.port, '/messaging/messages?topicID=99&index=0&streaming=true', 10_000, 1000, held);
      flooding = false;
      const published = await publishing;
      const kept = await publishingKept;
      const seconds = (performance.now() - started) / 1000;
      await sampler.stop();

      // The measurements, for the record.
      console.log(
        JSON.stringify({
          fileLimit: FILE_LIMIT,
          idleFds: idle,
          maxFds: sampler.max,
          seconds,
          flood: { streams: outcome.streams, refused: Object.fromEntries(outcome.refused), other: Object.fromEntries(outcome.other), errors: Object.fromEntries(outcome.errors) },
          publishesFreshConnections: { ok: published.ok, failed: published.failed.length, medianMs: published.medianMs, maxMs: published.maxMs, firstFailures: published.failed.slice(0, 5) },
          publishesKeepAlive: { ok: kept.ok, failed: kept.failed.length, medianMs: kept.medianMs, maxMs: kept.maxMs, firstFailures: kept.failed.slice(0, 5) },
        }),
      );

      // Every publish of the legitimate clients succeeded, all through the flood, on fresh connections as on a kept one.
      expect(published.failed).toEqual([]);
      expect(kept.failed).toEqual([]);
      // One after another while the flood lasts (a few seconds). A fresh connection may wait for the kernel's
      // 1 s SYN retry: 1000 connects at once overflow the listen backlog (511), the broker's limits aside.
      expect(published.ok).toBeGreaterThanOrEqual(2);
      expect(kept.ok).toBeGreaterThanOrEqual(5);
      // The broker stayed well inside its descriptors: connections, stream readers and its own files.
      expect(sampler.max).toBeLessThan(FILE_LIMIT - 64);
      expect(broker.logs.filter((l) => JSON.stringify(l).includes('EMFILE'))).toEqual([]);
      // Exactly the stream limit was admitted; every other open was refused with a code, or its connection closed.
      expect(outcome.streams).toBe(200);
      expect(outcome.other).toEqual(new Map());
      const refusedStreams = outcome.refused.get('TOO_MANY_STREAMS') ?? 0;
      const refusedConnections = outcome.refused.get('TOO_MANY_CONNECTIONS') ?? 0;
      const cut = [...outcome.errors.values()].reduce((a, b) => a + b, 0);
      expect(refusedStreams + refusedConnections + cut).toBe(10_000 - 200);
      // Half of each batch of 1000 passed the flooding client's 500 connections: refused at the connection, 503 or closed.
      expect(refusedStreams).toBeGreaterThan(2000);
      expect(refusedConnections).toBeGreaterThan(0);
      expect(await metric(broker.url, 'msg_http_streams_refused_total{limit="streams"}')).toBe(refusedStreams);
      const answered = await metric(broker.url, 'msg_http_connections_refused_total{limit="connections_per_client",answered="true"}');
      const closed = await metric(broker.url, 'msg_http_connections_refused_total{limit="connections_per_client",answered="false"}');
      expect(answered! + closed!).toBe(refusedConnections + cut);
      expect(await metric(broker.url, 'msg_http_streams_admitted')).toBe(200);
    } finally {
      for (const req of held) req.destroy();
      keepAlive.destroy();
      await sampler.stop();
    }
    // Recovered: once the flood's streams are gone, streams open again.
    await waitFor(async () => (await metric(broker.url, 'msg_http_streams_admitted')) === 0, { timeoutMs: 10_000 });
    const again = await new Promise<number>((resolve, reject) => {
      const req = httpRequest(`${broker.url}/messaging/messages?topicID=99&index=0&streaming=true`, { agent: false });
      req.once('error', reject);
      req.once('response', (res) => {
        resolve(res.statusCode ?? 0);
        req.destroy();
      });
      req.end();
    });
    expect(again).toBe(200);
    expect(broker.alive()).toBe(true);
  });

  it('fits its default limits to the fd limit when none is given, and a flood then stays within it', async () => {
    const broker = await startLimitedBroker([]);
    const text = (await request(`${broker.url}/metrics`)).body.toString().split('\n');
    // 1024 - 64 (refused backlog) - 256 (reserve) = 704: a third for streams, the rest for connections.
    expect(text).toContain('msg_http_limit{limit="connections"} 470');
    expect(text).toContain('msg_http_limit{limit="streams"} 234');
    const sampler = sampleOpenFiles(broker.pid);
    const held: ClientRequest[] = [];
    let flooding = true;
    try {
      const publishing = publishUntil(broker.url, () => !flooding);
      await flood(broker.port, '/messaging/messages?topicID=98&index=0&streaming=true', 3000, 600, held);
      flooding = false;
      await publishing;
      await sampler.stop();
      console.log(JSON.stringify({ fittedDefaults: { maxFds: sampler.max, streams: held.length } }));
      expect(sampler.max).toBeLessThan(FILE_LIMIT);
      expect(held.length).toBe(234);
      expect(broker.logs.filter((l) => JSON.stringify(l).includes('EMFILE'))).toEqual([]);
    } finally {
      for (const req of held) req.destroy();
      await sampler.stop();
    }
    // Publishes work once the flood is gone.
    await waitFor(async () => (await request(`${broker.url}/messaging/messages?type=1&topicID=5`, { method: 'POST', body: 'after' })).status === 200, { timeoutMs: 10_000 });
  });

  it('cuts off a client that never finishes its headers after --headers-timeout-ms, answering 408', async () => {
    const broker = await startLimitedBroker(['--headers-timeout-ms', '500', '--request-timeout-ms', '2000']);
    const socket = connect(broker.port, '127.0.0.1');
    await new Promise((resolve) => socket.once('connect', resolve));
    const started = performance.now();
    socket.write('GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ');
    const chunks: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    await new Promise((resolve) => socket.once('close', resolve));
    const afterMs = performance.now() - started;
    expect(Buffer.concat(chunks).toString('latin1')).toMatch(/^HTTP\/1\.1 408 /);
    expect(afterMs).toBeGreaterThanOrEqual(450);
    expect(afterMs).toBeLessThan(3000);
    expect(await metric(broker.url, 'msg_http_client_errors_total{kind="timeout"}')).toBe(1);
  });

  it('ends a stream whose client stopped reading after --stream-stall-ms, and serves it again when it comes back', async () => {
    const broker = await startLimitedBroker(['--stream-stall-ms', '500', '--sync', 'never']);
    // 16 MiB in the topic: far more than the socket buffers of a client that reads nothing.
    const frame = (i: number): Buffer => {
      const header = Buffer.alloc(22);
      header.writeUInt16BE(1, 0);
      header.writeBigUInt64BE(3n, 2);
      header.writeUInt32BE(64 * 1024, 18);
      return Buffer.concat([header, Buffer.alloc(64 * 1024, i % 251)]);
    };
    for (let b = 0; b < 16; b++) {
      const body = Buffer.concat(Array.from({ length: 16 }, (_v, i) => frame(b * 16 + i)));
      expect((await request(`${broker.url}/messaging/batch`, { method: 'POST', body, timeoutMs: 30_000 })).status).toBe(200);
    }
    const socket = connect(broker.port, '127.0.0.1');
    socket.write('GET /messaging/messages?topicID=3&index=0&streaming=true HTTP/1.1\r\nHost: x\r\n\r\n');
    await new Promise((resolve) => socket.once('data', resolve));
    socket.pause();
    const closed = new Promise((resolve) => socket.once('close', resolve));
    await waitFor(async () => (await metric(broker.url, 'msg_http_streams_stalled_total')) === 1, { timeoutMs: 20_000 });
    socket.resume();
    await closed;
    expect(await metric(broker.url, 'msg_http_streams_admitted')).toBe(0);
    // A client that reads gets the whole topic.
    let received = 0;
    await new Promise<void>((resolve, reject) => {
      const req = httpRequest(`${broker.url}/messaging/messages?topicID=3&index=0`, { agent: false });
      req.once('error', reject);
      req.once('response', (res) => {
        res.on('data', (chunk: Buffer) => (received += chunk.byteLength));
        res.once('end', resolve);
      });
      req.end();
    });
    expect(received).toBe(256 * (22 + 64 * 1024));
  });
});
