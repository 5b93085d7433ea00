// The two ceilings every figure of the bench is compared with, measured in
// the same run: a bare node:http server (what HTTP alone costs on this
// machine) and the disk's fsync rate (what durability alone costs).
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, fdatasyncSync, openSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { track } from './processes.js';

const BARE_SERVER = `
const http = require('node:http');
const server = http.createServer((req, res) => { req.resume(); req.on('end', () => { res.writeHead(200, { 'content-length': 0 }); res.end(); }); });
server.listen(0, '127.0.0.1', () => process.stdout.write(server.address().port + '\\n'));
`;

/** A bare node:http server in its own process answering 200 (empty body) to every request once its body is read. */
export async function startBareServer(): Promise<{ child: ChildProcess; port: number; pid: number }> {
  const child = track(spawn(process.execPath, ['-e', BARE_SERVER], { stdio: ['ignore', 'pipe', 'inherit'] }));
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('the bare server did not start in 10 s')), 10_000);
    child.stdout!.setEncoding('utf8').once('data', (text: string) => {
      clearTimeout(timer);
      resolve(Number(text.trim()));
    });
  });
  return { child, port, pid: child.pid! };
}

/** The disk's fsync rate: appends of `bytes` each followed by fdatasync. */
export interface FsyncRate {
  count: number;
  perSecond: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
}

/**
 * Appends `bytes` bytes to a file in `dir` and fdatasyncs it, in a loop, for
 * `durationMs` (synchronous calls: no thread pool in the way; the file grows,
 * as a log does, so each fdatasync also makes the new size durable).
 */
export function measureFsync(dir: string, durationMs: number, bytes = 100): FsyncRate {
  const fd = openSync(join(dir, 'fsync-probe'), 'a');
  const data = Buffer.alloc(bytes, 0x66);
  const latencies: number[] = [];
  const start = performance.now();
  try {
    for (let i = 0; i < 1_000_000 && performance.now() - start < durationMs; i++) {
      const t = performance.now();
      writeSync(fd, data);
      fdatasyncSync(fd);
      latencies.push(performance.now() - t);
    }
  } finally {
    closeSync(fd);
  }
  const seconds = (performance.now() - start) / 1000;
  latencies.sort((a, b) => a - b);
  const pick = (q: number): number => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? NaN;
  return { count: latencies.length, perSecond: latencies.length / seconds, p50Ms: pick(0.5), p99Ms: pick(0.99), maxMs: latencies[latencies.length - 1] ?? NaN };
}
