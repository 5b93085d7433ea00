import type { RaftRefusal } from 'raft-ts';
import type { JsonLogger } from './logger.js';

/**
 * A `createRaftHandler` `onRefused` listener that logs refused peer RPCs as
 * warnings, at most one line per `intervalMs` (default 1000): a flood of
 * forged requests cannot flood the log. Each line names the RPC, the reason,
 * the client's address, and how many refusals the previous interval left
 * unlogged. Nothing secret is in a request's refusal, so nothing secret is logged.
 */
export function refusalLogger(logger: JsonLogger, intervalMs = 1000, now: () => number = Date.now): (refusal: RaftRefusal) => void {
  let last = Number.NEGATIVE_INFINITY;
  let suppressed = 0;
  return (refusal) => {
    const at = now();
    if (at - last < intervalMs) {
      suppressed++;
      return;
    }
    last = at;
    logger.warn('refused a raft RPC without a valid peer signature', { ...refusal, suppressed });
    suppressed = 0;
  };
}
