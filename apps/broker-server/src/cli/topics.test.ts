import { describe, expect, it } from '@jest/globals';
import type { AdminReader } from './connect.js';
import { parseNodeStatus } from './node-status.js';
import { LEADER_STATUS } from '../../test/cli-fixtures.js';
import { formatTopics, readerLag, readTopics, topicsJSON } from './topics.js';

describe('msg topics', () => {
  const source = { url: 'http://127.0.0.1:8086', status: parseNodeStatus(LEADER_STATUS)! };

  it('lists each topic and each reader with its lag behind the last index', () => {
    const text = formatTopics(source);
    expect(text).toContain('topics (read from http://127.0.0.1:8086):');
    expect(text).toMatch(/TOPIC +FIRST +LAST +MESSAGES +BYTES +SEGMENTS +RATE\/S +STREAMS +READERS/);
    expect(text).toMatch(/ 7 +3 +100 +90 +2\.0 KiB +2 +12\.5 +1 +2\n/);
    expect(text).toMatch(/ 7 +r1 +40 +60\n/);
    expect(text).toMatch(/ 7 +\(anonymous\) +90 +10\n/);
  });

  it('shows "-" for fields an older broker does not report', () => {
    const old = parseNodeStatus({ topics: [{ id: '9', firstIndex: '1', lastIndex: '5', bytes: 100, segments: 1, readers: [] }] })!;
    expect(formatTopics({ url: 'http://x:1', status: old })).toMatch(/ 9 +1 +5 +- +100 B +1 +- +- +0\n/);
    expect(formatTopics({ url: 'http://x:1', status: parseNodeStatus({ topics: [] })! })).toBe('no topics (read from http://x:1)\n');
  });

  it('gives JSON with u64 indexes as strings', () => {
    const json = topicsJSON(source) as { topics: Record<string, unknown>[] };
    expect(json.topics[0]).toMatchObject({ id: '7', firstIndex: '3', lastIndex: '100', messages: 90, publishRate: 12.5, openStreams: 1 });
    expect(json.topics[0]!.readers).toEqual([
      { id: 'r1', index: '40', lag: '60' },
      { id: '(anonymous)', index: '90', lag: '10' },
    ]);
  });

  it('reads the leader a follower names', async () => {
    const asked: string[] = [];
    const reader: AdminReader = {
      async get(url) {
        asked.push(url.origin);
        return url.port === '8087'
          ? { status: 200, body: { isLeader: false, leaderURL: 'http://127.0.0.1:8086', topics: [] } }
          : { status: 200, body: LEADER_STATUS };
      },
    };
    const read = await readTopics(reader, [new URL('http://127.0.0.1:8087')]);
    expect(read.url).toBe('http://127.0.0.1:8086');
    expect(read.status.topics).toHaveLength(1);
    expect(asked).toEqual(['http://127.0.0.1:8087', 'http://127.0.0.1:8086']);
  });

  it('a reader at or beyond the last index has no lag', () => {
    const topic = source.status.topics[0]!;
    expect(readerLag(topic, 100n)).toBe(0n);
    expect(readerLag(topic, 150n)).toBe(0n);
    expect(readerLag(topic, 99n)).toBe(1n);
  });
});
