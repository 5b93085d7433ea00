// Benchmarks of @msg/segments for 100-byte messages, each figure next to the
// disk's own sequential bandwidth measured by `dd` in the same run.
// Run: pnpm --filter @msg/segments bench (about 1-2 minutes, ~2.2 GB of temp files, deleted after).
import { spawnSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Message } from '@msg/wire';
import { Topic, type TopicOptions } from '../src/index.js';

const DATA = new Uint8Array(100).fill(0x61);
const MiB = 1024 * 1024;
const GiB = 1024 * MiB;
const TIMED_SECONDS = 3;

const message = (index: bigint): Message => ({ type: 1, topicID: 1n, index, data: DATA });
const seconds = (start: bigint): number => Number(process.hrtime.bigint() - start) / 1e9;
const mbps = (bytes: number, secs: number): number => bytes / MiB / secs;
const fmt = (n: number, digits = 0): string => n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });

function line(label: string, value: string, ratio?: string): void {
  console.log(`${label.padEnd(56)} ${value.padStart(30)}${ratio ? `   ${ratio}` : ''}`);
}

/** Runs `dd` and returns MiB/s from its own timing (bytes / seconds on its last line). */
function dd(args: string[]): number | undefined {
  const result = spawnSync('dd', args, { encoding: 'utf8' });
  if (result.status !== 0) return undefined;
  const match = /(\d+) bytes.*copied, ([\d.,]+) s/.exec(result.stderr);
  if (!match) return undefined;
  return Number(match[1]) / MiB / Number(match[2]!.replace(',', '.'));
}

async function openTopic(dir: string, options: TopicOptions): Promise<Topic> {
  const topic = new Topic(dir, { onRecovery: () => undefined, ...options });
  await topic.open();
  return topic;
}

/** Appends with `writers` concurrent loops for TIMED_SECONDS; returns msgs/s and on-disk MiB/s. */
async function appendRate(dir: string, options: TopicOptions, writers: number): Promise<{ rate: number; disk: number }> {
  const topic = await openTopic(dir, options);
  let next = 0n;
  let count = 0;
  const start = process.hrtime.bigint();
  const deadline = Date.now() + TIMED_SECONDS * 1000;
  await Promise.all(
    Array.from({ length: writers }, async () => {
      while (Date.now() < deadline) {
        await topic.append(message(++next));
        count++;
      }
    }),
  );
  const secs = seconds(start);
  const size = topic.size;
  await topic.close();
  await rm(dir, { recursive: true, force: true });
  return { rate: count / secs, disk: mbps(size, secs) };
}

async function main(): Promise<void> {
  const root = await mkdtemp(join(tmpdir(), 'segments-bench-'));
  try {
    console.log(`@msg/segments benchmarks, 100-byte messages (${process.version}, temp dir ${root})`);

    // --- the disk -------------------------------------------------------
    const ddFile = join(root, 'dd.bin');
    const ddWrite = dd(['if=/dev/zero', `of=${ddFile}`, 'bs=1M', 'count=1024', 'conv=fdatasync']);
    const ddReadDirect = dd([`if=${ddFile}`, 'of=/dev/null', 'bs=1M', 'iflag=direct']);
    const ddReadCached = dd([`if=${ddFile}`, 'of=/dev/null', 'bs=1M']);
    await rm(ddFile, { force: true });
    const ddRead = ddReadDirect ?? ddReadCached;
    line('dd: sequential write, 1 GiB, bs=1M conv=fdatasync', ddWrite === undefined ? 'n/a' : `${fmt(ddWrite)} MiB/s`);
    line(`dd: sequential read, 1 GiB, bs=1M${ddReadDirect === undefined ? '' : ' iflag=direct'}`, ddRead === undefined ? 'n/a' : `${fmt(ddRead)} MiB/s`);
    line('dd: sequential read, 1 GiB, bs=1M (page cache)', ddReadCached === undefined ? 'n/a' : `${fmt(ddReadCached)} MiB/s`);
    const ofWrite = (v: number): string => (ddWrite ? `(${fmt((100 * v) / ddWrite, 1)}% of dd write)` : '');

    // --- appends ----------------------------------------------------------
    const single = await appendRate(join(root, 'a1'), { sync: 'always' }, 1);
    line('append, fsync per append, 1 writer', `${fmt(single.rate)} msg/s ${fmt(single.disk, 2)} MiB/s`, ofWrite(single.disk));
    const group = await appendRate(join(root, 'a64'), { sync: 'always' }, 64);
    line('append, fsync, 64 concurrent appenders (group commit)', `${fmt(group.rate)} msg/s ${fmt(group.disk, 1)} MiB/s`, ofWrite(group.disk));
    const never1 = await appendRate(join(root, 'n1'), { sync: 'never' }, 1);
    line("append, sync 'never', 1 writer", `${fmt(never1.rate)} msg/s ${fmt(never1.disk, 1)} MiB/s`, ofWrite(never1.disk));
    const never64 = await appendRate(join(root, 'n64'), { sync: 'never' }, 64);
    line("append, sync 'never', 64 concurrent appenders", `${fmt(never64.rate)} msg/s ${fmt(never64.disk, 1)} MiB/s`, ofWrite(never64.disk));

    // --- a 1 GiB topic: bulk write, then replay -----------------------------
    const bigDir = join(root, 'big');
    const big = await openTopic(bigDir, { sync: 'never' });
    const BATCH = 4096;
    let index = 0n;
    const writeStart = process.hrtime.bigint();
    for (let round = 0; big.size < GiB && round < 1_000_000; round++) {
      const batch: Message[] = new Array<Message>(BATCH);
      for (let k = 0; k < BATCH; k++) batch[k] = message(++index);
      await big.appendBatch(batch);
    }
    await big.sync();
    const writeSecs = seconds(writeStart);
    const bigSize = big.size;
    const bigCount = Number(index);
    line(`appendBatch(${BATCH}), sync 'never', then sync(): 1 GiB`, `${fmt(bigCount / writeSecs)} msg/s ${fmt(mbps(bigSize, writeSecs))} MiB/s`, ofWrite(mbps(bigSize, writeSecs)));

    const ofRead = (v: number): string =>
      [ddRead ? `${fmt((100 * v) / ddRead, 1)}% of dd read` : '', ddReadCached ? `${fmt((100 * v) / ddReadCached, 1)}% of cached dd read` : '']
        .filter(Boolean)
        .join(', ');
    let frameBytes = 0;
    let replayStart = process.hrtime.bigint();
    for await (const chunk of big.reader(0n).frames()) frameBytes += chunk.byteLength;
    let replaySecs = seconds(replayStart);
    line(`replay 1 GiB from index 0, raw frames (${fmt(bigSize / MiB)} MiB on disk)`, `${fmt(mbps(bigSize, replaySecs))} MiB/s ${fmt(bigCount / replaySecs)} msg/s`, `(${ofRead(mbps(bigSize, replaySecs))})`);
    if (frameBytes !== bigCount * 122) throw new Error(`replay returned ${frameBytes} bytes of frames, expected ${bigCount * 122}`);

    let seen = 0;
    replayStart = process.hrtime.bigint();
    for await (const m of big.reader(0n)) if (m.data.byteLength === 100) seen++;
    replaySecs = seconds(replayStart);
    line('replay 1 GiB from index 0, as Message objects', `${fmt(mbps(bigSize, replaySecs))} MiB/s ${fmt(bigCount / replaySecs)} msg/s`, `(${ofRead(mbps(bigSize, replaySecs))})`);
    if (seen !== bigCount) throw new Error(`replay saw ${seen} messages, expected ${bigCount}`);
    const segmentCount = big.segments().length;
    await big.close();
    console.log(`  (${fmt(bigCount)} messages in ${segmentCount} segments of 10 MiB; the page cache is warm: the topic was just written)`);
    await rm(bigDir, { recursive: true, force: true });

    // --- append -> streaming reader latency ----------------------------------
    for (const sync of ['always', 'never'] as const) {
      const topic = await openTopic(join(root, `lat-${sync}`), { sync });
      const reader = topic.reader(1n, { streaming: true });
      const arrived: bigint[] = [];
      let notify: (() => void) | undefined;
      const reading = (async () => {
        for await (const m of reader) {
          arrived[Number(m.index)] = process.hrtime.bigint();
          notify?.();
        }
      })();
      const samples: number[] = [];
      const N = 1000;
      for (let i = 1; i <= N; i++) {
        const seenIt = new Promise<void>((resolve) => (notify = resolve));
        const t0 = process.hrtime.bigint();
        await topic.append(message(BigInt(i)));
        await seenIt;
        samples.push(Number(arrived[i]! - t0) / 1e6);
      }
      await reader.close();
      await reading;
      await topic.close();
      samples.sort((a, b) => a - b);
      const p = (q: number): number => samples[Math.min(samples.length - 1, Math.floor(q * samples.length))]!;
      line(`latency append() -> streaming reader, sync '${sync}' (${N} msgs)`, `p50 ${fmt(p(0.5), 3)} ms  p99 ${fmt(p(0.99), 3)} ms`);
    }
  } finally {
    await rm(root, { recursive: true, force: true });
  }
}

await main();
