/**
 * Helpers the hmm family's rules share: object fields of a struct built in a
 * function (`struct migrate_vma`, `struct hmm_range`), same-file callers and
 * callees, reachability, owner symbols.
 */
import { reaches as reachesIn } from '../../core/flow';
import { type AstNode, field, unwrap, walk } from '../../core/ast';
import type { CfgNode } from '../../core/cfg';
import { type AssignFact, type CallFact, type FileFacts, type FunctionFacts, objectPath, rootOf } from '../../core/facts';
import { asCall, keyOf } from '../util';

/** Literal 0 / NULL / false. */
export function isNullish(n: AstNode | undefined, ff: FileFacts): boolean {
  if (!n) return false;
  const s = ff.t(unwrap(n)).replace(/\s+/g, '');
  return s === '0' || s === 'NULL' || s === 'false' || s === '0UL' || s === '0L' || s === '((void*)0)' || s === '(void*)0';
}

/** The object a pointer-ish argument designates: `&args` -> `args`, `args` -> `args`, `&svmm->mig` -> `svmm.mig`. */
export function objectOf(n: AstNode | undefined, ff: FileFacts): string | undefined {
  const k = keyOf(n, ff);
  return k ? k.replace(/^[&*]+/, '') : undefined;
}

/** Whether CFG node `to` is reachable from `from` (following successors). */
export function reaches(fn: FunctionFacts, from: number, to: number, stop?: (n: CfgNode) => boolean): boolean {
  return reachesIn(fn.cfg, from, to, stop);
}

/** Calls of functions named `callee` made from the other functions of this file. */
export function callersInFile(ff: FileFacts, callee: string): Array<{ fn: FunctionFacts; call: CallFact }> {
  const out: Array<{ fn: FunctionFacts; call: CallFact }> = [];
  const re = new RegExp(`\\b${callee}\\s*\\(`);
  for (const info of ff.functions.values()) {
    if (info.name === callee || !re.test(ff.t(info))) continue;
    const f = ff.fn(info.name);
    if (!f) continue;
    for (const c of f.calls) if (c.name === callee) out.push({ fn: f, call: c });
  }
  return out;
}

/** Whether the function's name is taken anywhere other than in direct calls (stored in an ops table, passed as a callback). */
export function addressTaken(ff: FileFacts, name: string): boolean {
  if (ff.roles.has(name)) return true;
  const re = new RegExp(`\\b${name}\\b(?!\\s*\\()`, 'g');
  const info = ff.functions.get(name);
  for (let m = re.exec(ff.text); m; m = re.exec(ff.text)) {
    if (info && m.index >= info.nameSpan.start && m.index < info.nameSpan.end) continue;
    // A prototype `static int f(...);` is followed by `(`; a plain mention is a use.
    return true;
  }
  return false;
}

/** Functions whose text matches a regular expression (cheap prefilter before building facts). */
export function functionsMentioning(ff: FileFacts, re: RegExp): FunctionFacts[] {
  const out: FunctionFacts[] = [];
  for (const info of ff.functions.values()) {
    if (!re.test(ff.t(info))) continue;
    const f = ff.fn(info.name);
    if (f) out.push(f);
  }
  return out;
}

/**
 * Writes to the fields of an object built in `fn`: its designated
 * initializer (`struct migrate_vma args = { .flags = ... }`), a compound
 * literal stored into it, and `obj.field = value` / `obj->field = value`.
 */
export interface ObjectFields {
  /** Field -> written values (in program order). */
  writes: Map<string, Array<{ value: AstNode; at: AstNode; cfgNode?: number }>>;
  /** The object is a local (struct, or pointer to memory allocated here). */
  local: boolean;
  /** The root is a parameter: a caller set it up. */
  param: boolean;
  /** The object is handed to another function (or its address stored) before `before`: fields we cannot see may be set. */
  escapedBefore: (cfgNode: number, except: ReadonlySet<string>, fields?: readonly string[]) => CallFact | AstNode | undefined;
}

/** Whether a same-file function writes `<param i>.<field>` (directly, or through one more same-file call). */
export function writesParamField(ff: FileFacts, name: string, i: number, fields: readonly string[], depth = 0): boolean {
  const g = ff.fn(name);
  const p = g?.info.params[i]?.name;
  if (!g || !p) return true;
  for (const a of g.assigns) {
    const l = objectPath(a.lhs);
    if (fields.some((f) => l === `${p}.${f}`)) return true;
  }
  if (depth > 1) return false;
  for (const c of g.calls) {
    const j = c.args.findIndex((x) => keyOf(x, ff)?.replace(/^[&*]+/, '') === p);
    if (j < 0) continue;
    if (!ff.functions.has(c.name)) continue;
    if (writesParamField(ff, c.name, j, fields, depth + 1)) return true;
  }
  return false;
}

const ALLOCATORS = /^(kzalloc|kmalloc|kvzalloc|kvmalloc|kcalloc|kvcalloc|kmem_cache_zalloc|kmem_cache_alloc|devm_kzalloc|kmalloc_array|kvmalloc_array)$/;

const fieldsCache = new WeakMap<FunctionFacts, Map<string, ObjectFields>>();

/** objectFields, once per function and object (rules ask for it at every call of interest). */
export function objectFields(fn: FunctionFacts, obj: string, ff: FileFacts): ObjectFields {
  let m = fieldsCache.get(fn);
  if (!m) fieldsCache.set(fn, (m = new Map()));
  let f = m.get(obj);
  if (!f) m.set(obj, (f = computeObjectFields(fn, obj, ff)));
  return f;
}

function computeObjectFields(fn: FunctionFacts, obj: string, ff: FileFacts): ObjectFields {
  const writes = new Map<string, Array<{ value: AstNode; at: AstNode; cfgNode?: number }>>();
  const add = (f: string, value: AstNode, at: AstNode, cfgNode?: number) => {
    const list = writes.get(f) ?? [];
    list.push({ value, at, cfgNode });
    writes.set(f, list);
  };
  for (const init of fn.initializers) {
    if (init.name !== obj) continue;
    for (const f of init.fields) add(f.path, f.value, f.value);
  }
  for (const a of fn.assigns) {
    const p = objectPath(a.lhs);
    if (p.startsWith(obj + '.')) add(p.slice(obj.length + 1), a.rhs, a.lhsNode.parent ?? a.lhsNode, a.cfgNode);
    else if (p === obj && unwrap(a.rhs).type === 'compound_literal_expression') {
      const lit = fn.initializers.find((i) => i.node === unwrap(a.rhs));
      for (const f of lit?.fields ?? []) add(f.path, f.value, f.value, a.cfgNode);
    }
  }
  const root = rootOf(obj);
  const param = fn.info.params.some((p) => p.name === root);
  const decl = localDecls(fn, ff).get(root);
  let local = false;
  if (!param && decl) {
    if (root === obj && !decl.pointer) local = true;
    else if (root === obj) {
      // A local pointer: local when this function allocates what it points to.
      local = fn.assigns.some((a) => a.lhs === obj && ALLOCATORS.test(asCall(a.rhs, fn)?.name ?? ''));
    } else if (!decl.pointer) local = true; // a struct member of a local struct
  }
  const isPointer = param ? /\*/.test(fn.info.params.find((p) => p.name === root)?.type ?? '') || root !== obj : !!decl?.pointer;
  // Where the object is handed over or its address stored, found once; each question then only checks order.
  // Grouped by callee: a question names callees to leave out (the fault calls themselves, say).
  let handing: Map<string, Array<{ c: CallFact; i: number }>> | undefined;
  let storing: Array<{ a: AssignFact }> | undefined;
  const escapedBefore = (cfgNode: number, except: ReadonlySet<string>, fields?: readonly string[]): CallFact | AstNode | undefined => {
    if (!handing) {
      handing = new Map();
      for (const c of fn.calls) {
        if (c.name === 'memset' || /^(pr_|dev_)(debug|dbg|info|err|warn|notice)|^(WARN|BUG)/.test(c.name)) continue;
        for (let i = 0; i < c.args.length; i++) {
          const u = unwrap(c.args[i]);
          // `&obj` handed over, or the pointer itself; a field read (`obj.start`) is not.
          const handed = (u.type === 'pointer_expression' && u.op === '&' && objectOf(u, ff) === obj) || (isPointer && root === obj && keyOf(u, ff) === obj);
          if (!handed) continue;
          const list = handing.get(c.name);
          if (list) list.push({ c, i });
          else handing.set(c.name, [{ c, i }]);
        }
      }
    }
    for (const [name, list] of handing) {
      if (except.has(name)) continue;
      for (const { c, i } of list) {
        if (c.cfgNode === cfgNode || !reaches(fn, c.cfgNode, cfgNode)) continue;
        // A helper of this file that is seen not to set the fields in question does not count.
        if (fields && ff.functions.has(c.name) && !writesParamField(ff, c.name, i, fields)) continue;
        return c;
      }
    }
    // Address stored somewhere: `x->range = &range;`, or the pointer copied: `x->range = range;`.
    storing ??= fn.assigns.flatMap((a) => {
      const r = unwrap(a.rhs);
      if (r.type === 'pointer_expression' && r.op === '&' && objectOf(r, ff) === obj) return [{ a }];
      if (isPointer && root === obj && keyOf(r, ff) === obj && objectPath(a.lhs) !== obj) return [{ a }];
      return [];
    });
    for (const { a } of storing) {
      if (a.cfgNode === cfgNode || !reaches(fn, a.cfgNode, cfgNode)) continue;
      return a.lhsNode;
    }
    return undefined;
  };
  return { writes, local, param, escapedBefore };
}

/**
 * The symbol an owner expression names, for comparing owners "by symbol":
 * `drm->dev` -> `dev`, `&kvmppc_uvmem_pgmap` -> `kvmppc_uvmem_pgmap`,
 * `SVM_ADEV_PGMAP_OWNER(adev)` -> `SVM_ADEV_PGMAP_OWNER()`. Bare parameters
 * and locals say nothing (their value comes from elsewhere): undefined.
 */
export function ownerSymbol(n: AstNode, fn: FunctionFacts | undefined, ff: FileFacts): string | undefined {
  let u = unwrap(n);
  if (u.type === 'pointer_expression' && u.op === '&') u = unwrap(u.children[0] ?? u);
  if (u.type === 'call_expression') {
    const f = field(u, 'function');
    return f ? ff.t(f) + '()' : undefined;
  }
  if (u.type === 'field_expression') {
    const f = field(u, 'field');
    return f ? ff.t(f) : undefined;
  }
  if (u.type === 'identifier') {
    const name = ff.t(u);
    if (fn && (fn.locals.has(name) || fn.info.params.some((p) => p.name === name))) return undefined;
    return name;
  }
  return undefined;
}


/**
 * The constant a same-file function always returns (`return 0;` on every
 * path, with no fall-through in a non-void function), or undefined.
 */
export function constantReturn(ff: FileFacts, name: string): string | undefined {
  const fn = ff.fn(name);
  if (!fn) return undefined;
  let value: string | undefined;
  for (const pid of fn.cfg.nodes[fn.cfg.exit].pred) {
    const n = fn.cfg.nodes[pid];
    if (n.kind !== 'return') return undefined;
    const v = n.ast?.children[0];
    if (!v) return undefined;
    const t = ff.t(v).replace(/\s+/g, '');
    if (!/^-?\d+$|^NULL$|^false$|^true$/.test(t)) return undefined;
    if (value !== undefined && value !== t) return undefined;
    value = t;
  }
  return value;
}

export interface LocalDecl {
  type: string;
  pointer: boolean;
  array: boolean;
}

const declCache = new WeakMap<FunctionFacts, Map<string, LocalDecl>>();

/**
 * Local declarations with their shape read from the declarator (FunctionFacts.locals
 * guesses pointer-ness from the text, which an initializer like `{ .end = a * b }` fools).
 */
export function localDecls(fn: FunctionFacts, ff: FileFacts): Map<string, LocalDecl> {
  let m = declCache.get(fn);
  if (m) return m;
  m = new Map();
  const out = m;
  walk(fn.body, (n) => {
    if (n.type !== 'declaration') return true;
    const ty = field(n, 'type');
    const typeText = ty ? ff.t(ty) : '';
    for (const d of n.children) {
      if (d.field !== 'declarator') continue;
      let cur: AstNode | undefined = d.type === 'init_declarator' ? field(d, 'declarator') : d;
      let pointer = false;
      let array = false;
      for (let i = 0; cur && i < 8; i++) {
        if (cur.type === 'identifier') {
          out.set(ff.t(cur), { type: typeText, pointer, array });
          break;
        }
        if (cur.type === 'pointer_declarator') pointer = true;
        if (cur.type === 'array_declarator') array = true;
        cur = cur.type === 'parenthesized_declarator' ? cur.children[0] : field(cur, 'declarator');
      }
    }
    return false;
  });
  declCache.set(fn, out);
  return out;
}
