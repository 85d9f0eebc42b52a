/**
 * Tools waiting for a person (S5.1): a submission whose review scored at or above the
 * threshold, a first use in interactive mode, a changed tool (same key, new content hash).
 * Held in memory by the instance that saw them; each step that decides something is a
 * ledger event (tools.submitted, tools.analyzed, tools.signed, tools.pinned, tools.rejected).
 */
import { randomUUID } from 'node:crypto';
import type { JsonValue, PinEntry, ReviewResult } from '@bulwark/schemapin';

export type ReviewKind = 'submission' | 'first_use' | 'tool_changed';

export interface PendingReview {
  readonly id: string;
  readonly kind: ReviewKind;
  readonly toolId: string;
  readonly domain: string;
  readonly schema: JsonValue;
  readonly review: ReviewResult;
  /** What approving pins (first_use, tool_changed). */
  readonly pin?: PinEntry;
  /** For tool_changed: the provider's previous_hash lineage. */
  readonly lineage?: 'continues' | 'broken' | 'absent';
  readonly requestedBy: string;
  readonly at: number;
}

export class ReviewQueue {
  readonly #items = new Map<string, PendingReview>();
  readonly #max: number;

  constructor(max = 1000) {
    this.#max = max;
  }

  /** Adds (or returns the same pending item for the same tool, kind and pin). */
  add(item: Omit<PendingReview, 'id' | 'at'>): PendingReview {
    for (const existing of this.#items.values()) {
      if (existing.kind === item.kind && existing.toolId === item.toolId && existing.domain === item.domain && existing.pin?.contentHash === item.pin?.contentHash) return existing;
    }
    if (this.#items.size >= this.#max) this.#items.delete(this.#items.keys().next().value as string);
    const review: PendingReview = { ...item, id: randomUUID(), at: Date.now() };
    this.#items.set(review.id, review);
    return review;
  }

  get(id: string): PendingReview | undefined {
    return this.#items.get(id);
  }

  take(id: string): PendingReview | undefined {
    const item = this.#items.get(id);
    this.#items.delete(id);
    return item;
  }

  list(): PendingReview[] {
    return [...this.#items.values()];
  }
}
