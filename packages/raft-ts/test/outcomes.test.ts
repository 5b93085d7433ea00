// What a pending apply() is told when it cannot be answered: whether its entry may still commit. An entry that
// was appended to the leader's log may be committed by the next leader (LEADERSHIP_LOST: the outcome is
// unknown); a proposal that never reached the log was not written (NOT_LEADER, CLOSED, or the node's failure).
import { describe, expect, it } from '@jest/globals';
import { waitFor } from '@msg/test-utils';
import { isRaftError } from '../src/errors.js';
import { A, append, B, codeOf, command, elect, joinThree, openHarness, type Harness, type HeldCall } from './harness.js';

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Answers `target`'s AppendEntries (success, or `answer` false: left unanswered) until one carries `text`; returns that call. */
async function appendCarrying(h: Harness, target: string, text: string, answerEarlier = true): Promise<HeldCall> {
  for (let i = 0; i < 20; i++) {
    const call = await h.transport.next('appendEntries', target);
    if (call.req.entries.some((e) => decoder.decode(e.data) === text)) return call;
    if (answerEarlier) call.resolve({ term: h.node.term, success: true, matchIndex: call.req.prevLogIndex + call.req.entries.length });
  }
  throw new Error(`no AppendEntries to ${target} carried ${text}`);
}

describe('the outcome a pending apply is told', () => {
  it('a leader that steps down: its appended entry may commit (LEADERSHIP_LOST), and does under the next leader', async () => {
    const h = await openHarness();
    await joinThree(h);
    await elect(h);
    const term = h.node.term;
    const pending = h.node.apply(encoder.encode('appended'));
    const ae = await appendCarrying(h, A, 'appended');
    const entry = ae.req.entries.find((e) => decoder.decode(e.data) === 'appended')!;
    // A's answer is lost; A wins the next term with this entry in its log and commits it with its first append.
    const res = append(h, { term: term + 1, prevLogIndex: entry.index, prevLogTerm: term, entries: [command(entry.index + 1, term + 1, 'next')], leaderCommit: entry.index + 1 });
    const err = await pending.catch((e: unknown) => e);
    expect(isRaftError(err, 'LEADERSHIP_LOST')).toBe(true);
    expect((err as Error).message).toMatch(/may still commit/);
    expect((await res).success).toBe(true);
    await waitFor(() => h.sm.texts().includes('appended'));
    await h.node.close();
  });

  it('a leader that steps down before a proposal reached its log: NOT_LEADER with the new leader (nothing was written)', async () => {
    const h = await openHarness();
    await joinThree(h);
    await elect(h);
    const term = h.node.term;
    // In the same turn: the proposal waits for the next flush; B's append of a later term steps the leader down first.
    const pending = h.node.apply(encoder.encode('never appended'));
    const stepDown = append(h, { term: term + 1, from: B, prevLogIndex: 0, prevLogTerm: 0, leaderCommit: 0 });
    const err = await pending.catch((e: unknown) => e);
    expect(isRaftError(err, 'NOT_LEADER')).toBe(true);
    expect((err as { leaderURL?: string }).leaderURL).toBe(B);
    await stepDown;
    for (let i = 1; i <= h.node.lastIndex; i++) {
      const e = await h.node.readLogEntry(i);
      expect(decoder.decode(e?.data ?? new Uint8Array())).not.toBe('never appended');
    }
    await h.node.close();
  });

  it('a node that fails: its committed entry gets the failure; one appended after it may commit elsewhere (LEADERSHIP_LOST, the failure as cause)', async () => {
    const h = await openHarness();
    await joinThree(h);
    await elect(h);
    h.sm.failOn = 'poison';
    const poison = h.node.apply(encoder.encode('poison'));
    const first = await appendCarrying(h, B, 'poison');
    const poisonIndex = first.req.entries.at(-1)!.index;
    const pending = h.node.apply(encoder.encode('after the poison'));
    await waitFor(() => h.node.lastIndex > poisonIndex);
    // B acknowledges the poison only: it commits, and applying it fails the node; the next entry is not committed.
    first.resolve({ term: h.node.term, success: true, matchIndex: poisonIndex });
    expect(await codeOf(poison)).toBe('APPLY_FAILED');
    const err = await pending.catch((e: unknown) => e);
    expect(isRaftError(err, 'LEADERSHIP_LOST')).toBe(true);
    expect(isRaftError((err as Error).cause, 'APPLY_FAILED')).toBe(true);
    await h.node.close();
  });
});
