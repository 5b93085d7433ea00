export { createHandler, type Handler, type HandlerOptions } from './handler.js';
export type {
  HandlerBroker,
  PublishMessage,
  IndexRange,
  TopicFrames,
  TopicReaderOptions,
  Readiness,
  BrokerMetrics,
  TopicMetrics,
  FollowerMetrics,
  RaftCounters,
  RaftMetrics,
  HistogramSnapshot,
  RaftListener,
} from './broker.js';
export { DEFAULT_MAX_BODY_BYTES } from './body.js';
export {
  HandlerMetrics,
  RouteNames,
  LATENCY_BUCKETS_SECONDS,
  type RouteName,
  type LimitStats,
  type ConnectionLimitName,
  type StreamLimitName,
  type ClientErrorKind,
} from './metrics.js';
export {
  Limits,
  DEFAULT_LIMITS,
  REFUSED_BACKLOG,
  REFUSED_LINGER_MS,
  RESERVED_DESCRIPTORS,
  descriptorsNeeded,
  fitToFileLimit,
  type LimitOptions,
  type LimitSettings,
  type ClientIdentity,
} from './limits.js';
export {
  TopicSet,
  IdentityAuthorizer,
  hashToken,
  bearerToken,
  certSubjectResolver,
  authenticatedIdentity,
  type Authorizer,
  type AuthStats,
  type Identity,
  type IdentityPermissions,
  type IdentityResolver,
  type IdentityAuthorizerOptions,
  type Permission,
} from './auth.js';
export { ResponseHeaders } from './reply.js';
export { READER_ID_QUERY, type InternalErrorListener } from './routes.js';
