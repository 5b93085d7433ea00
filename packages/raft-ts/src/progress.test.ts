import { describe, expect, it } from '@jest/globals';
import { Progress } from './progress.js';

describe('Progress', () => {
  it('probes one request at a time, then streams a window of requests once the logs agree', () => {
    const p = new Progress(11, 1000);
    expect(p.paused(8)).toBe(false);
    p.onSend(11, 20, 1001);
    expect(p).toMatchObject({ next: 11, inflight: 1, lastSent: 1001 }); // probing: next not advanced
    expect(p.paused(8)).toBe(true);
    p.onAnswer(1002);
    p.onSuccess(20, 20);
    expect(p).toMatchObject({ match: 20, next: 21, probing: false, inflight: 0, lastContact: 1002 });
    for (let i = 0; i < 3; i++) p.onSend(21 + i * 10, 30 + i * 10, 1003);
    expect(p).toMatchObject({ next: 51, inflight: 3 });
    expect(p.paused(3)).toBe(true);
    expect(p.paused(4)).toBe(false);
  });

  it('never moves match back, nor beyond the leader’s last index', () => {
    const p = new Progress(1, 0);
    p.onSuccess(50, 40);
    expect(p.match).toBe(40);
    p.onSuccess(30, 40);
    expect(p).toMatchObject({ match: 40, next: 41 });
  });

  it('falls back to probing from match + 1 when a streamed request fails', () => {
    const p = new Progress(1, 0);
    p.onSuccess(10, 10);
    p.onSend(11, 20, 5);
    p.onSend(21, 30, 5);
    p.onFailure();
    expect(p).toMatchObject({ inflight: 1, probing: true, next: 11 });
    p.onFailure();
    p.onFailure();
    expect(p.inflight).toBe(0);
  });

  it('probes back from a rejection’s hint, never below match + 1, and ignores a stale one', () => {
    const p = new Progress(31, 0);
    p.match = 5;
    expect(p.onReject(30, 12)).toBe(true);
    expect(p).toMatchObject({ next: 13, probing: true });
    expect(p.onReject(30, 2)).toBe(true);
    expect(p.next).toBe(6);
    expect(p.onReject(4, 0)).toBe(false);
    expect(p.next).toBe(6);
  });

  it('forgets requests in flight once none was sent for longer than the timeout', () => {
    const p = new Progress(1, 0);
    p.onSuccess(10, 10);
    p.onSend(11, 20, 100);
    p.expireLost(200, 100);
    expect(p.inflight).toBe(1);
    p.expireLost(201, 100);
    expect(p).toMatchObject({ inflight: 0, probing: true, next: 11 });
  });

  it('probes from after an installed snapshot', () => {
    const p = new Progress(1, 0);
    p.onSnapshot(100);
    expect(p).toMatchObject({ match: 100, next: 101, probing: true });
  });

  it('sends in the order the sends were made, even when an earlier one waits longer for its read', async () => {
    const p = new Progress(1, 0);
    const sent: string[] = [];
    let finishFirst!: (v: string) => void;
    const first = p.inOrder(new Promise<string>((r) => (finishFirst = r)), (v) => sent.push(v));
    const second = p.inOrder(Promise.resolve('second'), (v) => sent.push(v));
    expect(p.queued).toBe(2);
    await new Promise((r) => setImmediate(r));
    expect(sent).toEqual([]);
    finishFirst('first');
    await Promise.all([first, second]);
    expect(sent).toEqual(['first', 'second']);
    expect(p.queued).toBe(0);
  });
  it('tracks a snapshot transfer and reports it once the follower installed it', () => {
    const sent: [number, number][] = [];
    const p = new Progress(1, 0, (bytes, seconds) => sent.push([bytes, seconds]));
    expect(p.heard).toBe(false);
    p.onSnapshotChunk(400, 1000, 2000);
    expect(p).toMatchObject({ heard: true, lastContact: 2000, snapshotSent: 400, snapshotTotal: 1000 });
    p.onSnapshotChunk(1000, 1000, 3500);
    expect(sent).toEqual([]);
    p.onSnapshot(77);
    expect(sent).toEqual([[1000, 1.5]]);
    expect(p).toMatchObject({ match: 77, snapshotSent: 0, snapshotTotal: 0 });
    // A snapshot index learned without a recorded transfer reports nothing.
    p.onSnapshot(78);
    expect(sent).toHaveLength(1);
  });

  it('restarts the transfer clock when a transfer starts over', () => {
    const sent: [number, number][] = [];
    const p = new Progress(1, 0, (bytes, seconds) => sent.push([bytes, seconds]));
    p.onSnapshotChunk(500, 1000, 1000);
    p.onSnapshotChunk(100, 1000, 5000); // the follower holds less: a new transfer from the start
    p.onSnapshotChunk(1000, 1000, 6000);
    p.onSnapshot(10);
    expect(sent).toEqual([[1000, 1]]);
  });
});
