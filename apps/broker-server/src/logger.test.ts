import { describe, expect, it } from '@jest/globals';
import { createLogger } from './logger.js';

const epoch = (): Date => new Date(0);

/** An error as the broker's stores raise them: a code, a bigint detail and a cause chain down to the system error. */
function diskError(): Error {
  const eio = Object.assign(new Error('EIO: i/o error, write'), { code: 'EIO', errno: -5, syscall: 'write' });
  const segment = new Error('segment write failed', { cause: eio });
  return Object.assign(new Error('topic 7 failed', { cause: segment }), { code: 'IO_FAILED', offset: 2n ** 60n });
}

describe('createLogger', () => {
  it('writes one JSON line per call at or above its level', () => {
    const lines: string[] = [];
    const logger = createLogger('info', (line) => lines.push(line), epoch);
    logger.debug('hidden');
    logger.info('published', { topicID: 7n, index: 2n });
    logger.error('failed', { error: Object.assign(new Error('disk full'), { code: 'ENOSPC' }) });
    expect(lines).toHaveLength(2);
    expect(lines.every((line) => line.endsWith('\n'))).toBe(true);
    expect(JSON.parse(lines[0]!)).toEqual({ time: '1970-01-01T00:00:00.000Z', level: 'info', msg: 'published', topicID: '7', index: '2' });
    expect(JSON.parse(lines[1]!)).toMatchObject({ level: 'error', error: { name: 'Error', message: 'disk full', code: 'ENOSPC' } });
  });

  it('writes an error with its stack, its own fields and its whole cause chain', () => {
    const lines: string[] = [];
    const error = diskError();
    createLogger('info', (line) => lines.push(line), epoch).error('node failed', { err: error });

    const logged = (JSON.parse(lines[0]!) as { err: Record<string, unknown> }).err;
    expect(logged).toMatchObject({ name: 'Error', message: 'topic 7 failed', code: 'IO_FAILED', offset: String(2n ** 60n), stack: error.stack });
    const segment = logged.cause as Record<string, unknown>;
    expect(segment).toMatchObject({ message: 'segment write failed', stack: (error.cause as Error).stack });
    expect(segment.cause).toMatchObject({ message: 'EIO: i/o error, write', code: 'EIO', errno: -5, syscall: 'write' });
    expect(typeof (segment.cause as Record<string, unknown>).stack).toBe('string');
  });

  it('writes causes that are not errors, and a cause chain that loops back, without throwing', () => {
    const lines: string[] = [];
    const first = new Error('first');
    const second = new Error('second', { cause: first });
    (first as { cause?: unknown }).cause = second;
    const logger = createLogger('info', (line) => lines.push(line), epoch);
    logger.warn('odd causes', { a: new Error('a', { cause: { status: 503, id: 9n } }), b: second });

    const logged = JSON.parse(lines[0]!) as { a: Record<string, unknown>; b: Record<string, unknown> };
    expect(logged.a.cause).toEqual({ status: 503, id: '9' });
    expect((logged.b.cause as Record<string, unknown>).message).toBe('first');
    expect((logged.b.cause as Record<string, unknown>).cause).toBe('[Circular]');
  });

  it('still writes a line when a field cannot be serialized', () => {
    const lines: string[] = [];
    const hostile = {
      get boom(): never {
        throw new Error('getter failed');
      },
    };
    createLogger('info', (line) => lines.push(line), epoch).info('with a hostile field', { hostile });
    expect(JSON.parse(lines[0]!)).toMatchObject({ level: 'info', msg: 'with a hostile field', logError: expect.stringContaining('getter failed') });
  });

  it('writes readable lines, with the stack and causes beneath, in the text format', () => {
    const lines: string[] = [];
    const error = diskError();
    const logger = createLogger('info', { write: (line) => lines.push(line), now: epoch, format: 'text' });
    logger.info('listening', { url: 'http://127.0.0.1:8086', members: ['http://127.0.0.1:8086'], appliedIndex: 31n, note: 'two words' });
    logger.error('node failed', { err: error, exitCode: 74 });

    expect(lines[0]).toBe('1970-01-01T00:00:00.000Z INFO  listening url=http://127.0.0.1:8086 members=["http://127.0.0.1:8086"] appliedIndex=31 note="two words"\n');
    const text = lines[1]!;
    expect(text.split('\n')[0]).toBe('1970-01-01T00:00:00.000Z ERROR node failed err="Error [IO_FAILED]: topic 7 failed" exitCode=74');
    expect(text).toContain(`\n    ${error.stack!.split('\n')[1]!.trim()}`);
    expect(text).toContain('\n  Caused by: Error: segment write failed\n');
    expect(text).toContain('\n  Caused by: Error [EIO]: EIO: i/o error, write\n');
    expect(text.endsWith('\n')).toBe(true);
  });

  it('picks text lines for a terminal and JSON lines otherwise', () => {
    const written: string[] = [];
    const terminal = { isTTY: true, write: (text: string) => written.push(text) };
    const pipe = { write: (text: string) => written.push(text) };
    createLogger('info', { stream: terminal, now: epoch }).info('ready', { port: 8086 });
    createLogger('info', { stream: pipe, now: epoch }).info('ready', { port: 8086 });
    expect(written).toEqual(['1970-01-01T00:00:00.000Z INFO  ready port=8086\n', '{"time":"1970-01-01T00:00:00.000Z","level":"info","msg":"ready","port":8086}\n']);
  });
});
