/**
 * The pin store as a projection of the ledger: `tools.pinned` and `tools.revoked` events
 * (control events, verified by the ledger reader, produced only by svc.schemapin) are the
 * only way a pin comes to exist or goes away. The schemapin service enforces these pins; the
 * key manager records the provider keys they name (issue 12's hierarchy), from the same rules.
 * Rules, in ledger order:
 * - `tools.pinned` {tool_id, domain, fingerprint, content_hash?, schema_hash?}: sets the pin
 *   of tool_id@domain. If a pin with ANOTHER fingerprint exists, the event is not applied
 *   (S5.2: pinning again with another key is an error; a key change needs a revoke first).
 *   With the same fingerprint it replaces the content (an approved new version).
 * - `tools.revoked` {fingerprint}: the key is revoked everywhere; pins under it are removed.
 *   {tool_id, domain}: that pin is removed.
 */
import type { LedgerEvent } from '@bulwark/events';
import { isFingerprint } from './keys.js';
import { KeyPinStore, type PinEntry } from './pin-store.js';

export interface PinLedgerHooks {
  /** The pin of tool_id@domain was set or removed. */
  readonly onPinChanged?: (toolId: string, domain: string) => void;
  /** The key was revoked everywhere. */
  readonly onKeyRevoked?: (fingerprint: string) => void;
  /** A committed pin event the rules refuse: it changed nothing. */
  readonly onRefused?: (event: LedgerEvent, why: string) => void;
}

/** A provider key as the ledger's pin events leave it. */
export interface ProviderKey {
  readonly fingerprint: string;
  /** `tool_id@domain` of every tool pinned to it now. */
  readonly tools: readonly string[];
  readonly revoked: boolean;
}

export class PinLedger {
  readonly pins = new KeyPinStore();
  readonly revoked = new Set<string>();
  readonly #hooks: PinLedgerHooks;

  constructor(hooks: PinLedgerHooks = {}) {
    this.#hooks = hooks;
  }

  /** Applies one verified ledger event: true if it changed the pins, false if the rules refused it, undefined if it is not a pin event. */
  apply(event: LedgerEvent): boolean | undefined {
    if (event.eventType === 'tools.pinned') return this.#pin(event);
    if (event.eventType === 'tools.revoked') return this.#revoke(event);
    return undefined;
  }

  /** Every provider key the pins name or that was revoked, in fingerprint order. */
  providerKeys(): ProviderKey[] {
    const tools = new Map<string, string[]>();
    for (const [key, entry] of this.pins.entries()) tools.set(entry.fingerprint, [...(tools.get(entry.fingerprint) ?? []), key]);
    const fingerprints = [...new Set([...tools.keys(), ...this.revoked])].sort();
    return fingerprints.map((fingerprint) => ({ fingerprint, tools: (tools.get(fingerprint) ?? []).sort(), revoked: this.revoked.has(fingerprint) }));
  }

  #pin(event: LedgerEvent): boolean {
    const d = event.details as Record<string, unknown>;
    const toolId = d['tool_id'];
    const domain = d['domain'];
    const fingerprint = d['fingerprint'];
    if (typeof toolId !== 'string' || typeof domain !== 'string' || !isFingerprint(fingerprint)) return this.#refuse(event, 'tools.pinned without tool_id, domain and a fingerprint');
    if (this.revoked.has(fingerprint)) return this.#refuse(event, `tools.pinned under the revoked key ${fingerprint}`);
    const existing = this.pins.get(toolId, domain);
    if (existing !== undefined && existing.fingerprint !== fingerprint) return this.#refuse(event, `${toolId}@${domain} is pinned to ${existing.fingerprint}; pinning another key needs a revoke first`);
    const entry: PinEntry = {
      fingerprint,
      ...(isFingerprint(d['content_hash']) ? { contentHash: d['content_hash'] } : {}),
      ...(isFingerprint(d['schema_hash']) ? { schemaHash: d['schema_hash'] } : {}),
    };
    this.pins.set(toolId, domain, entry);
    this.#hooks.onPinChanged?.(toolId, domain);
    return true;
  }

  #revoke(event: LedgerEvent): boolean {
    const d = event.details as Record<string, unknown>;
    const fingerprint = d['fingerprint'];
    if (isFingerprint(fingerprint)) {
      this.revoked.add(fingerprint);
      for (const [key, entry] of [...this.pins.entries()]) {
        if (entry.fingerprint !== fingerprint) continue;
        const at = key.lastIndexOf('@');
        this.pins.delete(key.slice(0, at), key.slice(at + 1));
      }
      this.#hooks.onKeyRevoked?.(fingerprint);
      return true;
    }
    const toolId = d['tool_id'];
    const domain = d['domain'];
    if (typeof toolId === 'string' && typeof domain === 'string') {
      this.pins.delete(toolId, domain);
      this.#hooks.onPinChanged?.(toolId, domain);
      return true;
    }
    return this.#refuse(event, 'tools.revoked without a fingerprint or a tool_id and domain');
  }

  #refuse(event: LedgerEvent, why: string): false {
    this.#hooks.onRefused?.(event, why);
    return false;
  }
}
