import { describe, expect, it } from '@jest/globals';
import { createLogger } from './logger.js';

describe('createLogger', () => {
  it('writes one JSON line per call at or above its level', () => {
    const lines: string[] = [];
    const logger = createLogger('info', (line) => lines.push(line), () => new Date(0));
    logger.debug('hidden');
    logger.info('published', { topicID: 7n, index: 2n });
    logger.error('failed', { error: Object.assign(new Error('disk full'), { code: 'ENOSPC' }) });
    expect(lines).toHaveLength(2);
    expect(lines.every((line) => line.endsWith('\n'))).toBe(true);
    expect(JSON.parse(lines[0]!)).toEqual({ time: '1970-01-01T00:00:00.000Z', level: 'info', msg: 'published', topicID: '7', index: '2' });
    expect(JSON.parse(lines[1]!)).toMatchObject({ level: 'error', error: { name: 'Error', message: 'disk full', code: 'ENOSPC' } });
  });
});
