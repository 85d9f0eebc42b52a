/**
 * The pin store as a projection of the ledger: `tools.pinned` and `tools.revoked` events
 * (control events, verified by the ledger reader, produced only by svc.schemapin) are the
 * only way a pin comes to exist or goes away. Rules, in ledger order:
 * - `tools.pinned` {tool_id, domain, fingerprint, content_hash?, schema_hash?}: sets the pin
 *   of tool_id@domain. If a pin with ANOTHER fingerprint exists, the event is not applied
 *   (S5.2: pinning again with another key is an error; a key change needs a revoke first).
 *   With the same fingerprint it replaces the content (an approved new version).
 * - `tools.revoked` {fingerprint}: the key is revoked everywhere; pins under it are removed.
 *   {tool_id, domain}: that pin is removed.
 * Every applied change invalidates the verification cache for what it touched, and wakes a
 * handler waiting for its event to come back committed.
 */
import { CachedVerifier, isFingerprint, KeyPinStore, type PinEntry } from '@bulwark/schemapin';
import type { LedgerEvent } from '@bulwark/events';
import { AppliedEvents } from '@bulwark/ledger-reader';

export interface PinProjectionMetrics {
  readonly pins: number;
  readonly revokedKeys: number;
  readonly applied: number;
  readonly refused: number;
}

export class PinProjection {
  readonly pins = new KeyPinStore();
  readonly revoked = new Set<string>();
  readonly cache = new CachedVerifier();
  readonly #outcomes = new AppliedEvents<boolean>();
  #applied = 0;
  #refused = 0;

  constructor(private readonly onRefused?: (event: LedgerEvent, why: string) => void) {}

  /** Applies one verified ledger event (others are ignored). */
  apply(event: LedgerEvent): void {
    if (event.eventType !== 'tools.pinned' && event.eventType !== 'tools.revoked') return;
    const applied = event.eventType === 'tools.pinned' ? this.#pin(event) : this.#revoke(event);
    if (applied) this.#applied++;
    else this.#refused++;
    this.#outcomes.settle(event.eventId, applied);
  }

  /** Resolves true once `eventId` was applied, false if it was refused or `timeoutMs` passed. */
  async waitFor(eventId: string, timeoutMs: number): Promise<boolean> {
    return (await this.#outcomes.wait(eventId, timeoutMs).promise) ?? false;
  }

  metrics(): PinProjectionMetrics {
    return { pins: this.pins.size, revokedKeys: this.revoked.size, applied: this.#applied, refused: this.#refused };
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
    this.cache.invalidateTool(toolId, domain);
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
      this.cache.invalidateKey(fingerprint);
      return true;
    }
    const toolId = d['tool_id'];
    const domain = d['domain'];
    if (typeof toolId === 'string' && typeof domain === 'string') {
      this.pins.delete(toolId, domain);
      this.cache.invalidateTool(toolId, domain);
      return true;
    }
    return this.#refuse(event, 'tools.revoked without a fingerprint or a tool_id and domain');
  }

  #refuse(event: LedgerEvent, why: string): false {
    this.onRefused?.(event, why);
    return false;
  }
}
