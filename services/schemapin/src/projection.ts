/**
 * The schemapin service's pin store: the ledger's pin events through the pin rules
 * (@bulwark/schemapin's PinLedger), a verification cache invalidated for what each applied
 * change touched, and the wait of a handler for its event to come back committed.
 */
import { CachedVerifier, PinLedger } from '@bulwark/schemapin';
import type { LedgerEvent } from '@bulwark/events';
import { AppliedEvents } from '@bulwark/ledger-reader';

export interface PinProjectionMetrics {
  readonly pins: number;
  readonly revokedKeys: number;
  readonly applied: number;
  readonly refused: number;
}

export class PinProjection {
  readonly cache = new CachedVerifier();
  readonly #ledger: PinLedger;
  readonly #outcomes = new AppliedEvents<boolean>();
  #applied = 0;
  #refused = 0;

  constructor(onRefused?: (event: LedgerEvent, why: string) => void) {
    this.#ledger = new PinLedger({
      onPinChanged: (toolId, domain) => this.cache.invalidateTool(toolId, domain),
      onKeyRevoked: (fingerprint) => this.cache.invalidateKey(fingerprint),
      ...(onRefused === undefined ? {} : { onRefused }),
    });
  }

  get pins(): PinLedger['pins'] {
    return this.#ledger.pins;
  }

  get revoked(): ReadonlySet<string> {
    return this.#ledger.revoked;
  }

  /** Applies one verified ledger event (others are ignored). */
  apply(event: LedgerEvent): void {
    const applied = this.#ledger.apply(event);
    if (applied === undefined) return;
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
}
