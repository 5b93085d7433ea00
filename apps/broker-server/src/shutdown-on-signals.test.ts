import { describe, expect, it } from '@jest/globals';
import { EventEmitter } from 'node:events';
import { ExitCodes } from './exit-codes.js';
import { createLogger } from './logger.js';
import { shutdownOnSignals } from './shutdown-on-signals.js';

function setup() {
  const source = new EventEmitter();
  const lines: Record<string, unknown>[] = [];
  const logger = createLogger('debug', (line) => lines.push(JSON.parse(line) as Record<string, unknown>));
  const exits: number[] = [];
  const shutdown = shutdownOnSignals(source, logger, (code) => exits.push(code));
  let finish!: () => void;
  let fail!: (error: unknown) => void;
  let closes = 0;
  const close = (): Promise<void> => {
    closes++;
    return new Promise<void>((resolve, reject) => {
      finish = resolve;
      fail = reject;
    });
  };
  const flush = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));
  return { source, lines, exits, shutdown, close, closes: () => closes, finish: () => finish(), fail: (e: unknown) => fail(e), flush };
}

describe('shutdownOnSignals', () => {
  it('closes the server on SIGTERM and exits 0 once it is closed', async () => {
    const t = setup();
    t.shutdown.started(t.close);
    t.source.emit('SIGTERM', 'SIGTERM');
    expect(t.closes()).toBe(1);
    await t.flush();
    expect(t.exits).toEqual([]);
    t.finish();
    await t.flush();
    expect(t.exits).toEqual([ExitCodes.OK]);
    expect(t.lines).toContainEqual(expect.objectContaining({ msg: 'signal received: shutting down', signal: 'SIGTERM' }));
  });

  it('exits 70 at once on a second signal while closing', async () => {
    const t = setup();
    t.shutdown.started(t.close);
    t.source.emit('SIGINT', 'SIGINT');
    t.source.emit('SIGINT', 'SIGINT');
    expect(t.exits).toEqual([ExitCodes.INTERNAL]);
    expect(t.closes()).toBe(1);
    await t.flush();
  });

  it('remembers a signal that came during startup and closes once started', async () => {
    const t = setup();
    t.source.emit('SIGINT', 'SIGINT');
    expect(t.closes()).toBe(0);
    t.shutdown.started(t.close);
    expect(t.closes()).toBe(1);
    t.finish();
    await t.flush();
    expect(t.exits).toEqual([ExitCodes.OK]);
  });

  it('exits with the code of the error when closing fails', async () => {
    const t = setup();
    t.shutdown.started(t.close);
    t.source.emit('SIGTERM', 'SIGTERM');
    t.fail(Object.assign(new Error('fsync failed'), { code: 'EIO', syscall: 'fsync' }));
    await t.flush();
    expect(t.exits).toEqual([ExitCodes.IO]);
    expect(t.lines).toContainEqual(expect.objectContaining({ level: 'error', msg: 'shutdown failed' }));
  });

  it('stops for a reason of the server\'s own with its exit code, once, and a signal meanwhile does not restart it', async () => {
    const t = setup();
    t.shutdown.stop('too early', ExitCodes.OK); // not started yet: ignored
    expect(t.closes()).toBe(0);
    t.shutdown.started(t.close);
    t.shutdown.stop('removed from the cluster', ExitCodes.OK);
    t.shutdown.stop('again', ExitCodes.INTERNAL);
    t.source.emit('SIGTERM', 'SIGTERM');
    expect(t.closes()).toBe(1);
    t.finish();
    await t.flush();
    expect(t.exits).toEqual([ExitCodes.OK]);
    expect(t.lines).toContainEqual(expect.objectContaining({ level: 'warn', msg: 'shutting down', reason: 'removed from the cluster', exitCode: 0 }));
  });

  it('a stop after a signal is ignored: the signal\'s shutdown goes on', async () => {
    const t = setup();
    t.shutdown.started(t.close);
    t.source.emit('SIGINT', 'SIGINT');
    t.shutdown.stop('raft failed', ExitCodes.IO);
    expect(t.closes()).toBe(1);
    t.finish();
    await t.flush();
    expect(t.exits).toEqual([ExitCodes.OK]);
  });
});
