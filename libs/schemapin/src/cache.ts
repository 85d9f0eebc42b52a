/**
 * A verifier with a cache of verified tools. An entry is keyed on tool_id, domain, the key
 * fingerprint, the signature and the schema's JSON text as given (which determines its
 * schemapin-v1 text and its content hash; a long text by its SHA-256), so a hit needs exactly what was verified: the same signed bytes
 * under the same key for the same tool. On a hit the revocation sources are still checked
 * (a list lookup), so a revoked key is never served from the cache even before
 * `invalidateKey` runs. Entries are dropped by `invalidateKey` (a revocation), by
 * `invalidateTool` (a pin change) and by `clear`. Results with `expires_at` are not cached
 * (their warnings depend on the time). Only Trusted uses of an existing pin are cached;
 * first uses and failures are recomputed every time.
 */
import { createHash } from 'node:crypto';
import { SchemaPinError } from './errors.js';
import { loadPublicKey } from './keys.js';
import { pinKey, type KeyPinStore } from './pin-store.js';
import { checkTool, type ToolCheck, type ToolCheckInput } from './pinning.js';
import { checkRevocationCombined, simpleRevokedList } from './revocation.js';
import { isJsonObject } from './json.js';

export interface CacheStats {
  hits: number;
  misses: number;
  size: number;
}

export class CachedVerifier {
  readonly #entries = new Map<string, ToolCheck>();
  readonly #byTool = new Map<string, Set<string>>();
  readonly #byKey = new Map<string, Set<string>>();
  readonly #max: number;
  readonly #stats = { hits: 0, misses: 0 };

  constructor(options: { maxEntries?: number } = {}) {
    this.#max = options.maxEntries ?? 10_000;
  }

  /** checkTool, answered from the cache when the same signed tool verified before. */
  check(pins: KeyPinStore, input: ToolCheckInput): ToolCheck {
    const key = this.#key(input);
    if (key !== null) {
      const hit = this.#entries.get(key.cacheKey);
      if (hit !== undefined && this.#stillPinned(pins, input, hit) && this.#notRevoked(input, key.fingerprint)) {
        this.#stats.hits++;
        return hit;
      }
    }
    this.#stats.misses++;
    const result = checkTool(pins, input);
    // Only a use of an existing pin is cached: a first use must be pinned (and answer first_use) first.
    if (key !== null && result.verdict === 'Trusted' && result.newPin === null && input.signed.expires_at === undefined && result.result.key_fingerprint === key.fingerprint) {
      this.#store(key.cacheKey, pinKey(input.toolId, input.domain), key.fingerprint, result);
    }
    return result;
  }

  /** A key was revoked: forget every result it verified. */
  invalidateKey(fingerprint: string): void {
    for (const k of this.#byKey.get(fingerprint) ?? []) this.#entries.delete(k);
    this.#byKey.delete(fingerprint);
  }

  /** A pin of `tool_id@domain` changed (pinned, approved, removed): forget its results. */
  invalidateTool(toolId: string, domain: string): void {
    const tool = pinKey(toolId, domain);
    for (const k of this.#byTool.get(tool) ?? []) this.#entries.delete(k);
    this.#byTool.delete(tool);
  }

  clear(): void {
    this.#entries.clear();
    this.#byTool.clear();
    this.#byKey.clear();
  }

  stats(): CacheStats {
    return { ...this.#stats, size: this.#entries.size };
  }

  #key(input: ToolCheckInput): { cacheKey: string; fingerprint: string } | null {
    const pem = isJsonObject(input.discovery) ? input.discovery.public_key_pem : undefined;
    if (typeof pem !== 'string' || typeof input.signed.signature !== 'string') return null;
    try {
      const { fingerprint } = loadPublicKey(pem);
      // The schema as given (not canonical): the same JSON value gives the same text, so a hit
      // is exactly a schema that verified; another key order only misses and verifies in full.
      // Long texts are hashed so an entry stays small.
      const text = JSON.stringify(input.signed.schema);
      if (typeof text !== 'string') return null;
      const schemaKey = text.length > 2048 ? createHash('sha256').update(text, 'utf8').digest('base64') : text;
      const cacheKey = `${input.toolId}\u0000${input.domain}\u0000${fingerprint}\u0000${input.signed.signature}\u0000${input.mode ?? 'automatic'}\u0000${input.signed.canonicalization ?? ''}\u0000${schemaKey}`;
      return { cacheKey, fingerprint };
    } catch (err) {
      if (err instanceof SchemaPinError) return null;
      throw err;
    }
  }

  /** The pin the cached result was computed against must still be the pin now. */
  #stillPinned(pins: KeyPinStore, input: ToolCheckInput, hit: ToolCheck): boolean {
    const pin = pins.get(input.toolId, input.domain);
    if (pin === undefined) return false;
    return pin.fingerprint === hit.result.key_fingerprint && (pin.contentHash === undefined || pin.contentHash === hit.contentHash);
  }

  #notRevoked(input: ToolCheckInput, fingerprint: string): boolean {
    try {
      checkRevocationCombined(simpleRevokedList(input.discovery as Record<string, never>), input.revocation, fingerprint);
      return true;
    } catch {
      return false;
    }
  }

  #store(cacheKey: string, tool: string, fingerprint: string, result: ToolCheck): void {
    if (this.#entries.size >= this.#max) this.clear();
    this.#entries.set(cacheKey, result);
    let t = this.#byTool.get(tool);
    if (t === undefined) this.#byTool.set(tool, (t = new Set()));
    t.add(cacheKey);
    let k = this.#byKey.get(fingerprint);
    if (k === undefined) this.#byKey.set(fingerprint, (k = new Set()));
    k.add(cacheKey);
  }
}
