/**
 * A light, plain-JavaScript copy of the parts of the tree the rules read.
 *
 * Walking web-tree-sitter nodes crosses into wasm on every property access;
 * rules walk the same functions many times. So the functions that can matter
 * (see facts.ts) are copied once, with a tree cursor, into `AstNode`s: named
 * nodes only, comments dropped, the operator of an expression kept as `op`.
 * Text always comes from the ORIGINAL source (not the sanitized one), through
 * the offsets, which the sanitizer keeps equal.
 */
import type { Node, TreeCursor } from 'web-tree-sitter';

export interface AstNode {
  type: string;
  start: number;
  end: number;
  /** Field name under the parent (`function`, `arguments`, `left`, ...). */
  field?: string;
  /** Operator token of expressions (`!`, `==`, `->`, `&`, `=`, `+=`, ...). */
  op?: string;
  /** MISSING node inserted by error recovery. */
  missing?: boolean;
  children: AstNode[];
  parent?: AstNode;
}

/** Deeper than this, code is not something a person wrote: analysis of it is skipped (and recursion stays bounded). */
export const MAX_DEPTH = 1000;

export class TooDeep extends Error {
  constructor(readonly at: number) {
    super(`nesting deeper than ${MAX_DEPTH} levels`);
  }
}

export function copyTree(node: Node): AstNode {
  const cursor = node.walk();
  try {
    return copyCursor(cursor);
  } finally {
    cursor.delete();
  }
}

function copyCursor(cursor: TreeCursor): AstNode {
  const root: AstNode = {
    type: cursor.nodeType,
    start: cursor.startIndex,
    end: cursor.endIndex,
    children: [],
  };
  const stack: AstNode[] = [root];
  if (!cursor.gotoFirstChild()) return root;
  for (;;) {
    const parent = stack[stack.length - 1];
    const type = cursor.nodeType;
    let descended = false;
    if (cursor.nodeIsNamed) {
      if (type !== 'comment') {
        const n: AstNode = { type, start: cursor.startIndex, end: cursor.endIndex, children: [], parent };
        const field = cursor.currentFieldName;
        if (field) n.field = field;
        if (cursor.nodeIsMissing) n.missing = true;
        parent.children.push(n);
        if (cursor.gotoFirstChild()) {
          stack.push(n);
          if (stack.length > MAX_DEPTH) throw new TooDeep(n.start);
          descended = true;
        }
      }
    } else if (cursor.currentFieldName === 'operator') {
      parent.op = type;
    } else if (type === '&&' || type === '||') {
      parent.op ??= type;
    }
    if (descended) continue;
    while (!cursor.gotoNextSibling()) {
      if (stack.length === 1 || !cursor.gotoParent()) return root;
      stack.pop();
    }
  }
}

/** First child with the given field name. */
export function field(n: AstNode, name: string): AstNode | undefined {
  for (const c of n.children) if (c.field === name) return c;
  return undefined;
}

export function fields(n: AstNode, name: string): AstNode[] {
  return n.children.filter((c) => c.field === name);
}

/** Pre-order walk; return false from `visit` to skip a subtree. */
export function walk(n: AstNode, visit: (n: AstNode) => boolean | void): void {
  const stack = [n];
  while (stack.length) {
    const cur = stack.pop()!;
    if (visit(cur) === false) continue;
    for (let i = cur.children.length - 1; i >= 0; i--) stack.push(cur.children[i]);
  }
}

/** Strips parentheses, casts and `*`/`&` free wrappers that do not change which object is meant. */
export function unwrap(n: AstNode): AstNode {
  let cur = n;
  for (;;) {
    if (cur.type === 'parenthesized_expression' && cur.children.length === 1) cur = cur.children[0];
    else if (cur.type === 'cast_expression') {
      const v = field(cur, 'value');
      if (!v) return cur;
      cur = v;
    } else return cur;
  }
}
