// Broker answers for the unit tests of src/cli (status, topics).

/** A /status body of a leader of three, with the replication fields. */
export const LEADER_STATUS = {
  isLeader: true,
  leaderURL: 'http://127.0.0.1:8086',
  urls: ['http://127.0.0.1:8086', 'http://127.0.0.1:8087', 'http://127.0.0.1:8088'],
  ready: { ready: true },
  term: 3,
  commitIndex: 120,
  appliedIndex: 119,
  raftState: 'leader',
  config: { voters: ['http://127.0.0.1:8086', 'http://127.0.0.1:8087'], learners: ['http://127.0.0.1:8088'] },
  replication: {
    role: 'leader',
    leaderCommitIndex: 120,
    lagEntries: 0,
    lastLeaderContactMs: null,
    followers: [
      { url: 'http://127.0.0.1:8087', matchIndex: 120, lagEntries: 0, lagSeconds: 0, lastContactMs: 12, snapshot: null },
      { url: 'http://127.0.0.1:8088', matchIndex: 20, lagEntries: 100, lagSeconds: 4.5, lastContactMs: 40, snapshot: { sentBytes: 1024, totalBytes: 4096 } },
    ],
  },
  topics: [
    { id: '7', firstIndex: '3', lastIndex: '100', bytes: 2048, segments: 2, messages: 90, publishRate: 12.5, openStreams: 1, readers: [{ id: 'r1', index: '40' }], anonymous: { index: '90', atMs: 1 } },
  ],
};
