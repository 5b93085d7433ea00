export {
  Broker,
  type BrokerOptions,
  type BrokerClock,
  type RetentionPolicy,
  type BrokerCounters,
  type BrokerStatus,
  type BrokerMetrics,
  type TopicStatus,
  type AnonymousReport,
  type PublishMessage,
  type PublishedRange,
  type ReadinessBounds,
  type ReplicationView,
  type FollowerView,
  type TopicMetricsSnapshot,
  type RaftMetricsSnapshot,
  DEFAULT_READINESS,
} from './broker.js';
export type { BrokerLog } from './broker-log.js';
export { BrokerTopicReader, type TopicReaderOptions } from './broker-topic-reader.js';
export { BrokerStateError, BrokerStateErrorCodes, isBrokerStateError, type BrokerStateErrorCode } from './errors.js';
export { silentLogger, type Logger, type LogFields } from './logger.js';
export {
  MAX_READER_ID_LENGTH,
  decodeReaderReport,
  encodeReaderReport,
  readerReportMessage,
  readerReportTime,
  type ReaderReport,
} from './reader-report.js';
export {
  SNAPSHOT_FORMAT,
  encodeSnapshotHeader,
  parseSnapshotHeader,
  readSnapshot,
  type SnapshotHeader,
  type SnapshotTopic,
  type SnapshotSegment,
  type SegmentSink,
} from './snapshot-format.js';
export { FSYNC_BUCKETS_SECONDS, type FsyncStats } from './durable-file.js';
