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
import type { Language, Node, TreeCursor } from 'web-tree-sitter';

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

/** Per language, whether each node type id is named: asked once per type, not once per node. */
const namedTypes = new WeakMap<Language, Map<number, boolean>>();

/**
 * The cursor operations a copy needs. Each one is a call into wasm; through
 * web-tree-sitter's TreeCursor each call also copies the cursor's four words
 * into wasm memory and, for moves, back (that marshalling cost more than the
 * calls themselves: a third of the non-parsing time on the kernel files that
 * matter).
 */
interface CursorOps {
  typeId(): number;
  isNamed(): boolean;
  isMissing(): boolean;
  fieldId(): number;
  start(): number;
  end(): number;
  firstChild(): boolean;
  nextSibling(): boolean;
  parent(): boolean;
}

function publicOps(cursor: TreeCursor): CursorOps {
  return {
    typeId: () => cursor.nodeTypeId,
    isNamed: () => cursor.nodeIsNamed,
    isMissing: () => cursor.nodeIsMissing,
    fieldId: () => cursor.currentFieldId,
    start: () => cursor.startIndex,
    end: () => cursor.endIndex,
    firstChild: () => cursor.gotoFirstChild(),
    nextSibling: () => cursor.gotoNextSibling(),
    parent: () => cursor.gotoParent(),
  };
}

/**
 * web-tree-sitter's emscripten module: the object handed to `Parser.init`
 * becomes it (core/analyzer.ts does that, and calls `adoptRuntime`). Its
 * `_ts_tree_cursor_*_wasm` functions are what TreeCursor calls; they read the
 * cursor from the binding's transfer buffer and write it back after a move,
 * so a copy that makes no other call into the binding while it walks can
 * call them one after the other without marshalling anything, and put the
 * final cursor back into the TreeCursor before it is deleted.
 */
interface Runtime {
  _ts_init(): number;
  getValue(ptr: number, type: string): number;
  _ts_tree_cursor_current_node_type_id_wasm(tree: number): number;
  _ts_tree_cursor_current_node_is_named_wasm(tree: number): number;
  _ts_tree_cursor_current_node_is_missing_wasm(tree: number): number;
  _ts_tree_cursor_current_field_id_wasm(tree: number): number;
  _ts_tree_cursor_start_index_wasm(tree: number): number;
  _ts_tree_cursor_end_index_wasm(tree: number): number;
  _ts_tree_cursor_goto_first_child_wasm(tree: number): number;
  _ts_tree_cursor_goto_next_sibling_wasm(tree: number): number;
  _ts_tree_cursor_goto_parent_wasm(tree: number): number;
}

const RUNTIME_FUNCTIONS = [
  '_ts_init',
  'getValue',
  '_ts_tree_cursor_current_node_type_id_wasm',
  '_ts_tree_cursor_current_node_is_named_wasm',
  '_ts_tree_cursor_current_node_is_missing_wasm',
  '_ts_tree_cursor_current_field_id_wasm',
  '_ts_tree_cursor_start_index_wasm',
  '_ts_tree_cursor_end_index_wasm',
  '_ts_tree_cursor_goto_first_child_wasm',
  '_ts_tree_cursor_goto_next_sibling_wasm',
  '_ts_tree_cursor_goto_parent_wasm',
] as const;

/** The runtime once `verifyRuntime` found its copies equal to TreeCursor's; until then (or without it) copies go through TreeCursor. */
let direct: { rt: Runtime; transfer: number } | undefined;
let candidate: Runtime | undefined;

/**
 * Offers web-tree-sitter's emscripten module (the object that was handed to
 * `Parser.init`) for direct cursor calls. Ignored unless it has every
 * function the copy calls; used only after `verifyRuntime` passes.
 */
export function adoptRuntime(module: object): void {
  const m = module as Record<string, unknown>;
  if (direct || !RUNTIME_FUNCTIONS.every((f) => typeof m[f] === 'function')) return;
  candidate = module as Runtime;
}

/**
 * Copies `node` both ways and keeps the direct calls only when the copies
 * are the same (the analyzer runs this once, on a sample with errors,
 * missing nodes, fields, operators and comments). Returns whether they are.
 */
export function verifyRuntime(node: Node): boolean {
  if (direct || !candidate) return !!direct;
  const rt = candidate;
  candidate = undefined;
  const slow = copyTree(node);
  // ts_init returns the transfer buffer's address (and writes the two language version words there; nothing is in flight now).
  direct = { rt, transfer: rt._ts_init() };
  let same = false;
  try {
    same = sameCopy(copyTree(node), slow);
  } catch {
    same = false;
  }
  if (!same) direct = undefined;
  return same;
}

function directOps(cursor: TreeCursor, d: { rt: Runtime; transfer: number }): CursorOps {
  const rt = d.rt;
  const tree = (cursor as unknown as { tree: { [0]: number } }).tree[0];
  return {
    typeId: () => rt._ts_tree_cursor_current_node_type_id_wasm(tree),
    isNamed: () => rt._ts_tree_cursor_current_node_is_named_wasm(tree) === 1,
    isMissing: () => rt._ts_tree_cursor_current_node_is_missing_wasm(tree) === 1,
    fieldId: () => rt._ts_tree_cursor_current_field_id_wasm(tree),
    start: () => rt._ts_tree_cursor_start_index_wasm(tree),
    end: () => rt._ts_tree_cursor_end_index_wasm(tree),
    firstChild: () => rt._ts_tree_cursor_goto_first_child_wasm(tree) === 1,
    nextSibling: () => rt._ts_tree_cursor_goto_next_sibling_wasm(tree) === 1,
    parent: () => rt._ts_tree_cursor_goto_parent_wasm(tree) === 1,
  };
}

/**
 * Copies `node`'s subtree. Every cursor property is a call into wasm, so the
 * copy asks only what it cannot know otherwise: a type's namedness is
 * remembered per type id, and MISSING nodes are looked for only under a node
 * with an error (they always give their ancestors one).
 */
export function copyTree(node: Node): AstNode {
  const language = node.tree.language;
  let named = namedTypes.get(language);
  if (!named) namedTypes.set(language, (named = new Map()));
  const mayBeMissing = node.hasError;
  const cursor = node.walk();
  const d = direct;
  if (!d) {
    try {
      return copyCursor(publicOps(cursor), language.types, language.fields, named, mayBeMissing);
    } finally {
      cursor.delete();
    }
  }
  // A public call puts this cursor into the transfer buffer; the direct calls then move it there.
  void cursor.nodeTypeId;
  try {
    return copyCursor(directOps(cursor, d), language.types, language.fields, named, mayBeMissing);
  } finally {
    // The moves may have reallocated the cursor's stack: take the cursor back before deleting it.
    const c = cursor as unknown as Record<number, number>;
    for (let i = 0; i < 4; i++) c[i] = d.rt.getValue(d.transfer + 4 * i, 'i32');
    cursor.delete();
  }
}

function copyCursor(cursor: CursorOps, types: readonly string[], fields: readonly (string | null)[], named: Map<number, boolean>, mayBeMissing: boolean): AstNode {
  const root: AstNode = {
    type: types[cursor.typeId()] || 'ERROR',
    start: cursor.start(),
    end: cursor.end(),
    children: [],
  };
  const stack: AstNode[] = [root];
  if (!cursor.firstChild()) return root;
  for (;;) {
    const parent = stack[stack.length - 1];
    const id = cursor.typeId();
    // As TreeCursor.nodeType and .currentFieldName compute them.
    const type = types[id] || 'ERROR';
    let isNamed = named.get(id);
    if (isNamed === undefined) {
      isNamed = cursor.isNamed();
      named.set(id, isNamed);
    }
    let descended = false;
    if (isNamed) {
      if (type !== 'comment') {
        const n: AstNode = { type, start: cursor.start(), end: cursor.end(), children: [], parent };
        const field = fields[cursor.fieldId()];
        if (field) n.field = field;
        if (mayBeMissing && cursor.isMissing()) n.missing = true;
        parent.children.push(n);
        if (cursor.firstChild()) {
          stack.push(n);
          if (stack.length > MAX_DEPTH) throw new TooDeep(n.start);
          descended = true;
        }
      }
    } else if (fields[cursor.fieldId()] === 'operator') {
      parent.op = type;
    } else if (type === '&&' || type === '||') {
      parent.op ??= type;
    }
    if (descended) continue;
    while (!cursor.nextSibling()) {
      if (stack.length === 1 || !cursor.parent()) return root;
      stack.pop();
    }
  }
}

/** Whether two copies have the same nodes (types, offsets, fields, operators, missing marks). */
function sameCopy(a: AstNode, b: AstNode): boolean {
  const stack: Array<[AstNode, AstNode]> = [[a, b]];
  while (stack.length) {
    const [x, y] = stack.pop()!;
    if (x.type !== y.type || x.start !== y.start || x.end !== y.end || x.field !== y.field || x.op !== y.op || !!x.missing !== !!y.missing) return false;
    if (x.children.length !== y.children.length) return false;
    for (let i = 0; i < x.children.length; i++) stack.push([x.children[i], y.children[i]]);
  }
  return true;
}

/**
 * Copies kept across the incremental reparses of one document, so an edit
 * re-copies only what it touched (copying crosses into wasm for every node;
 * a 450 KB amdgpu file spends most of its analysis there otherwise).
 *
 * Keyed by the id of the node's first child. Tree-sitter's node id is the
 * address of the node's slot in its parent's child array, so a top-level
 * function gets a new id whenever the file's root is rebuilt (every edit);
 * its first child's id points into the function's own child array, which a
 * reparse keeps when it reuses the function unchanged. A subtree the reparse
 * did not reuse is freed only after the new tree is complete, so no new node
 * can take an address of the previous tree; entries not used on the previous
 * tree are dropped at each reparse (`advance`), which leaves no address that
 * could have been freed and reused. Type, length and text are checked too:
 * a reparse can keep the first child of a function it rebuilt (an edit inside
 * it that keeps its length, `<` made `>`), so a hit must also have the same
 * text as where the entry was last used (the previous parse's sanitized
 * text, kept with the cache: `useText`). A hit at another offset (text
 * inserted above it) is shifted.
 * Copies are never modified once made, so successive analyses share them.
 */
export class AstCache {
  private readonly entries = new Map<number, { type: string; start: number; length: number; ast: AstNode; gen: number }>();
  private readonly values = new Map<number, { type: string; start: number; length: number; value: unknown; gen: number }>();
  private gen = 0;
  /** The (sanitized) text of the tree being copied from, and of the previous one (where surviving entries were last used). */
  private text = '';
  private previous: string | undefined;
  hits = 0;
  misses = 0;

  /** The text of the tree the next copies come from (core/parser.ts ParsedFile sets it). */
  useText(text: string): void {
    this.previous = this.text;
    this.text = text;
  }

  /** The copy of `node`'s subtree, from the cache when the node was reused. */
  copy(node: Node): AstNode {
    const k = this.lookup(this.entries, node);
    if (!k) return copyTree(node);
    const e = k.entry;
    if (e) {
      this.hits++;
      e.gen = this.gen;
      if (e.start !== k.start) {
        e.ast = shifted(e.ast, k.start - e.start);
        e.start = k.start;
      }
      return e.ast;
    }
    this.misses++;
    const ast = copyTree(node);
    this.entries.set(k.id, { type: ast.type, start: k.start, length: ast.end - ast.start, ast, gen: this.gen });
    return ast;
  }

  /**
   * `compute(node)`, remembered for the node as copies are (same key, same
   * checks): for facts read from a top-level node through the tree's API
   * (core/facts.ts reads a function's name and parameters this way). The
   * value must not hold offsets: it is reused where the node moved.
   */
  remember<T>(node: Node, compute: (node: Node) => T): T {
    const k = this.lookup(this.values, node);
    if (!k) return compute(node);
    const e = k.entry;
    if (e) {
      e.gen = this.gen;
      e.start = k.start;
      return e.value as T;
    }
    const value = compute(node);
    this.values.set(k.id, { type: node.type, start: k.start, length: k.length, value, gen: this.gen });
    return value;
  }

  /**
   * The key of `node` (its first child's id; undefined for a leaf, which is
   * not cached), where it is, and the entry of `map` made for it, if that
   * entry is still the node's (same type and length, and the same text where
   * it was last used, on this tree or the previous one).
   */
  private lookup<E extends { type: string; start: number; length: number; gen: number }>(
    map: Map<number, E>,
    node: Node,
  ): { id: number; start: number; length: number; entry?: E } | undefined {
    const first = node.child(0);
    if (!first) return undefined;
    const id = first.id;
    const start = node.startIndex;
    const length = node.endIndex - start;
    const e = map.get(id);
    if (!e || e.type !== node.type || e.length !== length) return { id, start, length };
    const same = e.gen === this.gen ? e.start === start : this.previous !== undefined && this.previous.slice(e.start, e.start + length) === this.text.slice(start, start + length);
    return same ? { id, start, length, entry: e } : { id, start, length };
  }

  /** A reparse made a new tree from the previous one: keep only what the previous tree used. */
  advance(): void {
    for (const [id, e] of this.entries) if (e.gen !== this.gen) this.entries.delete(id);
    for (const [id, e] of this.values) if (e.gen !== this.gen) this.values.delete(id);
    this.gen++;
  }

  clear(): void {
    this.entries.clear();
    this.values.clear();
    this.text = '';
    this.previous = undefined;
  }

  get size(): number {
    return this.entries.size;
  }
}

/** A copy of `n` with every offset moved by `delta`. */
function shifted(n: AstNode, delta: number, parent?: AstNode): AstNode {
  const c: AstNode = { type: n.type, start: n.start + delta, end: n.end + delta, children: [] };
  if (n.field !== undefined) c.field = n.field;
  if (n.op !== undefined) c.op = n.op;
  if (n.missing) c.missing = true;
  if (parent) c.parent = parent;
  // Iterative: copies can be MAX_DEPTH deep.
  const stack: Array<[AstNode, AstNode]> = [[n, c]];
  while (stack.length) {
    const [from, to] = stack.pop()!;
    for (const ch of from.children) {
      const k: AstNode = { type: ch.type, start: ch.start + delta, end: ch.end + delta, children: [], parent: to };
      if (ch.field !== undefined) k.field = ch.field;
      if (ch.op !== undefined) k.op = ch.op;
      if (ch.missing) k.missing = true;
      to.children.push(k);
      if (ch.children.length) stack.push([ch, k]);
    }
  }
  return c;
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
