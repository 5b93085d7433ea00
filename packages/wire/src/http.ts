/** HTTP paths of a broker. The first four are the original's, matched exactly. */
export const Paths = {
  /** GET: stream a topic; POST: publish one message. */
  messages: '/messaging/messages',
  /** POST: a reader reports the highest index it has stored. */
  heartbeat: '/messaging/heartbeat',
  /** Any method: the leader answers the cluster's URLs. */
  ping: '/messaging/ping',
  /** Prefix of the raft transport. */
  raft: '/raft',
  /** POST: publish many messages (encoded frames back to back) in one request. Ours. */
  batch: '/messaging/batch',
  /** GET: liveness. Ours. */
  health: '/health',
  /** GET: readiness (leader known, caught up). Ours. */
  ready: '/ready',
  /** GET: Prometheus text metrics. Ours. */
  metrics: '/metrics',
  /** GET: JSON status (members, leader, topics). Ours. */
  status: '/status',
  /** GET `?producerID`: the sequence a producer's next publish must carry (`{"producerID","next"}`). Ours. */
  producers: '/messaging/producers',
} as const;

/** HTTP header names (lower case, as Node presents them). */
export const Headers = {
  /** The original's error text. */
  error: 'x-broker-error',
  /** Our stable error code (a key of ErrorCodes). */
  errorCode: 'x-broker-error-code',
  /** Index of a published message; of the first one for a batch. */
  index: 'x-broker-index',
  /** Index of the last message of a published batch. Ours. */
  lastIndex: 'x-broker-last-index',
  /** With SEGMENT_RECLAIMED: the first index still available. Ours. */
  firstIndex: 'x-broker-first-index',
  /** With NOT_LEADER: the leader's URL when known. Ours. */
  leader: 'x-broker-leader',
  /**
   * With a follower's 307 to the leader: every member's base URL, comma-separated. Ours: a client that knows
   * only this broker learns the members from it, as from a ping, and may then follow the redirect.
   */
  members: 'x-broker-members',
  /**
   * On a publish or batch request: the producer id (1 to 64 characters of `A-Z a-z 0-9 . _ : -`). With
   * {@link Headers.producerSeq}, the broker commits each (producer, sequence) once. Ours.
   */
  producerId: 'x-broker-producer-id',
  /** On a publish: the message's producer sequence (decimal u64); on a batch, the first message's (message `i` has it plus `i`). Ours. */
  producerSeq: 'x-broker-producer-seq',
  /** With `SEQUENCE_GAP` and `SEQUENCE_TOO_OLD`: the sequence the broker expects next from that producer. Ours. */
  producerNext: 'x-broker-producer-next',
  /** On a producer's publish or batch answer: how many of its messages were committed before (answered with their original indexes). Ours. */
  duplicates: 'x-broker-duplicates',
  /**
   * On a batch answer whose indexes are not consecutive (some of its messages committed before, elsewhere in
   * the log): each message's index, as comma-separated runs `first-last` (or `index`), in message order. Ours.
   */
  indexes: 'x-broker-indexes',
} as const;

/** Query parameter names. */
export const Query = {
  type: 'type',
  topicID: 'topicID',
  index: 'index',
  streaming: 'streaming',
  producerID: 'producerID',
} as const;

/** Content type of message streams and batch bodies. */
export const MESSAGES_CONTENT_TYPE = 'application/octet-stream';
