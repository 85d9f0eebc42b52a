export { compileCondition, ConditionError, fieldGetter, type EventView, type Predicate } from './rules/condition.js';
export { loadRules, RuleLoadError, SEVERITIES, type Rule, type RuleSource, type Severity } from './rules/load.js';
export { RuleBook } from './rules/book.js';
export { DEFAULT_RULES_FILE, readRuleSources } from './rules/files.js';
export { DetectionEngine, type Detection, type EventRef } from './detect/engine.js';
export { IncidentGrouper } from './incidents/grouper.js';
export { incidentIdOf, severityAtLeast, SEVERITY_RANK, type IncidentStatus, type SecurityEvent } from './incidents/security-event.js';
export { detectionFinding, DETECTION_FINDING_CLASS, OCSF_VERSION, type DetectionFinding } from './soc/ocsf.js';
export { cloudEventHeaders, readCloudEventHeaders, CE_SOURCE, CE_TYPE_PREFIX, type CloudEventAttributes } from './soc/cloudevents.js';
