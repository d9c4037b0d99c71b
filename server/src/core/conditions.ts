/**
 * What a branch condition tells each edge.
 *
 * `truths(cond, true)` lists the sub-expressions known truthy or falsy on the
 * true edge of `if (cond)`; likewise for the false edge. It sees through `!`,
 * `&&`, `||`, comparisons with 0/NULL, `x < 0` on error codes, `likely()` /
 * `unlikely()` / `WARN_ON()` wrappers and assignments inside conditions
 * (`if ((ret = f()))`).
 */
import { type AstNode, field, unwrap } from './ast';

export interface Truth {
  node: AstNode;
  /** The node's value is non-zero (true) or zero (false). */
  truthy: boolean;
}

const TRANSPARENT = new Set(['likely', 'unlikely', 'WARN_ON', 'WARN_ON_ONCE', 'WARN', 'WARN_ONCE', '!!']);

export function truths(cond: AstNode | undefined, edge: boolean, t: (n: AstNode) => string): Truth[] {
  if (!cond) return [];
  const out: Truth[] = [];
  collect(unwrap(cond), edge, out, t);
  return out;
}

function isZero(n: AstNode, t: (n: AstNode) => string): boolean {
  const s = t(n).replace(/\s+/g, '');
  return s === '0' || s === 'NULL' || s === 'false' || s === '0UL' || s === '0L' || s === '((void*)0)';
}

function collect(n: AstNode, edge: boolean, out: Truth[], t: (n: AstNode) => string): void {
  n = unwrap(n);
  if (n.type === 'unary_expression' && n.op === '!') {
    const arg = field(n, 'argument') ?? n.children[0];
    if (arg) collect(arg, !edge, out, t);
    return;
  }
  if (n.type === 'binary_expression') {
    const l = field(n, 'left');
    const r = field(n, 'right');
    if (!l || !r) return;
    switch (n.op) {
      case '&&':
        if (edge) {
          collect(l, true, out, t);
          collect(r, true, out, t);
        }
        return;
      case '||':
        if (!edge) {
          collect(l, false, out, t);
          collect(r, false, out, t);
        }
        return;
      case '!=':
        if (isZero(r, t)) collect(l, edge, out, t);
        else if (isZero(l, t)) collect(r, edge, out, t);
        return;
      case '==':
        if (isZero(r, t)) collect(l, !edge, out, t);
        else if (isZero(l, t)) collect(r, !edge, out, t);
        return;
      case '<':
        // `ret < 0` on an error code: true iff non-zero.
        if (isZero(r, t)) collect(l, edge, out, t);
        return;
      case '>=':
        if (isZero(r, t)) collect(l, !edge, out, t);
        return;
      default:
        return;
    }
  }
  if (n.type === 'call_expression') {
    const f = field(n, 'function');
    const name = f ? t(f) : '';
    if (TRANSPARENT.has(name)) {
      const args = field(n, 'arguments')?.children ?? [];
      const last = name === 'WARN' || name === 'WARN_ONCE' ? args[0] : args[0];
      if (last) collect(last, edge, out, t);
      return;
    }
  }
  if (n.type === 'assignment_expression' && n.op === '=') {
    const l = field(n, 'left');
    const r = field(n, 'right');
    if (l) out.push({ node: l, truthy: edge });
    if (r) collect(r, edge, out, t);
    return;
  }
  out.push({ node: n, truthy: edge });
}
