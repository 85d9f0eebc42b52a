import type { PolicyRequest } from './policy-wire.js';

/**
 * The five enforcement points of the seed (DESIGN §2): each builds a policy request in a
 * fixed shape, so that policies can target them by action and by class. The class names
 * are the contract between enforcement points and policy authors.
 */
export const EnforcementClasses = {
  agentCreation: 'agent_creation',
  resourceAccess: 'resource_access',
  messageRouting: 'message_routing',
  toolInvocation: 'tool_invocation',
  dataOperation: 'data_operation',
} as const;

type Context = { readonly [name: string]: unknown };

export interface AgentCreationInput {
  /** What kind of agent: becomes the resource, e.g. `create(research_agent)`. */
  readonly agentType: string;
  readonly context?: Context;
  readonly classes?: readonly string[];
}

export interface ResourceAccessInput {
  /** The verb: read, write, list, update, delete, allocate, ... */
  readonly action: string;
  readonly resource: string;
  readonly context?: Context;
  readonly classes?: readonly string[];
}

export interface MessageRoutingInput {
  readonly from: string;
  readonly to: string;
  /** The message kind: becomes the resource, e.g. `route(task_request)`. */
  readonly messageType: string;
  readonly context?: Context;
  readonly classes?: readonly string[];
}

export interface ToolInvocationInput {
  /** The tool's name: the resource, e.g. `invoke(web_search)`. */
  readonly tool: string;
  readonly context?: Context;
  readonly classes?: readonly string[];
}

export interface DataOperationInput {
  /** read, write, export, transform, delete, ... */
  readonly operation: string;
  /** The data set or kind: the resource, e.g. `export(customer_records)`. */
  readonly data: string;
  readonly context?: Context;
  readonly classes?: readonly string[];
}

function withClass(cls: string, extra: readonly string[] | undefined): string[] {
  return extra === undefined ? [cls] : [cls, ...extra.filter((c) => c !== cls)];
}

export function agentCreationRequest(input: AgentCreationInput): PolicyRequest {
  return { action: 'create', resource: input.agentType, classes: withClass(EnforcementClasses.agentCreation, input.classes), context: input.context ?? {} };
}

export function resourceAccessRequest(input: ResourceAccessInput): PolicyRequest {
  return { action: input.action, resource: input.resource, classes: withClass(EnforcementClasses.resourceAccess, input.classes), context: input.context ?? {} };
}

export function messageRoutingRequest(input: MessageRoutingInput): PolicyRequest {
  return {
    action: 'route',
    resource: input.messageType,
    classes: withClass(EnforcementClasses.messageRouting, input.classes),
    context: { ...input.context, message: { from: input.from, to: input.to, type: input.messageType } },
  };
}

export function toolInvocationRequest(input: ToolInvocationInput): PolicyRequest {
  return { action: 'invoke', resource: input.tool, classes: withClass(EnforcementClasses.toolInvocation, input.classes), context: input.context ?? {} };
}

export function dataOperationRequest(input: DataOperationInput): PolicyRequest {
  return { action: input.operation, resource: input.data, classes: withClass(EnforcementClasses.dataOperation, input.classes), context: input.context ?? {} };
}
