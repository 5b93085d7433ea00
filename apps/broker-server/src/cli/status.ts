import { booleanFlag, CONNECTION_FLAGS, CONNECTION_USAGE, connectionOf, integerFlag, parseCommandArgs } from './args.js';
import { AdminPaths, adminReader, type AdminReader } from './connect.js';
import { CliError, CliExitCodes, describeError, type CliExitCode } from './errors.js';
import { parseNodeStatus, type NodeStatus } from './node-status.js';
import { createProgress, type ProgressStream } from './progress.js';
import { cell, formatMs, formatTable, MISSING } from './table.js';
import type { CommandIO } from './io.js';

/** One member of the cluster as `msg status` saw it. */
export interface MemberView {
  /** The member's URL. */
  url: string;
  /** Whether its `/status` answered. */
  reachable: boolean;
  /** Why not, when not reachable (or what it answered instead of a status). */
  error?: string;
  /** Its own `/status`, when reachable. */
  status?: NodeStatus;
  /** Its `/ready`: `true` when it answered 200, `false` for 503; absent when unknown. */
  ready?: boolean;
  /** The reason `/ready` (or `/status`) gave for not being ready. */
  readyReason?: string;
  /** Voter or learner of the configuration (as the member that answered first shows it). */
  kind?: 'voter' | 'learner';
}

/** What `msg status` shows. */
export interface ClusterView {
  /** The leader, as the reachable members agree (the one that says it leads, else the one most of them name). */
  leader?: string;
  /** Every member (voters, then learners), with what each answered. */
  members: MemberView[];
}

/**
 * Reads the cluster: the `/status` of the first of `urls` that answers gives
 * the members (its configuration's voters and learners, or the member list
 * it shows), then every member's `/status` and `/ready` are read in
 * parallel. Rejects `UNAVAILABLE` (exit 69) when none of `urls` answers.
 */
export async function gatherStatus(reader: AdminReader, urls: readonly URL[]): Promise<ClusterView> {
  let first: { url: URL; status: NodeStatus } | undefined;
  const failures: string[] = [];
  for (const url of urls) {
    try {
      const answer = await reader.get(url, AdminPaths.status);
      if (answer.status === 401 || answer.status === 403) {
        const code = answer.status === 401 ? 'UNAUTHENTICATED' : 'FORBIDDEN';
        throw Object.assign(new Error(`${url.origin}${AdminPaths.status} answered ${answer.status}: /status needs an identity with admin rights (--token)`), { code });
      }
      const status = answer.status === 200 ? parseNodeStatus(answer.body) : undefined;
      if (status === undefined) {
        failures.push(`${url.origin}: answered ${answer.status} without a status`);
        continue;
      }
      first = { url, status };
      break;
    } catch (error) {
      if ((error as { code?: unknown }).code === 'UNAUTHENTICATED' || (error as { code?: unknown }).code === 'FORBIDDEN') throw error;
      failures.push(`${url.origin}: ${describeError(error)}`);
    }
  }
  if (first === undefined) throw new CliError('UNAVAILABLE', `no broker answered: ${failures.join('; ')}`);
  const voters = new Set(first.status.voters ?? []);
  const learners = new Set(first.status.learners ?? []);
  const all = [...new Set([...(first.status.members.length > 0 ? first.status.members : [first.url.origin])])];
  const members = await Promise.all(
    all.map(async (url): Promise<MemberView> => {
      const view: MemberView = { url, reachable: false };
      if (voters.has(url)) view.kind = 'voter';
      else if (learners.has(url)) view.kind = 'learner';
      const target = new URL(url);
      const readStatus = async (): Promise<NodeStatus> => {
        if (url === first.url.origin) return first.status;
        const answer = await reader.get(target, AdminPaths.status);
        const parsed = answer.status === 200 ? parseNodeStatus(answer.body) : undefined;
        if (parsed === undefined) throw new Error(`answered ${answer.status} without a status`);
        return parsed;
      };
      const [status, ready] = await Promise.allSettled([readStatus(), reader.get(target, AdminPaths.ready)]);
      if (status.status === 'rejected') view.error = describeError(status.reason);
      else {
        view.reachable = true;
        view.status = status.value;
      }
      if (ready.status === 'fulfilled' && (ready.value.status === 200 || ready.value.status === 503)) {
        view.ready = ready.value.status === 200;
        const reason = (ready.value.body as { reason?: unknown } | undefined)?.reason;
        if (typeof reason === 'string') view.readyReason = reason;
      } else if (view.status?.ready !== undefined) {
        view.ready = view.status.ready.ready;
        if (view.status.ready.reason !== undefined) view.readyReason = view.status.ready.reason;
      }
      return view;
    }),
  );
  const leader = members.find((m) => m.status?.isLeader === true || m.status?.role === 'leader')?.url ?? mostNamed(members);
  return leader === undefined ? { members } : { leader, members };
}

/** The leader URL most reachable members name. */
function mostNamed(members: readonly MemberView[]): string | undefined {
  const votes = new Map<string, number>();
  for (const m of members) if (m.status?.leaderURL !== undefined) votes.set(m.status.leaderURL, (votes.get(m.status.leaderURL) ?? 0) + 1);
  return [...votes].sort((a, b) => b[1] - a[1])[0]?.[0];
}

/** The lag of `member` in entries: the leader's view of it when the leader reports one, else its own. */
function lagOf(view: ClusterView, member: MemberView): number | null | undefined {
  if (member.url === view.leader) return member.status === undefined ? undefined : 0;
  const leader = view.members.find((m) => m.url === view.leader);
  const seen = leader?.status?.replication?.followers?.find((f) => f.url === member.url);
  return seen?.lagEntries ?? member.status?.replication?.lagEntries;
}

/**
 * `msg status` as text: one line per member (URL, voter or learner, role,
 * term, commit and applied index, lag in entries, last leader contact,
 * readiness), then, when the leader reports them, its followers' replication
 * (match index, lag in entries and seconds, last contact, snapshot transfer).
 * What a broker does not report shows as "-".
 */
export function formatStatus(view: ClusterView): string {
  const leaderView = view.members.find((m) => m.url === view.leader);
  const term = leaderView?.status?.term;
  const head = `leader ${view.leader ?? MISSING}, term ${cell(term)}, ${view.members.length} member${view.members.length === 1 ? '' : 's'}`;
  const rows = view.members.map((m) => {
    const s = m.status;
    if (!m.reachable) return [m.url, cell(m.kind), 'unreachable', MISSING, MISSING, MISSING, MISSING, MISSING, `no (${m.error ?? 'no answer'})`];
    const contact = m.url === view.leader ? MISSING : formatMs(s?.replication?.lastLeaderContactMs);
    const ready = m.ready === undefined ? MISSING : m.ready ? 'yes' : `no${m.readyReason === undefined ? '' : ` (${m.readyReason})`}`;
    return [m.url, cell(m.kind), cell(s?.role), cell(s?.term), cell(s?.commitIndex), cell(s?.appliedIndex), cell(lagOf(view, m)), contact, ready];
  });
  let out = `${head}\n\n${formatTable(['MEMBER', 'KIND', 'ROLE', 'TERM>', 'COMMIT>', 'APPLIED>', 'LAG>', 'LEADER CONTACT>', 'READY'], rows)}`;
  const followers = leaderView?.status?.replication?.followers;
  if (followers !== undefined && followers.length > 0) {
    const frows = followers.map((f) => [
      f.url,
      cell(f.matchIndex),
      cell(f.lagEntries),
      f.lagSeconds === undefined || f.lagSeconds === null ? MISSING : f.lagSeconds.toFixed(1),
      formatMs(f.lastContactMs),
      f.snapshot === undefined || f.snapshot === null ? MISSING : `${f.snapshot.sentBytes}/${f.snapshot.totalBytes} bytes`,
    ]);
    out += `\nreplication (as the leader sees it, commit ${cell(leaderView?.status?.replication?.leaderCommitIndex ?? leaderView?.status?.commitIndex)}):\n`;
    out += formatTable(['FOLLOWER', 'MATCH>', 'LAG>', 'LAG S>', 'LAST CONTACT>', 'SNAPSHOT'], frows);
  }
  return out;
}

/** `msg status --json`: the view with bigint-free, stable fields. */
export function statusJSON(view: ClusterView): unknown {
  return {
    leader: view.leader ?? null,
    members: view.members.map((m) => ({
      url: m.url,
      kind: m.kind ?? null,
      reachable: m.reachable,
      ...(m.error === undefined ? {} : { error: m.error }),
      role: m.status?.role ?? null,
      term: m.status?.term ?? null,
      commitIndex: m.status?.commitIndex ?? null,
      appliedIndex: m.status?.appliedIndex ?? null,
      lagEntries: lagOf(view, m) ?? null,
      ready: m.ready ?? null,
      ...(m.readyReason === undefined ? {} : { readyReason: m.readyReason }),
      replication: m.status?.replication ?? null,
    })),
  };
}

/** Whether every member answered and is ready. */
export function allReady(view: ClusterView): boolean {
  return view.members.length > 0 && view.members.every((m) => m.reachable && m.ready === true);
}

/** The usage text of `msg status`. */
export const STATUS_USAGE = `Usage: msg status [--json] [--wait [--timeout-ms <ms>]] [connection flags]

Shows every member of the cluster: its role, term, commit and applied index,
lag behind the leader (entries), last contact with the leader, and readiness
(GET /ready); then, as the leader reports it, each follower's match index, lag
in entries and seconds, and any snapshot transfer. What a broker does not
report shows as "-". Reads GET /status of each member (an identity with admin
rights when the brokers use --auth-file).

  --json             print the view as JSON instead of tables
  --wait             wait until every member is reachable and ready (caught up), showing
                     progress; exit 69 if that takes longer than --timeout-ms
  --timeout-ms <ms>  how long --wait waits (default 60000)
${CONNECTION_USAGE}

Exit codes: 0 shown (with --wait: all ready), 64 usage error, 66 a --ca/--cert/--key
file cannot be read, 69 no broker answered (or --wait timed out), 77 credentials refused.`;

/** Runs `msg status`. */
export async function runStatus(argv: readonly string[], io: CommandIO): Promise<CliExitCode> {
  const args = parseCommandArgs('status', argv, { ...CONNECTION_FLAGS, json: { type: 'boolean' }, wait: { type: 'boolean' }, 'timeout-ms': { type: 'string' } });
  if (booleanFlag(args, 'help')) {
    io.out(`${STATUS_USAGE}\n`);
    return CliExitCodes.OK;
  }
  const connection = connectionOf(args, io.env);
  const json = booleanFlag(args, 'json');
  const wait = booleanFlag(args, 'wait');
  const timeoutMs = integerFlag(args, 'timeout-ms', 60_000, { min: 1 });
  const reader = await adminReader(connection);
  let view = await gatherStatus(reader, connection.urls);
  if (wait) view = await waitReady(reader, connection.urls, view, timeoutMs, io.err);
  io.out(json ? `${JSON.stringify(statusJSON(view), null, 2)}\n` : formatStatus(view));
  if (wait && !allReady(view)) {
    io.err.write(`msg status: not every member is ready after ${timeoutMs} ms\n`);
    return CliExitCodes.UNAVAILABLE;
  }
  return CliExitCodes.OK;
}

/** Polls the cluster every 250 ms until every member is ready or `timeoutMs` passed, with a progress bar of ready members. */
async function waitReady(reader: AdminReader, urls: readonly URL[], first: ClusterView, timeoutMs: number, stream: ProgressStream): Promise<ClusterView> {
  const deadline = Date.now() + timeoutMs;
  const progress = createProgress({ label: 'waiting for catch-up', unit: 'members ready', stream });
  let view = first;
  for (;;) {
    const ready = view.members.filter((m) => m.reachable && m.ready === true).length;
    progress.update(ready, view.members.length);
    if (allReady(view)) {
      progress.finish(`all ${view.members.length} members ready`);
      return view;
    }
    if (Date.now() >= deadline) {
      progress.finish(`${ready}/${view.members.length} members ready after ${timeoutMs} ms`);
      return view;
    }
    await new Promise((resolve) => setTimeout(resolve, 250));
    view = await gatherStatus(reader, urls).catch(() => view);
  }
}
