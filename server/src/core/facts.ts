/**
 * Facts about one file, computed lazily from its syntax tree:
 *
 * - per file: the functions (name, parameters, static or not), designated
 *   initializers of ops tables and other objects, and the callback roles they
 *   give to functions (`.move_notify = acme_move_notify`);
 * - per function (only for functions whose text can matter, or that hold a
 *   role): a light AST copy, the calls in evaluation order, the assignments,
 *   the CFG.
 *
 * Every rule reads the same FileFacts, so each function is copied and its CFG
 * built at most once per analysis.
 */
import type { Node } from 'web-tree-sitter';
import { type AstNode, field, TooDeep, unwrap, walk } from './ast';
import { buildFunctionCfg, type Cfg, type CfgNode } from './cfg';
import type { ParsedFile } from './parser';
import type { AnalysisNotice, AnalyzeOptions, Span } from './types';

export interface Param {
  name: string;
  /** Type text as written, e.g. `struct dma_buf_attachment *`. */
  type: string;
}

export interface FunctionInfo {
  name: string;
  start: number;
  end: number;
  isStatic: boolean;
  params: Param[];
  /** Span of the name, for messages and related locations. */
  nameSpan: Span;
  /** The tree-sitter node; valid while the tree lives. */
  tsNode: Node;
}

/** One `.field = value` of a designated initializer (nested paths joined with dots). */
export interface InitField {
  path: string;
  value: AstNode;
}

/** A designated initializer: `static const struct dma_buf_ops acme_ops = { .pin = acme_pin, ... };` */
export interface InitializerFact {
  /** Struct tag of the object's type (`dma_buf_ops`), when written. */
  structType?: string;
  /** Variable name, or '' for compound literals. */
  name: string;
  fields: InitField[];
  node: AstNode;
  /** Function containing it, for local objects. */
  inFunction?: string;
}

export interface Role {
  /** `structType.field` when the type is known (`dma_buf_attach_ops.move_notify`), else `.field`. */
  role: string;
  field: string;
  structType?: string;
  table: InitializerFact;
  span: Span;
}

export interface CallFact {
  name: string;
  node: AstNode;
  args: AstNode[];
  /** CFG node holding the call. */
  cfgNode: number;
}

export interface AssignFact {
  /** Canonical key of the assigned place (`sgt`, `obj->sgt`, `pgmap.type`). */
  lhs: string;
  lhsNode: AstNode;
  rhs: AstNode;
  cfgNode: number;
  /** `=`, `|=`, ... */
  op: string;
}

export interface FunctionFacts {
  info: FunctionInfo;
  ast: AstNode;
  body: AstNode;
  cfg: Cfg;
  calls: CallFact[];
  assigns: AssignFact[];
  /** Calls per CFG node, in evaluation order. */
  callsAt: Map<number, CallFact[]>;
  /** Assignments per CFG node, in source order (transfer functions read this, not `assigns`). */
  assignsAt: Map<number, AssignFact[]>;
  /** Local variable declarations: name -> type text. */
  locals: Map<string, string>;
  /** Designated initializers inside the function. */
  initializers: InitializerFact[];
}

/**
 * Functions (and top-level declarations) longer than this are not analysed; a
 * `too-large` notice says so. The largest function that matters in Linux 6.12
 * is 60 KB (gfx_v8_0_tiling_mode_table_init); copying and analysing a function
 * takes time linear in its size, and a multi-megabyte one is generated code.
 */
export const MAX_FUNCTION_CHARS = 256 * 1024;

/** What addFunction reads from a function_definition node, offsets relative to its start. */
interface FunctionShape {
  name: string;
  nameAt: number;
  /** Each named parameter, with the span of its type (from the parameter's start to its name). */
  params: Array<{ name: string; type: [number, number] }>;
}

function functionShape(n: Node): FunctionShape | undefined {
  const decl = n.childForFieldName('declarator');
  if (!decl) return undefined;
  const fdecl = findFunctionDeclarator(decl);
  if (!fdecl) return undefined;
  const nameNode = innermostIdentifier(fdecl.childForFieldName('declarator'));
  if (!nameNode) return undefined;
  const start = n.startIndex;
  const params: FunctionShape['params'] = [];
  const plist = fdecl.childForFieldName('parameters');
  if (plist) {
    for (let i = 0; i < plist.namedChildCount; i++) {
      const p = plist.namedChild(i);
      if (!p || p.type !== 'parameter_declaration') continue;
      const pd = p.childForFieldName('declarator');
      const id = pd ? innermostIdentifier(pd) : null;
      if (id) params.push({ name: id.text, type: [p.startIndex - start, id.startIndex - start] });
    }
  }
  return { name: nameNode.text, nameAt: nameNode.startIndex - start, params };
}

/** Nodes whose children are top-level items too (a function inside `#ifdef`, or inside an ERROR). */
export const TOP_LEVEL_CONTAINERS: ReadonlySet<string> = new Set(['preproc_if', 'preproc_ifdef', 'preproc_else', 'preproc_elif', 'preproc_elifdef', 'linkage_specification', 'declaration_list', 'ERROR']);

export class FileFacts {
  readonly text: string;
  readonly functions = new Map<string, FunctionInfo>();
  readonly initializers: InitializerFact[] = [];
  readonly roles = new Map<string, Role[]>();
  /** Parts of the file that could not be analysed, and why. */
  readonly notices: AnalysisNotice[] = [];
  private readonly fnFacts = new Map<string, FunctionFacts | null>();
  /** The function a rule asked for last (the runner names it when the rule throws). */
  current: FunctionInfo | undefined;
  private interestingStarts: number[] | undefined;

  constructor(
    readonly doc: ParsedFile,
    /** Identifiers that make a function worth analysing. */
    private readonly interesting: RegExp,
    /** The options of this analysis (project wrappers, helpers, workspace facts). */
    readonly options: AnalyzeOptions = {},
  ) {
    this.text = doc.text;
    this.scanTopLevel(doc.tree.rootNode);
    for (const init of this.initializers) this.addRoles(init);
  }

  /** Source text of a node (from the original text: the sanitizer keeps offsets). */
  t(n: AstNode | Span): string {
    return this.text.slice(n.start, n.end);
  }

  /** Whether the function's text mentions an identifier some rule needs. */
  isInteresting(fn: FunctionInfo): boolean {
    if (!this.interestingStarts) {
      const starts: number[] = [];
      const re = new RegExp(this.interesting.source, 'g');
      for (let m = re.exec(this.text); m; m = re.exec(this.text)) starts.push(m.index);
      this.interestingStarts = starts;
    }
    const s = this.interestingStarts;
    let lo = 0;
    let hi = s.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (s[mid] < fn.start) lo = mid + 1;
      else hi = mid;
    }
    return lo < s.length && s[lo] < fn.end;
  }

  /** Functions worth analysing: interesting by text, or bound to a role. */
  analysedFunctions(): FunctionInfo[] {
    const out: FunctionInfo[] = [];
    for (const fn of this.functions.values()) if (this.isInteresting(fn) || this.roles.has(fn.name)) out.push(fn);
    return out;
  }

  /** Per-function facts (AST copy, calls, CFG), built once. A function too deep to analyse is skipped, with a notice. */
  fn(name: string): FunctionFacts | undefined {
    const info = this.functions.get(name);
    if (info) this.current = info;
    if (this.fnFacts.has(name)) return this.fnFacts.get(name) ?? undefined;
    let facts: FunctionFacts | null = null;
    if (info && info.end - info.start > MAX_FUNCTION_CHARS) {
      this.notices.push({ kind: 'too-large', message: `${name}() is ${info.end - info.start} characters long, over the ${MAX_FUNCTION_CHARS}-character limit for one function; it was not analysed`, span: info.nameSpan });
    } else if (info) {
      const t0 = this.options.timing ? performance.now() : 0;
      try {
        facts = this.buildFunction(info);
        if (this.options.timing) this.options.timing('function facts (within rules)', performance.now() - t0);
      } catch (e) {
        if (!(e instanceof TooDeep || e instanceof RangeError)) throw e;
        this.notices.push({ kind: 'too-deep', message: `${name}(): ${e instanceof TooDeep ? e.message : 'nesting too deep'}; not analysed`, span: info.nameSpan });
      }
    }
    this.fnFacts.set(name, facts);
    return facts ?? undefined;
  }

  rolesOf(fnName: string): Role[] {
    return this.roles.get(fnName) ?? [];
  }

  /** Function names bound to a role field (`move_notify`), optionally of a struct type. */
  functionsWithRole(fieldName: string, structType?: string): string[] {
    const out: string[] = [];
    for (const [fn, roles] of this.roles)
      if (roles.some((r) => r.field === fieldName && (!structType || !r.structType || r.structType === structType)))
        out.push(fn);
    return out;
  }

  /** All initializers: file-level and those inside analysed functions. */
  allInitializers(): InitializerFact[] {
    const out = [...this.initializers];
    for (const fn of this.analysedFunctions()) {
      const f = this.fn(fn.name);
      if (f) out.push(...f.initializers);
    }
    return out;
  }

  // ---------------------------------------------------------------- top level

  private scanTopLevel(root: Node): void {
    const stack: Node[] = [root];
    while (stack.length) {
      const n = stack.pop()!;
      // All at once: namedChild(i) walks the children from the first each time (quadratic at the top level).
      const children = n.namedChildren;
      for (let i = children.length - 1; i >= 0; i--) {
        const c = children[i];
        if (!c) continue;
        switch (c.type) {
          case 'function_definition':
            this.addFunction(c);
            break;
          case 'declaration':
            if (c.text.includes('=') && c.text.includes('{')) this.addTopDeclaration(c);
            break;
          default:
            if (TOP_LEVEL_CONTAINERS.has(c.type)) stack.push(c);
        }
      }
    }
  }

  private addFunction(n: Node): void {
    // Read through the tree's API once per function (core/ast.ts AstCache.remember): an edit re-reads
    // only the functions it touched. Offsets are relative to the function, texts are sliced here.
    const shape = this.doc.asts.remember(n, functionShape);
    if (!shape) return;
    const start = n.startIndex;
    if (this.functions.has(shape.name)) return;
    const params: Param[] = shape.params.map((p) => ({ name: p.name, type: this.text.slice(start + p.type[0], start + p.type[1]).replace(/\s+/g, ' ').trim() }));
    this.functions.set(shape.name, {
      name: shape.name,
      start,
      end: n.endIndex,
      isStatic: /\bstatic\b/.test(this.text.slice(start, start + shape.nameAt)),
      params,
      nameSpan: { start: start + shape.nameAt, end: start + shape.nameAt + shape.name.length },
      tsNode: n,
    });
  }

  private addTopDeclaration(n: Node): void {
    if (n.endIndex - n.startIndex > MAX_FUNCTION_CHARS) {
      this.notices.push({ kind: 'too-large', message: `a declaration of ${n.endIndex - n.startIndex} characters, over the ${MAX_FUNCTION_CHARS}-character limit, was not analysed`, span: { start: n.startIndex, end: n.startIndex } });
      return;
    }
    try {
      const ast = this.doc.asts.copy(n);
      this.initializers.push(...collectInitializers(ast, this));
    } catch (e) {
      if (!(e instanceof TooDeep || e instanceof RangeError)) throw e;
      this.notices.push({ kind: 'too-deep', message: `a declaration nested too deeply to analyse (${e.message})`, span: { start: n.startIndex, end: n.startIndex } });
    }
  }

  private addRoles(init: InitializerFact): void {
    for (const f of init.fields) {
      const v = unwrap(f.value);
      let fnName: string | undefined;
      if (v.type === 'identifier') fnName = this.t(v);
      else if (v.type === 'pointer_expression' && v.op === '&' && v.children[0]?.type === 'identifier')
        fnName = this.t(v.children[0]);
      if (!fnName || !this.functions.has(fnName)) continue;
      const leaf = f.path.split('.').pop()!;
      const role: Role = {
        role: (init.structType ?? '') + '.' + leaf,
        field: leaf,
        structType: init.structType,
        table: init,
        span: { start: f.value.start, end: f.value.end },
      };
      const list = this.roles.get(fnName) ?? [];
      list.push(role);
      this.roles.set(fnName, list);
    }
  }

  // ------------------------------------------------------------- per function

  private buildFunction(info: FunctionInfo): FunctionFacts | null {
    const ast = this.doc.copyFunction(info.tsNode);
    const body = field(ast, 'body');
    if (!body) return null;
    const cfg = buildFunctionCfg(body, this.doc.sanitized.iterators, this.text);
    const calls: CallFact[] = [];
    const assigns: AssignFact[] = [];
    const callsAt = new Map<number, CallFact[]>();
    const assignsAt = new Map<number, AssignFact[]>();
    const locals = new Map<string, string>();
    const initializers: InitializerFact[] = [];
    for (const node of cfg.nodes) {
      if (!node.ast) continue;
      const here: CallFact[] = [];
      for (const c of callsInOrder(node.ast, node)) {
        const fnNode = field(c, 'function');
        if (!fnNode) continue;
        const fnU = unwrap(fnNode);
        const name = fnU.type === 'identifier' ? this.t(fnU) : fnU.type === 'field_expression' ? this.t(field(fnU, 'field') ?? fnU) : '';
        const argList = field(c, 'arguments');
        const fact: CallFact = { name, node: c, args: argList ? argList.children : [], cfgNode: node.id };
        here.push(fact);
        calls.push(fact);
      }
      if (here.length) callsAt.set(node.id, here);
      for (const a of assignmentsIn(node, this)) {
        assigns.push(a);
        const at = assignsAt.get(node.id);
        if (at) at.push(a);
        else assignsAt.set(node.id, [a]);
      }
      if (node.ast.type === 'declaration') {
        const typeNode = field(node.ast, 'type');
        const typeText = typeNode ? this.t(typeNode) : '';
        for (const d of node.ast.children) {
          if (d.field !== 'declarator') continue;
          const id = innermostAstIdentifier(d);
          if (id) locals.set(this.t(id), typeText + (this.t(d).includes('*') ? ' *' : ''));
        }
        initializers.push(...collectInitializers(node.ast, this, info.name));
      }
    }
    // Compound literals and initializers nested in expressions.
    for (const node of cfg.nodes) {
      if (!node.ast || node.ast.type === 'declaration') continue;
      walk(node.ast, (n) => {
        if (n.type === 'compound_literal_expression') {
          const v = field(n, 'value');
          const ty = field(n, 'type');
          if (v) {
            const fields: InitField[] = [];
            collectFields(v, '', fields, this);
            initializers.push({
              structType: ty ? structTag(ty, this) : undefined,
              name: '',
              fields,
              node: n,
              inFunction: info.name,
            });
          }
        }
      });
    }
    for (const init of initializers) this.addRoles(init);
    return { info, ast, body, cfg, calls, assigns, callsAt, assignsAt, locals, initializers };
  }
}

// ------------------------------------------------------------------ helpers

function findFunctionDeclarator(n: Node | null): Node | null {
  let cur: Node | null = n;
  for (let i = 0; cur && i < 8; i++) {
    if (cur.type === 'function_declarator') return cur;
    cur = cur.childForFieldName('declarator');
  }
  return null;
}

function innermostIdentifier(n: Node | null): Node | null {
  let cur: Node | null = n;
  for (let i = 0; cur && i < 8; i++) {
    if (cur.type === 'identifier' || cur.type === 'field_identifier') return cur;
    if (cur.type === 'parenthesized_declarator') cur = cur.namedChild(0);
    else cur = cur.childForFieldName('declarator');
  }
  return null;
}

export function innermostAstIdentifier(n: AstNode | undefined): AstNode | undefined {
  let cur = n;
  for (let i = 0; cur && i < 8; i++) {
    if (cur.type === 'identifier') return cur;
    if (cur.type === 'parenthesized_declarator') cur = cur.children[0];
    else cur = field(cur, 'declarator');
  }
  return undefined;
}

/** Calls inside `n` in evaluation order (arguments before the call). */
export function callsInOrder(n: AstNode, _node?: CfgNode): AstNode[] {
  const out: AstNode[] = [];
  const visit = (x: AstNode) => {
    // Nested statement bodies are separate CFG nodes; conditions keep their calls.
    for (const c of x.children) {
      if (c.type === 'compound_statement') continue;
      visit(c);
    }
    if (x.type === 'call_expression') out.push(x);
  };
  visit(n);
  return out;
}

function assignmentsIn(node: CfgNode, ff: FileFacts): AssignFact[] {
  const out: AssignFact[] = [];
  if (!node.ast) return out;
  walk(node.ast, (n) => {
    if (n.type === 'compound_statement') return false;
    if (n.type === 'assignment_expression') {
      const l = field(n, 'left');
      const r = field(n, 'right');
      if (l && r) {
        const key = exprKey(l, ff);
        if (key) out.push({ lhs: key, lhsNode: l, rhs: r, cfgNode: node.id, op: n.op ?? '=' });
      }
    } else if (n.type === 'init_declarator') {
      const d = field(n, 'declarator');
      const v = field(n, 'value');
      const id = innermostAstIdentifier(d);
      if (id && v && v.type !== 'initializer_list')
        out.push({ lhs: ff.t(id), lhsNode: id, rhs: v, cfgNode: node.id, op: '=' });
    }
  });
  return out;
}

/**
 * Canonical key of an lvalue-like expression: `sgt`, `obj->sgt`, `pgmap.range.start`,
 * `&chunk->pagemap`, `args.src[i]`. Whitespace, parentheses and casts are dropped.
 */
export function exprKey(n: AstNode, ff: { t(n: AstNode): string }): string | undefined {
  const u = unwrap(n);
  switch (u.type) {
    case 'identifier':
      return ff.t(u);
    case 'field_expression': {
      const arg = field(u, 'argument');
      const f = field(u, 'field');
      if (!arg || !f) return undefined;
      const base = exprKey(arg, ff);
      return base === undefined ? undefined : `${base}${u.op === '.' ? '.' : '->'}${ff.t(f)}`;
    }
    case 'subscript_expression': {
      const arg = field(u, 'argument');
      const idx = field(u, 'index') ?? u.children[1];
      if (!arg) return undefined;
      const base = exprKey(arg, ff);
      return base === undefined ? undefined : `${base}[${idx ? ff.t(idx).replace(/\s+/g, '') : ''}]`;
    }
    case 'pointer_expression': {
      const arg = field(u, 'argument') ?? u.children[0];
      if (!arg) return undefined;
      const base = exprKey(arg, ff);
      return base === undefined ? undefined : `${u.op ?? '*'}${base}`;
    }
    default:
      return undefined;
  }
}

/**
 * The object a key designates, as a pointer-free path: `&pgmap` and `pgmap`
 * are the same object for `memremap_pages(&pgmap)` and `pgmap.type = ...`;
 * `pgmap->type` has the object `pgmap` (a pointer). Normalises `->` to `.`
 * and drops a leading `&` or `*`.
 */
export function objectPath(key: string): string {
  // Rules ask this in their inner loops: most keys are plain names, returned as they are.
  const c = key.charCodeAt(0);
  if (c !== 38 /* & */ && c !== 42 /* * */ && !key.includes('->')) return key;
  return key.replace(/^[&*]+/, '').replace(/->/g, '.');
}

/** Root variable of a key: `obj->sgt->sgl` -> `obj`. */
export function rootOf(key: string): string {
  const m = /^[&*]*([A-Za-z_]\w*)/.exec(key);
  return m ? m[1] : key;
}

export function collectInitializers(decl: AstNode, ff: FileFacts, inFunction?: string): InitializerFact[] {
  const out: InitializerFact[] = [];
  const typeNode = field(decl, 'type');
  const structType = typeNode ? structTag(typeNode, ff) : undefined;
  for (const d of decl.children) {
    if (d.type !== 'init_declarator') continue;
    const v = field(d, 'value');
    if (!v || v.type !== 'initializer_list') continue;
    const id = innermostAstIdentifier(field(d, 'declarator'));
    const fields: InitField[] = [];
    collectFields(v, '', fields, ff);
    out.push({ structType, name: id ? ff.t(id) : '', fields, node: d, inFunction });
  }
  return out;
}

function collectFields(list: AstNode, prefix: string, out: InitField[], ff: { t(n: AstNode): string }): void {
  for (const c of list.children) {
    if (c.type !== 'initializer_pair') continue;
    const designators = c.children.filter((x) => x.field === 'designator');
    const value = field(c, 'value');
    if (!value) continue;
    const names = designators
      .map((d) => (d.type === 'field_designator' || d.type === 'field_identifier' ? ff.t(d).replace(/^\./, '') : ''))
      .filter(Boolean);
    if (!names.length) continue;
    const path = prefix + names.join('.');
    if (value.type === 'initializer_list') collectFields(value, path + '.', out, ff);
    out.push({ path, value });
  }
}

function structTag(typeNode: AstNode, ff: { t(n: AstNode): string }): string | undefined {
  if (typeNode.type === 'struct_specifier' || typeNode.type === 'union_specifier') {
    const name = field(typeNode, 'name');
    return name ? ff.t(name) : undefined;
  }
  if (typeNode.type === 'type_identifier') return ff.t(typeNode);
  return undefined;
}

/** Flattens `(a, b, c)` comma expressions (iterator macro arguments). */
export function commaList(n: AstNode | undefined): AstNode[] {
  if (!n) return [];
  const u = n.type === 'parenthesized_expression' && n.children.length === 1 ? n.children[0] : n;
  if (u.type === 'comma_expression') {
    const out: AstNode[] = [];
    for (const c of u.children) out.push(...commaList(c));
    return out;
  }
  return [u];
}

/** The argument of `IS_ERR(x)`-style single-argument calls, if `n` is such a call of `names`. */
export function callOf(n: AstNode, names: ReadonlySet<string> | string, ff: { t(n: AstNode): string }): AstNode | undefined {
  const u = unwrap(n);
  if (u.type !== 'call_expression') return undefined;
  const f = field(u, 'function');
  if (!f) return undefined;
  const name = ff.t(f);
  if (typeof names === 'string' ? name !== names : !names.has(name)) return undefined;
  return u;
}

export function callArgs(call: AstNode): AstNode[] {
  return field(call, 'arguments')?.children ?? [];
}
