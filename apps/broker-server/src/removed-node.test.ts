import { describe, expect, it } from '@jest/globals';
import { refuseRemovedNode, type MembershipView } from './removed-node.js';

function view(state: string): MembershipView {
  return { url: 'http://127.0.0.1:8088', state, clusterId: () => 'c-1', urls: () => ['http://127.0.0.1:8086', 'http://127.0.0.1:8087'] };
}

describe('refuseRemovedNode', () => {
  it('logs and throws NODE_REMOVED for a removed node, saying so plainly', () => {
    const lines: [string, Record<string, unknown> | undefined][] = [];
    const logger = { error: (msg: string, fields?: Record<string, unknown>) => void lines.push([msg, fields]) };
    let error: unknown;
    try {
      refuseRemovedNode(view('removed'), '/data/n3', logger);
    } catch (e) {
      error = e;
    }
    expect(error).toMatchObject({ code: 'NODE_REMOVED', dataDir: '/data/n3' });
    expect((error as Error).message).toContain('http://127.0.0.1:8088 was removed from the cluster c-1');
    expect(lines).toEqual([['removed from the cluster', expect.objectContaining({ url: 'http://127.0.0.1:8088', clusterId: 'c-1' })]]);
  });

  it('lets members and nodes with no cluster yet start', () => {
    const logger = { error: () => undefined };
    for (const state of ['follower', 'leader', 'learner', 'uninitialized']) expect(() => refuseRemovedNode(view(state), '/d', logger)).not.toThrow();
  });
});
