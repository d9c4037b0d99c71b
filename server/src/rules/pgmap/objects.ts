/**
 * dev_pagemap objects of a file: which object each field write belongs to,
 * through designated initializers, `pgmap->field = ...` assignments and
 * simple aliases (`pgmap = &chunk->pagemap;`), and where each is submitted
 * with memremap_pages()/devm_memremap_pages().
 */
import { type AstNode, unwrap } from '../../core/ast';
import { type CallFact, type FileFacts, type FunctionFacts, type InitializerFact, objectPath, rootOf } from '../../core/facts';
import { keyOf } from '../util';

export interface FieldWrite {
  /** Field path relative to the object: `type`, `range.start`, `ops`. */
  path: string;
  value: AstNode;
  at: AstNode;
}

export interface PgmapObject {
  /** Object path (`pgmap`, `chunk.pagemap`, `dmem->pagemap`→`dmem.pagemap`). */
  path: string;
  fn?: FunctionFacts;
  writes: FieldWrite[];
  initializer?: InitializerFact;
  submits: CallFact[];
  /** MEMORY_DEVICE_* as written, if set. */
  type?: string;
  typeAt?: AstNode;
}

export const SUBMIT_ARG: Record<string, number> = { memremap_pages: 0, devm_memremap_pages: 1 };

/** Aliases `p = &x.y` in a function: p -> x.y. */
function aliases(fn: FunctionFacts, ff: FileFacts): Map<string, string> {
  const out = new Map<string, string>();
  for (const a of fn.assigns) {
    if (a.op !== '=' || a.lhs.includes('.') || a.lhs.includes('->')) continue;
    const r = unwrap(a.rhs);
    if (r.type === 'pointer_expression' && r.op === '&') {
      const k = keyOf(r.children[0], ff);
      if (k && k !== a.lhs) out.set(a.lhs, k);
    }
  }
  return out;
}

function resolve(path: string, al: Map<string, string>): string {
  const root = rootOf(path);
  const target = al.get(root);
  return target ? target + path.slice(root.length) : path;
}

/** pgmap objects set up or submitted in each analysed function, and file-level initializers. */
export function pgmapObjects(ff: FileFacts): PgmapObject[] {
  const out: PgmapObject[] = [];
  for (const info of ff.analysedFunctions()) {
    const fn = ff.fn(info.name);
    if (!fn) continue;
    const al = aliases(fn, ff);
    const objs = new Map<string, PgmapObject>();
    const get = (p: string) => {
      let o = objs.get(p);
      if (!o) {
        o = { path: p, fn, writes: [], submits: [] };
        objs.set(p, o);
      }
      return o;
    };
    // Objects: anything whose `.type` is set to MEMORY_DEVICE_*, or that is submitted.
    for (const a of fn.assigns) {
      const p = resolve(objectPath(a.lhs), al);
      if (p.endsWith('.type') && /\bMEMORY_DEVICE_\w+/.test(ff.t(a.rhs))) get(p.slice(0, -'.type'.length));
    }
    for (const c of fn.calls) {
      const idx = SUBMIT_ARG[c.name];
      if (idx === undefined || !c.args[idx]) continue;
      const k = keyOf(c.args[idx], ff);
      if (k) get(resolve(k, al)).submits.push(c);
    }
    for (const init of fn.initializers) {
      if (!init.name) continue; // compound literals are merged through the assignment that stores them
      if (init.structType !== 'dev_pagemap' && !init.fields.some((f) => f.path === 'type' && /MEMORY_DEVICE_/.test(ff.t(f.value)))) continue;
      const o = get(init.name);
      o.initializer = init;
    }
    if (!objs.size) continue;
    for (const a of fn.assigns) {
      const p = resolve(objectPath(a.lhs), al);
      for (const o of objs.values()) {
        if (p.startsWith(o.path + '.')) o.writes.push({ path: p.slice(o.path.length + 1), value: a.rhs, at: a.lhsNode.parent ?? a.lhsNode });
        else if (p === o.path && unwrap(a.rhs).type === 'compound_literal_expression') {
          // `x->pgmap = (struct dev_pagemap) { .type = ..., ... };`
          const lit = fn.initializers.find((i) => i.node === unwrap(a.rhs));
          for (const f of lit?.fields ?? []) o.writes.push({ path: f.path, value: f.value, at: f.value });
          if (!lit?.fields.length) o.writes.push({ path: '*', value: a.rhs, at: a.lhsNode });
        } else if (p === o.path && unwrap(a.rhs).type !== 'call_expression' && unwrap(a.rhs).type !== 'pointer_expression') {
          // Whole-struct assignment from another object: we cannot see its fields.
          o.writes.push({ path: '*', value: a.rhs, at: a.lhsNode });
        }
      }
    }
    for (const o of objs.values()) {
      // A file-level object of the same name contributes its designated initializer.
      if (!o.initializer && !fn.locals.has(o.path)) o.initializer = ff.initializers.find((i) => i.name === o.path);
      if (o.initializer) for (const f of o.initializer.fields) o.writes.push({ path: f.path, value: f.value, at: f.value });
      const t = o.writes.find((w) => w.path === 'type');
      if (t) {
        const m = /\bMEMORY_DEVICE_\w+/.exec(ff.t(t.value));
        if (m) {
          o.type = m[0];
          o.typeAt = t.at;
        }
      }
      out.push(o);
    }
  }
  // File-level `static struct dev_pagemap x = { ... }`.
  for (const init of ff.initializers) {
    if (init.structType !== 'dev_pagemap') continue;
    const o: PgmapObject = { path: init.name, writes: init.fields.map((f) => ({ path: f.path, value: f.value, at: f.value })), initializer: init, submits: [] };
    const t = o.writes.find((w) => w.path === 'type');
    const m = t && /\bMEMORY_DEVICE_\w+/.exec(ff.t(t.value));
    if (m) {
      o.type = m[0];
      o.typeAt = t!.at;
    }
    out.push(o);
  }
  return out;
}

/** The ops table an object's `ops` field points at, when it is defined in this file. */
export function opsTable(o: PgmapObject, ff: FileFacts): InitializerFact | undefined {
  const w = o.writes.find((x) => x.path === 'ops');
  if (!w) return undefined;
  const k = keyOf(w.value, ff);
  if (!k) return undefined;
  const name = k.replace(/^&/, '');
  return ff.allInitializers().find((i) => i.name === name);
}
