const BARE_OR_QUOTED = String.raw`(?:[A-Za-z0-9_-]+|"[^"]*"|'[^']*')`;
const DOTTED = String.raw`${BARE_OR_QUOTED}(?:\s*\.\s*${BARE_OR_QUOTED})*`;
const TABLE_HEADER = new RegExp(String.raw`^\s*\[\[?\s*(${DOTTED})\s*\]\]?\s*(?:#.*)?$`);
const KEY_VALUE = new RegExp(String.raw`^\s*(${DOTTED})\s*=`);

function normalise(dotted: string): string {
  return dotted
    .split(/\s*\.\s*(?=(?:[^"']|"[^"]*"|'[^']*')*$)/)
    .map((part) => part.replace(/^(["'])(.*)\1$/, '$2'))
    .join('.');
}

/**
 * Maps each table and key of a TOML document to the 1-based line that defines it, so
 * that a validation error can point at a line. smol-toml reports positions only for
 * syntax errors; this scan is a best effort (a line inside a multi-line string can look
 * like a key), and a key it cannot place is reported without a line.
 */
export function keyLines(toml: string): ReadonlyMap<string, number> {
  const lines = new Map<string, number>();
  let table = '';
  toml.split(/\r?\n/).forEach((text, index) => {
    const header = TABLE_HEADER.exec(text);
    if (header?.[1] !== undefined) {
      table = normalise(header[1]);
      if (!lines.has(table)) lines.set(table, index + 1);
      return;
    }
    const keyValue = KEY_VALUE.exec(text);
    if (keyValue?.[1] !== undefined) {
      const key = table === '' ? normalise(keyValue[1]) : `${table}.${normalise(keyValue[1])}`;
      if (!lines.has(key)) lines.set(key, index + 1);
    }
  });
  return lines;
}
