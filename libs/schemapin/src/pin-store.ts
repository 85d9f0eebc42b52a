/**
 * The SDK's pin store (protocol note §7): `"<tool_id>@<domain>" → "sha256:<fingerprint>"`.
 * Our file form also allows an entry `{ fingerprint, content_hash, schema_hash? }` (the content pin, see
 * pinning.ts); `toJSON` writes the plain string form for entries with no content hash, so a
 * store the SDK wrote round-trips unchanged.
 */
import { SchemaPinInputError } from './errors.js';
import { isFingerprint } from './keys.js';
import { isJsonObject, type JsonValue } from './json.js';

export type PinCheck = 'first_use' | 'pinned' | 'changed';

export interface PinEntry {
  readonly fingerprint: string;
  /** `sha256:<hex>` over the RFC 8785 form of the tool's content (content.ts). */
  readonly contentHash?: string;
  /** `sha256:<hex>` schemapin-v1 hash of the pinned version (for previous_hash lineage). */
  readonly schemaHash?: string;
}

type FileEntry = string | { fingerprint: string; content_hash?: string; schema_hash?: string };

export function pinKey(toolId: string, domain: string): string {
  return `${toolId}@${domain}`;
}

export class KeyPinStore {
  readonly #pins = new Map<string, PinEntry>();

  /** The SDK's `checkAndPin`: pins on first use. The SDK calls it before the signature is checked. */
  checkAndPin(toolId: string, domain: string, fingerprint: string): PinCheck {
    const result = this.check(toolId, domain, fingerprint);
    if (result === 'first_use') this.#pins.set(pinKey(toolId, domain), { fingerprint });
    return result;
  }

  /** Like checkAndPin without writing: what pinning would answer. */
  check(toolId: string, domain: string, fingerprint: string): PinCheck {
    const existing = this.#pins.get(pinKey(toolId, domain));
    if (existing === undefined) return 'first_use';
    return existing.fingerprint === fingerprint ? 'pinned' : 'changed';
  }

  getPinned(toolId: string, domain: string): string | null {
    return this.#pins.get(pinKey(toolId, domain))?.fingerprint ?? null;
  }

  get(toolId: string, domain: string): PinEntry | undefined {
    return this.#pins.get(pinKey(toolId, domain));
  }

  set(toolId: string, domain: string, entry: PinEntry): void {
    this.#pins.set(pinKey(toolId, domain), entry);
  }

  delete(toolId: string, domain: string): boolean {
    return this.#pins.delete(pinKey(toolId, domain));
  }

  get size(): number {
    return this.#pins.size;
  }

  entries(): IterableIterator<[string, PinEntry]> {
    return this.#pins.entries();
  }

  /** The file form: plain fingerprint strings, or `{ fingerprint, content_hash }`. */
  toObject(): Record<string, FileEntry> {
    const out: Record<string, FileEntry> = {};
    for (const [key, entry] of this.#pins) {
      if (entry.contentHash === undefined && entry.schemaHash === undefined) out[key] = entry.fingerprint;
      else {
        out[key] = {
          fingerprint: entry.fingerprint,
          ...(entry.contentHash === undefined ? {} : { content_hash: entry.contentHash }),
          ...(entry.schemaHash === undefined ? {} : { schema_hash: entry.schemaHash }),
        };
      }
    }
    return out;
  }

  toJSON(): string {
    return JSON.stringify(this.toObject());
  }

  /** Reads the file form; refuses anything that is not a fingerprint (E_SCHEMAPIN_PINS). */
  static fromObject(value: JsonValue, what = 'pin store'): KeyPinStore {
    if (!isJsonObject(value)) throw new SchemaPinInputError('E_SCHEMAPIN_PINS', `${what}: must be a JSON object of "<tool_id>@<domain>" entries`);
    const store = new KeyPinStore();
    for (const [key, entry] of Object.entries(value)) {
      if (!key.includes('@')) throw new SchemaPinInputError('E_SCHEMAPIN_PINS', `${what}: key ${JSON.stringify(key)} is not "<tool_id>@<domain>"`);
      let pin: PinEntry;
      if (typeof entry === 'string') pin = { fingerprint: entry };
      else if (
        isJsonObject(entry) &&
        typeof entry.fingerprint === 'string' &&
        (entry.content_hash === undefined || typeof entry.content_hash === 'string') &&
        (entry.schema_hash === undefined || typeof entry.schema_hash === 'string')
      ) {
        pin = {
          fingerprint: entry.fingerprint,
          ...(entry.content_hash === undefined ? {} : { contentHash: entry.content_hash as string }),
          ...(entry.schema_hash === undefined ? {} : { schemaHash: entry.schema_hash as string }),
        };
      } else throw new SchemaPinInputError('E_SCHEMAPIN_PINS', `${what}: entry ${JSON.stringify(key)} must be a fingerprint or { fingerprint, content_hash }`);
      if (!isFingerprint(pin.fingerprint)) throw new SchemaPinInputError('E_SCHEMAPIN_PINS', `${what}: entry ${JSON.stringify(key)} is not a sha256:<64 hex> fingerprint`);
      for (const hash of [pin.contentHash, pin.schemaHash]) {
        if (hash !== undefined && !isFingerprint(hash)) throw new SchemaPinInputError('E_SCHEMAPIN_PINS', `${what}: entry ${JSON.stringify(key)} has a hash that is not sha256:<64 hex>`);
      }
      store.#pins.set(key, pin);
    }
    return store;
  }
}
