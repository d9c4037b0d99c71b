/**
 * Helpers shared by the pgmap family's further rules (more.ts): where a
 * `struct page *` value comes from (device-private taint, pages of a foreign
 * owner), the dev_pagemap_ops callbacks of a file and the pgmap types they
 * serve, path compatibility of two CFG nodes, the storage class of a local,
 * and whether the target kernel version was given or defaulted.
 */
import { type AstNode, field, unwrap, walk } from '../../core/ast';
import type { Cfg } from '../../core/cfg';
import { truths } from '../../core/conditions';
import { type FileFacts, type FunctionFacts, type InitializerFact, objectPath } from '../../core/facts';
import { reaches, solve } from '../../core/flow';
import { NEWEST, type RuleContext } from '../api';
import { asCall, keyOf } from '../util';
import { opsTable, type PgmapObject, pgmapObjects } from './objects';

export const objectsOf = (ctx: RuleContext): PgmapObject[] => ctx.shared('pgmap.objects', () => pgmapObjects(ctx.ff));

/**
 * Whether the user named the target kernel. The runner hands rules the
 * NEWEST object itself when no version was given, so identity tells the two
 * apart. Rules use this to stay quiet about "too new for your tree" and
 * "removed after the trees we model" drift unless the tree is known.
 */
export function versionGiven(ctx: RuleContext): boolean {
  return ctx.version !== NEWEST;
}

/** Every MEMORY_DEVICE_* an object is set to, in any write (`x->type = cond ? A : B` gives both). */
export function allTypes(o: PgmapObject, ff: FileFacts): string[] {
  const out = new Set<string>();
  for (const w of o.writes) if (w.path === 'type') for (const m of ff.t(w.value).matchAll(/\bMEMORY_DEVICE_\w+/g)) out.add(m[0]);
  return [...out];
}

/** The function names bound to a field of a dev_pagemap_ops table of this file, with the table. */
export function pagemapCallbacks(ff: FileFacts, fieldName: string): Array<{ fn: string; table: InitializerFact; field: string }> {
  const out: Array<{ fn: string; table: InitializerFact; field: string }> = [];
  for (const [fn, roles] of ff.roles)
    for (const r of roles) if (r.field === fieldName && (!r.structType || r.structType === 'dev_pagemap_ops')) out.push({ fn, table: r.table, field: r.field });
  return out;
}

/**
 * Types of the pgmaps of this file that use an ops table (by the name of
 * its initializer). Empty when no object of the file names the table.
 */
export function typesUsingOps(ctx: RuleContext, table: InitializerFact): Set<string> {
  const out = new Set<string>();
  for (const o of objectsOf(ctx)) {
    const ops = opsTable(o, ctx.ff);
    if (ops && ops.name === table.name) for (const t of allTypes(o, ctx.ff)) out.add(t);
  }
  return out;
}

/** Whether node `a` can reach node `b` or `b` can reach `a` (both lie on one path). */
export function onOnePath(cfg: Cfg, a: number, b: number): boolean {
  if (a === b) return true;
  return reaches(cfg, a, b) || reaches(cfg, b, a);
}

/** The declaration statement of a local variable of `fn`, if any. */
export function localDeclaration(fn: FunctionFacts, name: string, ff: FileFacts): AstNode | undefined {
  for (const n of fn.cfg.nodes) {
    if (!n.ast || n.ast.type !== 'declaration') continue;
    for (const d of n.ast.children) {
      if (d.field !== 'declarator') continue;
      let id: AstNode | undefined = d;
      for (let i = 0; id && i < 8 && id.type !== 'identifier'; i++) id = id.type === 'parenthesized_declarator' ? id.children[0] : field(id, 'declarator');
      if (id && ff.t(id) === name) return n.ast;
    }
  }
  return undefined;
}

/** A local with automatic storage whose type is a struct object (not a pointer, not static). */
export function automaticStruct(fn: FunctionFacts, name: string, ff: FileFacts): AstNode | undefined {
  const decl = localDeclaration(fn, name, ff);
  if (!decl) return undefined;
  const text = ff.t(decl);
  if (/\bstatic\b/.test(text.split('=')[0])) return undefined;
  for (const d of decl.children) {
    if (d.field !== 'declarator') continue;
    const core = d.type === 'init_declarator' ? field(d, 'declarator') : d;
    if (!core) continue;
    if (core.type === 'pointer_declarator' || core.type === 'array_declarator' || core.type === 'function_declarator') continue;
    let id: AstNode | undefined = core;
    for (let i = 0; id && i < 8 && id.type !== 'identifier'; i++) id = field(id, 'declarator');
    if (id && ff.t(id) === name) {
      const type = field(decl, 'type');
      return type && type.type === 'struct_specifier' ? decl : undefined;
    }
  }
  return undefined;
}

// ---------------------------------------------------------------------------
// Taint of `struct page *` values through a function.

export type TaintMap = ReadonlyMap<string, string>;

export interface TaintSpec {
  /** Why the value assigned from `rhs` is tainted, or undefined. */
  source(rhs: AstNode): string | undefined;
  /** Keys tainted on entry (callback parameters). */
  entry?: Map<string, string>;
  /** Refinement along a branch edge: add/remove keys. */
  refine?(call: { name: string; arg: AstNode; key: string }, truthy: boolean, s: Map<string, string>): void;
  /** Extra refinement on a raw condition (owner comparisons). */
  refineCond?(cond: AstNode, edgeTrue: boolean, s: Map<string, string>): void;
}

/** Forward taint with must-semantics (a key stays tainted only if every path taints it). */
export function solveTaint(fn: FunctionFacts, ff: FileFacts, spec: TaintSpec): Array<TaintMap | undefined> {
  const sol = solve<TaintMap>(fn.cfg, {
    entry: spec.entry ?? new Map(),
    join: (a, b) => {
      const m = new Map<string, string>();
      for (const [k, v] of a) if (b.has(k)) m.set(k, v);
      return m;
    },
    equals: (a, b) => a.size === b.size && [...a.keys()].every((k) => b.has(k)),
    transfer: (node, s) => {
      let m: Map<string, string> | undefined;
      for (const a of fn.assignsAt.get(node.id) ?? []) {
        const l = objectPath(a.lhs);
        const why = a.op === '=' ? spec.source(a.rhs) ?? copyOf(a.rhs, m ?? s, ff) : undefined;
        if (why) (m ??= new Map(s)).set(l, why);
        else if ((m ?? s).has(l)) (m ??= new Map(s)).delete(l);
      }
      return m ?? s;
    },
    branch: (node, s, idx) => {
      if (node.kind !== 'cond' || !node.ast) return s;
      const m = new Map(s);
      for (const tr of truths(node.ast, idx === 0, (x) => ff.t(x))) {
        const c = asCall(tr.node, fn);
        if (c && c.args[0] && spec.refine) {
          const k = keyOf(c.args[0], ff);
          if (k) spec.refine({ name: c.name, arg: c.args[0], key: objectPath(k) }, tr.truthy, m);
        }
        // `if (!page)`: the page is NULL on that edge, nothing to taint.
        const k = keyOf(tr.node, ff);
        if (k && !tr.truthy) m.delete(objectPath(k));
      }
      spec.refineCond?.(node.ast, idx === 0, m);
      return m.size === s.size && [...m.keys()].every((k) => s.has(k)) ? s : m;
    },
  });
  return sol.before;
}

/** A plain copy `q = p` (through casts) of a tainted key keeps the reason. */
function copyOf(rhs: AstNode, s: TaintMap, ff: FileFacts): string | undefined {
  const k = keyOf(unwrap(rhs), ff);
  return k ? s.get(objectPath(k)) : undefined;
}

/** Whether the expression reads `key` (as a whole value, not a member of it). */
export function readsKey(n: AstNode, key: string, ff: FileFacts): boolean {
  let hit = false;
  walk(n, (x) => {
    if (hit) return false;
    if (x.type === 'identifier' || x.type === 'field_expression') {
      const k = keyOf(x, ff);
      if (k && objectPath(k) === key) hit = true;
      return x.type !== 'identifier';
    }
    return true;
  });
  return hit;
}

// ---------------------------------------------------------------------------
// Device-private page sources (as PGMAP-PRIVATE-DMA-MAP sees them, plus the
// page_free callback of a device-private pgmap).

/** migrate_vma objects of a function and the text of their `flags`. */
export function migrateFlags(fn: FunctionFacts, ff: FileFacts): Map<string, string> {
  const out = new Map<string, string>();
  for (const init of fn.initializers) {
    if (init.structType !== 'migrate_vma') continue;
    const f = init.fields.find((x) => x.path === 'flags');
    out.set(init.name, f ? ff.t(f.value) : '');
  }
  for (const a of fn.assigns) {
    const p = objectPath(a.lhs);
    if (p.endsWith('.flags') && /MIGRATE_VMA_SELECT/.test(ff.t(a.rhs))) out.set(p.slice(0, -'.flags'.length), ff.t(a.rhs));
  }
  return out;
}

/** Arrays of migrate pfns whose entries are device-private pages in this function. */
export function privateMigrateArrays(fn: FunctionFacts, ff: FileFacts, isFaultHandler: boolean): Set<string> {
  const out = new Set<string>();
  const flags = migrateFlags(fn, ff);
  const srcOf = (obj: string): string | undefined => {
    const init = fn.initializers.find((i) => i.name === obj);
    const f = init?.fields.find((x) => x.path === 'src');
    const a = fn.assigns.find((x) => objectPath(x.lhs) === obj + '.src');
    const v = f?.value ?? a?.rhs;
    const k = v && keyOf(v, ff);
    return k ? objectPath(k) : undefined;
  };
  for (const [obj, fl] of flags) {
    const selectsPrivate = /DEVICE_PRIVATE/.test(fl) || (isFaultHandler && !fl);
    if (!selectsPrivate) continue;
    out.add(obj + '.src');
    const s = srcOf(obj);
    if (s) out.add(s);
  }
  for (const c of fn.calls)
    if (c.name === 'migrate_device_range' && c.args[0]) {
      const k = keyOf(c.args[0], ff);
      if (k) out.add(objectPath(k));
    }
  return out;
}

/** The array an element expression indexes (`src[i]`, `*src`, `args->src[i]`). */
export function arrayOf(n: AstNode, ff: FileFacts): string | undefined {
  let u = unwrap(n);
  if (u.type === 'subscript_expression') u = unwrap(field(u, 'argument') ?? u);
  else if (u.type === 'pointer_expression' && u.op === '*') u = unwrap(u.children[0] ?? u);
  const k = keyOf(u, ff);
  return k ? objectPath(k) : undefined;
}

export interface PrivateSources {
  spec: TaintSpec;
  /** Whether any source can fire in this function. */
  any: boolean;
}

/**
 * Device-private page values of a function:
 * - `vmf->page` in a `.migrate_to_ram` callback;
 * - `migrate_pfn_to_page()` of the source array of a migration out of device-private memory;
 * - `pfn_to_page()`/`phys_to_page()` of a device-private pgmap's range;
 * - the page (folio) parameter of the `.page_free` (`.folio_free`) callback of an ops table
 *   that only device-private pgmaps of this file use;
 * - `hmm_pfn_to_page()` when the file sets `dev_private_owner` (marked "may");
 * - any page inside `if (is_device_private_page(p))`.
 */
export function privateSources(ctx: RuleContext, fn: FunctionFacts): PrivateSources {
  const { ff } = ctx;
  const roles = ff.rolesOf(fn.info.name);
  const isFaultHandler = roles.some((r) => r.field === 'migrate_to_ram');
  const arrays = privateMigrateArrays(fn, ff, isFaultHandler);
  const privateMaps = new Set(objectsOf(ctx).filter((o) => o.type === 'MEMORY_DEVICE_PRIVATE' && allTypes(o, ff).length === 1).map((o) => o.path.split('.').pop()!));
  const ownerInFile = /(\.|->)dev_private_owner\s*=(?!\s*NULL\b)/.test(ff.text);
  const entry = new Map<string, string>();
  for (const r of roles) {
    if ((r.field !== 'page_free' && r.field !== 'folio_free') || (r.structType && r.structType !== 'dev_pagemap_ops')) continue;
    const types = typesUsingOps(ctx, r.table);
    if (types.size !== 1 || !types.has('MEMORY_DEVICE_PRIVATE')) continue;
    const p = fn.info.params[0];
    if (p && /\b(page|folio)\b/.test(p.type)) entry.set(p.name, `${p.name}, the ${r.field === 'folio_free' ? 'folio' : 'page'} ${fn.info.name}() (the .${r.field} callback of a device-private pgmap) is handed`);
  }
  const source = (rhs: AstNode): string | undefined => {
    const u = unwrap(rhs);
    if (isFaultHandler && /^vmf->page$/.test(ff.t(u).replace(/\s+/g, ''))) return 'vmf->page, the device-private page the CPU faulted on';
    const c = asCall(u, fn);
    if (!c || !c.args[0]) return undefined;
    if (c.name === 'migrate_pfn_to_page') {
      const arr = arrayOf(c.args[0], ff);
      return arr && arrays.has(arr) ? `${ff.t(c.args[0])}, a device-private page being migrated out of device memory` : undefined;
    }
    if (c.name === 'pfn_to_page' || c.name === 'phys_to_page') {
      const text = ff.t(c.args[0]).replace(/\s+/g, '');
      for (const m of privateMaps) if (new RegExp(`(^|\\.|->)${m}(\\.|->)range`).test(text)) return `a page of the device-private pgmap ${m} (computed from its range)`;
      return undefined;
    }
    if (c.name === 'hmm_pfn_to_page' && ownerInFile) return `${ff.t(c.args[0])}, which hmm_range_fault() may report as a device-private page of this owner (the range sets dev_private_owner)`;
    return undefined;
  };
  const spec: TaintSpec = {
    source,
    entry,
    refine: (call, truthy, s) => {
      if ((call.name === 'is_device_private_page' || call.name === 'folio_is_device_private') && truthy) s.set(call.key, `${ff.t(call.arg)}, which ${call.name}() just confirmed`);
      if (/^(is_zone_device_page|is_device_private_page|folio_is_zone_device|folio_is_device_private)$/.test(call.name) && !truthy) s.delete(call.key);
    },
  };
  const any =
    entry.size > 0 ||
    isFaultHandler ||
    arrays.size > 0 ||
    (privateMaps.size > 0 && fn.calls.some((c) => c.name === 'pfn_to_page' || c.name === 'phys_to_page')) ||
    (ownerInFile && fn.calls.some((c) => c.name === 'hmm_pfn_to_page')) ||
    fn.calls.some((c) => c.name === 'is_device_private_page' || c.name === 'folio_is_device_private');
  return { spec, any };
}
