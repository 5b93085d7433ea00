import { describe, expect, it } from '@jest/globals';
import { LEADER_STATUS } from '../../test/cli-fixtures.js';
import { parseNodeStatus } from './node-status.js';

describe('parseNodeStatus', () => {
  it('reads members, role, indexes, replication and topics', () => {
    const status = parseNodeStatus(LEADER_STATUS)!;
    expect(status).toMatchObject({ isLeader: true, role: 'leader', term: 3, commitIndex: 120, appliedIndex: 119, ready: { ready: true } });
    expect(status.members).toEqual(['http://127.0.0.1:8086', 'http://127.0.0.1:8087', 'http://127.0.0.1:8088']);
    expect(status.learners).toEqual(['http://127.0.0.1:8088']);
    expect(status.replication?.followers?.[1]).toEqual(LEADER_STATUS.replication.followers[1]);
    expect(status.topics[0]).toMatchObject({ id: 7n, firstIndex: 3n, lastIndex: 100n, messages: 90, publishRate: 12.5, openStreams: 1 });
    expect(status.topics[0]!.readers).toEqual([{ id: 'r1', index: 40n }]);
    expect(status.topics[0]!.anonymous).toEqual({ index: 90n, atMs: 1 });
  });

  it('leaves out what an older broker does not report, and fields of another shape', () => {
    const status = parseNodeStatus({
      isLeader: false,
      leaderURL: 'http://a:1',
      members: ['http://a:1', 'http://b:2'],
      term: 'three',
      commitIndex: 5,
      replication: 'soon',
      topics: [{ id: '1', firstIndex: '1', lastIndex: '2', bytes: 10, segments: 1, readers: [] }, { id: 'bad' }],
    })!;
    expect(status.term).toBeUndefined();
    expect(status.replication).toBeUndefined();
    expect(status.role).toBeUndefined();
    expect(status.members).toEqual(['http://a:1', 'http://b:2']);
    expect(status.topics).toHaveLength(1);
    expect(status.topics[0]!.messages).toBeUndefined();
  });

  it('is undefined for a body that is not an object', () => {
    expect(parseNodeStatus(undefined)).toBeUndefined();
    expect(parseNodeStatus([1])).toBeUndefined();
    expect(parseNodeStatus('ok')).toBeUndefined();
  });
});
