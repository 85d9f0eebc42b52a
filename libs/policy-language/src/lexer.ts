import { PolicyParseError } from './errors.js';

export type TokenKind = 'identifier' | 'string' | 'number' | 'punct' | 'eof';

export interface Token {
  readonly kind: TokenKind;
  /** The identifier or punctuation as written; the decoded text of a string. */
  readonly text: string;
  readonly number: number;
  readonly line: number;
  readonly column: number;
}

/** Words with a meaning of their own: not usable as names in conditions. */
export const KEYWORDS: ReadonlySet<string> = new Set([
  'policy', 'allow', 'deny', 'require', 'audit', 'if', 'for', 'true', 'false', 'any', 'all',
]);

// Longest first, so that `<=` is not read as `<` then `=`.
const PUNCTUATION = ['==', '!=', '<=', '>=', '&&', '||', '{', '}', '(', ')', '[', ']', ',', ':', '.', '|', '=', '<', '>', '!', '-'];

const ESCAPES: Readonly<Record<string, string>> = { '"': '"', '\\': '\\', '/': '/', n: '\n', t: '\t', r: '\r', b: '\b', f: '\f' };

/** Turns policy text into tokens on demand, so the first error in the text is the one reported. */
export class Lexer {
  private offset = 0;
  private line = 1;
  private lineStart = 0;

  constructor(
    private readonly text: string,
    private readonly file: string,
  ) {
    if (text.charCodeAt(0) === 0xfeff) this.offset = 1;
  }

  next(): Token {
    this.skipSpaceAndComments();
    const text = this.text;
    const start = this.offset;
    const line = this.line;
    const column = start - this.lineStart + 1;
    if (start >= text.length) return { kind: 'eof', text: '', number: 0, line, column };
    const c = text.charCodeAt(start);
    if (isIdentifierStart(c)) {
      let end = start + 1;
      while (end < text.length && isIdentifierPart(text.charCodeAt(end))) end++;
      this.offset = end;
      return { kind: 'identifier', text: text.slice(start, end), number: 0, line, column };
    }
    if (isDigit(c)) return this.readNumber(line, column);
    if (c === 0x22) return this.readString(line, column);
    for (const p of PUNCTUATION) {
      if (text.startsWith(p, start)) {
        this.offset = start + p.length;
        return { kind: 'punct', text: p, number: 0, line, column };
      }
    }
    throw this.error(line, column, 'a token', `character ${describeCharacter(text.codePointAt(start) ?? c)}`);
  }

  private skipSpaceAndComments(): void {
    const text = this.text;
    for (;;) {
      const c = text.charCodeAt(this.offset);
      if (c === 0x20 || c === 0x09 || c === 0x0d) {
        this.offset++;
      } else if (c === 0x0a) {
        this.offset++;
        this.newLine();
      } else if (c === 0x2f && text.charCodeAt(this.offset + 1) === 0x2f) {
        while (this.offset < text.length && text.charCodeAt(this.offset) !== 0x0a) this.offset++;
      } else if (c === 0x2f && text.charCodeAt(this.offset + 1) === 0x2a) {
        const line = this.line;
        const column = this.offset - this.lineStart + 1;
        this.offset += 2;
        for (;;) {
          if (this.offset >= text.length) throw this.error(line, column, "'*/' to close the comment", 'end of input');
          const d = text.charCodeAt(this.offset);
          if (d === 0x2a && text.charCodeAt(this.offset + 1) === 0x2f) {
            this.offset += 2;
            break;
          }
          this.offset++;
          if (d === 0x0a) this.newLine();
        }
      } else {
        return;
      }
    }
  }

  private newLine(): void {
    this.line++;
    this.lineStart = this.offset;
  }

  private readNumber(line: number, column: number): Token {
    const text = this.text;
    const start = this.offset;
    let end = start;
    while (isDigit(text.charCodeAt(end))) end++;
    if (text.charCodeAt(end) === 0x2e && isDigit(text.charCodeAt(end + 1))) {
      end++;
      while (isDigit(text.charCodeAt(end))) end++;
    }
    const e = text.charCodeAt(end);
    if (e === 0x65 || e === 0x45) {
      let exponent = end + 1;
      const sign = text.charCodeAt(exponent);
      if (sign === 0x2b || sign === 0x2d) exponent++;
      if (!isDigit(text.charCodeAt(exponent))) {
        throw this.error(this.line, exponent - this.lineStart + 1, 'a digit in the exponent', describeAt(text, exponent));
      }
      end = exponent;
      while (isDigit(text.charCodeAt(end))) end++;
    }
    const source = text.slice(start, end);
    const value = Number(source);
    if (!Number.isFinite(value)) throw this.error(line, column, 'a finite number', `number ${truncate(source)}`);
    this.offset = end;
    return { kind: 'number', text: source, number: value, line, column };
  }

  private readString(line: number, column: number): Token {
    const text = this.text;
    let i = this.offset + 1;
    let value = '';
    let chunk = i;
    for (;;) {
      if (i >= text.length) throw this.error(line, column, "'\"' to close the string", 'end of input');
      const c = text.charCodeAt(i);
      if (c === 0x22) break;
      if (c === 0x0a || c === 0x0d) {
        throw this.error(this.line, i - this.lineStart + 1, "'\"' to close the string", 'end of line');
      }
      if (c !== 0x5c) {
        i++;
        continue;
      }
      value += text.slice(chunk, i);
      const escape = text[i + 1];
      if (escape === 'u') {
        const hex = text.slice(i + 2, i + 6);
        if (!/^[0-9a-fA-F]{4}$/.test(hex)) {
          throw this.error(this.line, i - this.lineStart + 1, 'four hex digits after \\u', describeAt(text, i + 2));
        }
        value += String.fromCharCode(parseInt(hex, 16));
        i += 6;
      } else if (escape !== undefined && Object.hasOwn(ESCAPES, escape)) {
        value += ESCAPES[escape];
        i += 2;
      } else {
        throw this.error(this.line, i - this.lineStart + 1, 'an escape (\\" \\\\ \\/ \\n \\t \\r \\b \\f \\uXXXX)', describeAt(text, i));
      }
      chunk = i;
    }
    value += text.slice(chunk, i);
    this.offset = i + 1;
    return { kind: 'string', text: value, number: 0, line, column };
  }

  private error(line: number, column: number, expected: string, found: string): PolicyParseError {
    return new PolicyParseError({ file: this.file, line, column }, expected, found);
  }
}

/** How an error message shows a token: `'{'`, `identifier 'user'`, `string "x"`, `end of input`. */
export function describeToken(token: Token): string {
  switch (token.kind) {
    case 'eof':
      return 'end of input';
    case 'punct':
      return `'${token.text}'`;
    case 'identifier':
      return KEYWORDS.has(token.text) ? `'${token.text}'` : `identifier '${truncate(token.text)}'`;
    case 'string':
      return `string ${JSON.stringify(truncate(token.text))}`;
    case 'number':
      return `number ${truncate(token.text)}`;
    default: {
      const never: never = token.kind;
      return never;
    }
  }
}

function describeAt(text: string, offset: number): string {
  if (offset >= text.length) return 'end of input';
  const c = text.codePointAt(offset) ?? 0;
  if (c === 0x0a || c === 0x0d) return 'end of line';
  return `character ${describeCharacter(c)}`;
}

function describeCharacter(codePoint: number): string {
  // Printable ASCII as itself; anything else by code point, so the message stays one clean line.
  if (codePoint > 0x20 && codePoint < 0x7f) return `'${String.fromCharCode(codePoint)}'`;
  return `U+${codePoint.toString(16).toUpperCase().padStart(4, '0')}`;
}

function truncate(text: string): string {
  return text.length > 24 ? `${text.slice(0, 24)}...` : text;
}

function isDigit(c: number): boolean {
  return c >= 0x30 && c <= 0x39;
}

function isIdentifierStart(c: number): boolean {
  return (c >= 0x61 && c <= 0x7a) || (c >= 0x41 && c <= 0x5a) || c === 0x5f;
}

function isIdentifierPart(c: number): boolean {
  return isIdentifierStart(c) || isDigit(c);
}
