import { z } from 'zod';

// A broker's `GET /status`, as `msg` reads it. Every field is optional and unknown fields are kept out:
// a broker of another version still shows what it has ("-" for the rest).

const count = z.union([z.number(), z.string().regex(/^[0-9]+$/)]).transform((v) => (typeof v === 'number' ? v : Number(v)));
const index = z.union([z.string().regex(/^[0-9]+$/), z.number().int().nonnegative()]).transform((v) => BigInt(v));
const lenient = <T extends z.ZodType>(schema: T) => schema.optional().catch(undefined);

const followerSchema = z.object({
  url: z.string(),
  matchIndex: lenient(count),
  lagEntries: lenient(count),
  lagSeconds: lenient(z.number().nullable()),
  lastContactMs: lenient(z.number().nullable()),
  snapshot: lenient(z.object({ sentBytes: count, totalBytes: count }).nullable()),
});

const replicationSchema = z.object({
  role: lenient(z.string()),
  leaderCommitIndex: lenient(count),
  lagEntries: lenient(count.nullable()),
  lastLeaderContactMs: lenient(z.number().nullable()),
  followers: lenient(z.array(followerSchema)),
});

const readerSchema = z.object({ id: z.string(), index });

const topicSchema = z.object({
  id: index,
  firstIndex: lenient(index),
  lastIndex: lenient(index),
  bytes: lenient(count),
  segments: lenient(count),
  messages: lenient(count),
  publishRate: lenient(z.number()),
  openStreams: lenient(count),
  readers: z.array(readerSchema).catch([]),
  anonymous: lenient(z.object({ index, atMs: lenient(z.number()) })),
});

const statusSchema = z.object({
  isLeader: lenient(z.boolean()),
  leaderURL: lenient(z.string().nullable()),
  leader: lenient(z.string().nullable()),
  urls: z.array(z.string()).catch([]),
  members: z.array(z.string()).catch([]),
  raftState: lenient(z.string()),
  term: lenient(count),
  commitIndex: lenient(count),
  appliedIndex: lenient(count),
  ready: lenient(z.object({ ready: z.boolean(), reason: lenient(z.string()) })),
  config: lenient(z.object({ voters: z.array(z.string()), learners: z.array(z.string()).catch([]) })),
  replication: lenient(replicationSchema),
  topics: z.array(z.unknown()).catch([]),
});

/** A follower as the leader's `/status` `replication.followers` shows it. */
export type FollowerStatus = z.output<typeof followerSchema>;
/** The `replication` part of `/status` (absent on brokers that do not report it). */
export type ReplicationStatus = z.output<typeof replicationSchema>;
/** One topic of `/status` `topics`. */
export type TopicStatusView = z.output<typeof topicSchema>;

/** What `msg` reads of one broker's `GET /status`. */
export interface NodeStatus {
  /** Whether the broker says it leads. */
  isLeader?: boolean;
  /** The leader it knows, if any. */
  leaderURL?: string;
  /** `leader`, `follower`, `candidate`, ... */
  role?: string;
  term?: number;
  commitIndex?: number;
  appliedIndex?: number;
  /** Readiness as `/status` embeds it. */
  ready?: { ready: boolean; reason?: string };
  /** Every member: voters and learners, else the URLs it lists. */
  members: string[];
  /** Voters of the configuration, when shown. */
  voters?: string[];
  /** Learners of the configuration, when shown. */
  learners?: string[];
  replication?: ReplicationStatus;
  /** Topics that parsed (a malformed one is left out). */
  topics: TopicStatusView[];
}

/**
 * Reads a `/status` body leniently: fields missing or of another shape are
 * left out (shown as "-"). Returns `undefined` when `body` is not a JSON object.
 */
export function parseNodeStatus(body: unknown): NodeStatus | undefined {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return undefined;
  const parsed = statusSchema.safeParse(body);
  if (!parsed.success) return undefined;
  const s = parsed.data;
  const voters = s.config?.voters;
  const learners = s.config?.learners;
  const members = voters !== undefined ? [...voters, ...(learners ?? [])] : s.members.length > 0 ? s.members : s.urls;
  const role = s.replication?.role ?? s.raftState ?? (s.isLeader === true ? 'leader' : undefined);
  const leaderURL = s.leaderURL ?? s.leader ?? undefined;
  const topics: TopicStatusView[] = [];
  for (const raw of s.topics) {
    const topic = topicSchema.safeParse(raw);
    if (topic.success) topics.push(topic.data);
  }
  const status: NodeStatus = { members, topics };
  if (s.isLeader !== undefined) status.isLeader = s.isLeader;
  if (leaderURL !== undefined) status.leaderURL = leaderURL;
  if (role !== undefined) status.role = role;
  if (s.term !== undefined) status.term = s.term;
  if (s.commitIndex !== undefined) status.commitIndex = s.commitIndex;
  if (s.appliedIndex !== undefined) status.appliedIndex = s.appliedIndex;
  if (s.ready !== undefined) status.ready = s.ready.reason === undefined ? { ready: s.ready.ready } : { ready: s.ready.ready, reason: s.ready.reason };
  if (voters !== undefined) status.voters = voters;
  if (learners !== undefined) status.learners = learners;
  if (s.replication !== undefined) status.replication = s.replication;
  return status;
}
