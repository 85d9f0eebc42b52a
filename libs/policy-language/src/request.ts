import type { JsonValue } from './ast.js';

/**
 * What a policy decision is about (README "Requests"). `classes` defaults to none and
 * `context` to an empty object; other fields are ignored.
 */
export interface PolicyRequest {
  readonly action: string;
  readonly resource: string;
  readonly classes?: readonly string[];
  readonly context?: { readonly [name: string]: JsonValue };
}

/** Why a value is not a request, or null when it is one. Cheap: it does not walk the context. */
export function requestProblem(input: unknown): string | null {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) return 'a request must be a JSON object';
  const { action, resource, classes, context } = input as Record<string, unknown>;
  if (typeof action !== 'string') return 'action must be a string';
  if (typeof resource !== 'string') return 'resource must be a string';
  if (classes !== undefined) {
    if (!Array.isArray(classes)) return 'classes must be a list of strings';
    for (const name of classes) if (typeof name !== 'string') return 'classes must be a list of strings';
  }
  if (context !== undefined && (typeof context !== 'object' || context === null || Array.isArray(context))) {
    return 'context must be a JSON object';
  }
  return null;
}
