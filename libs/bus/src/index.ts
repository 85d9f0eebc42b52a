export { Bus, connectBus, type ConnectBusOptions, type Stoppable } from './connect.js';
export {
  BusConfigError,
  BusConnectError,
  BusPublishError,
  BusRequestError,
  BusStreamFullError,
  BusTimeoutError,
  BusUnavailableError,
  BusUsageError,
} from './errors.js';
export { ROOT_NAMESPACE, uniqueNamespace, type Namespace } from './namespace.js';
export {
  Commands,
  DIRECT_SUBJECT_ROOT,
  Events,
  INCIDENT_SEVERITIES,
  LEDGER_DURABLE,
  LEDGER_PRINCIPAL,
  LEDGER_SUBJECT_ROOT,
  LEDGER_BATCH_SUBJECT,
  ledgerControlSubject,
  ServicePrincipals,
  StreamNames,
  directSubject,
  incidentSubject,
  analystIncidentFilter,
  SOC_CHANNEL,
  recipientToken,
  ledgerSubject,
  type CommandSubject,
  type EventSubject,
  type IncidentSeverity,
  type ServiceName,
  type StreamKey,
} from './subjects.js';
export { DEFAULT_STREAMS, ensureStream, firstMessageId, purgeStream, ensureStreams, missingStreams, removeNamespaceStreams, streamSpecs, streamState, type StreamOutcome, type StreamSpec } from './streams.js';
export { DEFAULT_DIRECTORY_LIMITS, DEFAULT_STREAM_LIMITS, fullLimitOf, type DirectoryLimits, type FullLimit, type StreamLimits } from './stream-limits.js';
export { consumerBacklog, ensureConsumer, type ConsumerMetrics, type ConsumerSpec, type Delivery, type DeliveryHandler, type RunningConsumer } from './consumer.js';
export type { PublishAck } from './publisher.js';
export {
  createEventPublisher,
  createIncidentPublisher,
  createRejectionReporter,
  createStreamPublisher,
  startStreamConsumer,
  type EventPublisher,
  type IncidentPublisher,
  type StreamPublisher,
} from './stream-io.js';
export { RejectionReporter, type Rejection, type RejectionEvent, type RejectionMetrics, type RejectionReporterOptions } from './rejections.js';
export { HandshakeLimiter, type HandshakeLimits } from './handshake-limiter.js';
export { AdmissionKeys, ADMISSION_TAG_LENGTH, encodeAdmissionTag } from './internal/handshake-admission.js';
export { serveCommands, type CommandHandler, type CommandRequest, type CommandServer, type ServeCommandsOptions } from './rpc-server.js';
export { CommandClient, type CommandClientOptions, type RequestOptions } from './rpc-client.js';
export { checkReadiness, type Readiness } from './readiness.js';
export { discoverService, streamUsage, type DiscoveredInstance, type StreamUsage } from './discovery.js';
export type { FrameMeta } from './internal/frames.js';
export { SMALLEST_BUCKET_REPLY_BODY } from './internal/rpc-wire.js';
export {
  DIRECTORY_BUCKET,
  DIRECTORY_HISTORY,
  directoryBucketName,
  openDirectoryBucket,
  publishDirectoryEntry,
  removeDirectoryBucket,
  type PublishOutcome,
  type PublishedEntry,
} from './directory-bucket.js';
export { genesisFromDirectory } from './ledger-genesis.js';
export { KvDirectory, type DirectoryRejection, type DirectoryRejectionReason, type KvDirectoryOptions } from './directory-watch.js';
export { SystemAccountConnection } from './system-account.js';
