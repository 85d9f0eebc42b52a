import type { ExprAst } from './ast.js';

/**
 * A path into the request context that an expression may read: `user.clearance` is
 * `['user', 'clearance']`. Evaluation walks its prefixes (each must be an object with the
 * next attribute as an own property) and may use the value at its end in any way (compare
 * it, describe it in an error, iterate it), so the end value counts as read whole.
 */
export type ReadPath = readonly string[];

/**
 * Every context path `e` can read, mirroring `compileAccess`: names bound by an enclosing
 * `any`/`all` are not context (their elements are covered by the list, read whole), and an
 * access on anything but a name reads only what that base expression reads. The language
 * has no computed access, so this bound is exact in shape and never misses a read.
 */
export function collectReads(e: ExprAst, out: ReadPath[], scope: readonly string[] = []): void {
  switch (e.kind) {
    case 'literal':
      return;
    case 'name':
    case 'member': {
      const path: string[] = [];
      let base: ExprAst = e;
      while (base.kind === 'member') {
        path.unshift(base.property);
        base = base.object;
      }
      if (base.kind !== 'name') collectReads(base, out, scope);
      else if (!scope.includes(base.name)) out.push([base.name, ...path]);
      return;
    }
    case 'contains':
      collectReads(e.object, out, scope);
      collectReads(e.argument, out, scope);
      return;
    case 'not':
      collectReads(e.operand, out, scope);
      return;
    case 'binary':
      collectReads(e.left, out, scope);
      collectReads(e.right, out, scope);
      return;
    case 'list':
      for (const item of e.items) collectReads(item, out, scope);
      return;
    case 'quantifier':
      collectReads(e.list, out, scope);
      collectReads(e.body, out, [...scope, e.parameter]);
      return;
    default: {
      const never: never = e;
      return never;
    }
  }
}
