export { startSchemaPinService, type SchemaPinService, type SchemaPinServiceOptions } from './service.js';
export { createHandlers, type ToolsContext, type VerifyReply } from './handlers.js';
export { PinProjection, type PinProjectionMetrics } from './projection.js';
export { ReviewQueue, type PendingReview, type ReviewKind } from './reviews.js';
export { ToolsInputError, ToolsServiceError } from './errors.js';
