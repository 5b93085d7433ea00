export { Topic, DEFAULT_MAX_SEGMENT_SIZE, DEFAULT_SYNC_INTERVAL_MS, DEFAULT_POLL_INTERVAL_MS } from './topic.js';
export type { TopicOptions, SyncPolicy, RetentionPolicy } from './topic.js';
export type { TopicOpenOptions, TopicCheckpoint, RecoveryEvent } from './recovery.js';
export type { IndexedFrame } from './format.js';
export { TopicReader, type TopicReaderOptions } from './topic-reader.js';
export { SegmentError, SegmentErrorCodes, isSegmentError, type SegmentErrorCode, type SegmentErrorDetails } from './errors.js';
export { listTopicIDs, listSegments, findSegment, readSegmentMaxIndex, type SegmentInfo } from './segment.js';
export { NodeFileSystem, nodeFileSystem, type FileSystem, type FileHandle, type FileStat, type FileLock, type OpenOptions } from './file-system.js';
export { LOCK_FILE } from './topic-lock.js';
