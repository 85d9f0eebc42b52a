export { sharedVectorsDir, vectorPath, readVectorJson, readVectorText } from './vectors.js';
export { natsUrl, databaseUrl, natsAddress, databaseAddress, DEFAULT_NATS_URL, DEFAULT_DATABASE_URL } from './service-urls.js';
export type { HostPort } from './service-urls.js';
export { ensureServices } from './services.js';
export type { TestServices, TestService, EnsureServicesOptions } from './services.js';
export { withTestSchema } from './test-schema.js';
export type { TestSchema } from './test-schema.js';
export { SOFTHSM_MODULE, attackTokenKey, createSoftHsmToken, softHsmAvailable, type SoftHsmToken } from './softhsm.js';
