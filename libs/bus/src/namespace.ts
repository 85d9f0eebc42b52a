import { randomBytes } from 'node:crypto';
import { BusUsageError } from './errors.js';
import { StreamNames, type StreamKey } from './subjects.js';

/**
 * A namespace prefixes every stream name and every subject the bus touches, so tests
 * (and parallel deployments on one server) get their own streams, e.g.
 * `T_ab12_BULWARK_EVENTS` holding `t.ab12.bulwark.evt.>`. The production namespace is empty.
 */
export interface Namespace {
  /** Prepended to stream names: `""` or e.g. `T_ab12_` (letters, digits, `_`, `-`). */
  readonly streamPrefix: string;
  /** Prepended to subjects: `""` or e.g. `t.ab12.` (tokens ending in a dot). */
  readonly subjectPrefix: string;
}

export const ROOT_NAMESPACE: Namespace = Object.freeze({ streamPrefix: '', subjectPrefix: '' });

const STREAM_PREFIX = /^([A-Za-z0-9_-]+)?$/;
const SUBJECT_PREFIX = /^([A-Za-z0-9_-]+\.)*$/;

export function validateNamespace(ns: Namespace): Namespace {
  if (!STREAM_PREFIX.test(ns.streamPrefix)) {
    throw new BusUsageError('E_BUS_NAMESPACE', `stream prefix "${ns.streamPrefix}" is invalid: use letters, digits, _ and -`, { ...ns });
  }
  if (!SUBJECT_PREFIX.test(ns.subjectPrefix)) {
    throw new BusUsageError('E_BUS_NAMESPACE', `subject prefix "${ns.subjectPrefix}" is invalid: use tokens that each end in "."`, { ...ns });
  }
  return Object.freeze({ ...ns });
}

/** A fresh namespace for one test run: its streams and subjects collide with nothing else. */
export function uniqueNamespace(label = 't'): Namespace {
  const id = `${label.replace(/[^A-Za-z0-9]/g, '')}${randomBytes(5).toString('hex')}`;
  return validateNamespace({ streamPrefix: `T_${id}_`, subjectPrefix: `t.${id}.` });
}

export function streamName(ns: Namespace, key: StreamKey): string {
  return `${ns.streamPrefix}${StreamNames[key]}`;
}

export function inNamespace(ns: Namespace, subject: string): string {
  return `${ns.subjectPrefix}${subject}`;
}

/** The subject as the rest of Bulwark names it, without the namespace's prefix. */
export function outOfNamespace(ns: Namespace, subject: string): string {
  return subject.startsWith(ns.subjectPrefix) ? subject.slice(ns.subjectPrefix.length) : subject;
}
