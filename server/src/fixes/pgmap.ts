/**
 * Fixes for MIG-FAULT-PAGE and PGMAP-INIT-FIELDS: the missing fields of a
 * migrate_vma or a dev_pagemap, written where the code sets up the others
 * (a designated initializer gets a field, the assignment form gets an
 * assignment next to the other field writes), and the op stubs a
 * device-private or coherent pgmap needs.
 */
import { type AstNode, field, unwrap } from '../core/ast';
import { objectPath } from '../core/facts';
import type { FunctionFacts } from '../core/facts';
import { opsTable, type PgmapObject, pgmapObjects } from '../rules/pgmap/objects';
import { keyOf } from '../rules/util';
import type { Fixer } from './engine';
import { addInitializerFields, nodeOfType, setInitializerField, stubAbove } from './shared';
import { freshName, oneLine, type Src, statementOf, surround } from './text';
import type { Fix, FixEdit } from './types';

// ------------------------------------------------------------ MIG-FAULT-PAGE

/** `x.` or `x->` as an existing write to the object spells it (`mig.start = ...` -> `mig.`). */
function baseOf(lhs: AstNode, depth: number, src: Src): string | undefined {
  let node = unwrap(lhs);
  let op: string | undefined;
  for (let i = 0; i < depth; i++) {
    if (node.type !== 'field_expression') return undefined;
    op = node.op === '.' ? '.' : '->';
    node = unwrap(field(node, 'argument') ?? node);
  }
  return op ? oneLine(src.t(node)) + op : undefined;
}

const migFaultPage: Fixer = (ctx) => {
  const { src, ff } = ctx;
  const fn = ctx.fnAt(ctx.finding.span.start);
  if (!fn) return [];
  const call = nodeOfType(ctx.nodesAt(fn, ctx.finding.span), 'call_expression');
  const fact = call && fn.calls.find((c) => c.node === call);
  if (!call || !fact || !fact.args[0]) return [];
  // The page that faulted: only a function that has the vm_fault can name it.
  const vmf = fn.info.params.find((p) => /\bvm_fault\b/.test(p.type))?.name;
  if (!vmf) return [];
  const value = `${vmf}->page`;
  const k = keyOf(fact.args[0], ff);
  if (!k) return [];
  const obj = k.replace(/^&/, '');
  const title = `Set ${obj}.fault_page = ${value}`;
  const init = fn.initializers.find((i) => i.name === obj);
  if (init) {
    const existing = init.fields.find((f) => f.path === 'fault_page');
    if (existing) return [ctx.fix(title, setInitializerField(existing.value, value), true)];
    const list = field(init.node, 'value');
    if (list && list.children.some((c) => c.type === 'initializer_pair'))
      return [ctx.fix(title, addInitializerFields(src, list, [['fault_page', value]]), true)];
  }
  const writes = fn.assigns.filter((a) => objectPath(a.lhs).startsWith(obj + '.') && a.lhsNode.end <= call.start);
  const existing = writes.find((a) => objectPath(a.lhs) === obj + '.fault_page');
  if (existing) return [ctx.fix(title, [{ start: existing.rhs.start, end: existing.rhs.end, newText: value }], true)];
  const argText = oneLine(src.t(unwrap(fact.args[0])));
  let base = argText.startsWith('&') ? argText.slice(1).trim() + '.' : argText + '->';
  const w = writes[writes.length - 1];
  if (w) base = baseOf(w.lhsNode, objectPath(w.lhs).split('.').length - obj.split('.').length, src) ?? base;
  const stmt = statementOf(call);
  if (!stmt) return [];
  const line = `${base}fault_page = ${value};`;
  // Next to the other field writes when they are in the same block, else right before the setup.
  const wStmt = w && statementOf(w.lhsNode);
  if (wStmt && wStmt.type === 'expression_statement' && wStmt.parent === stmt.parent) return [ctx.fix(title, surround(src, wStmt, [], [line]), true)];
  return [ctx.fix(title, surround(src, stmt, [line], []), true)];
};

// --------------------------------------------------------- PGMAP-INIT-FIELDS

const NOT_OWNERS = new Set(['dev_pagemap', 'device', 'resource', 'pci_dev', 'platform_device', 'page', 'dev_pagemap_ops', 'vm_area_struct']);

/** The object a missing owner most likely is: the driver structure the setup function works on. */
function ownerGuess(fn: FunctionFacts): { text: string; tag: string } | undefined {
  for (const p of fn.info.params) {
    const m = /^struct\s+([A-Za-z_]\w*)\s*\*$/.exec(p.type.trim());
    if (m && !NOT_OWNERS.has(m[1])) return { text: p.name, tag: m[1] };
  }
  return undefined;
}

function pageFreeStub(name: string): string[] {
  return [`static void ${name}(struct page *page)`, '{', '\t/* Give the page back to the driver\'s allocator of device memory. */', '}'];
}

function migrateToRamStub(name: string): string[] {
  return [
    `static vm_fault_t ${name}(struct vm_fault *vmf)`,
    '{',
    '\t/*',
    '\t * Migrate vmf->page back to system memory: migrate_vma_setup() with',
    '\t * .fault_page = vmf->page, copy, migrate_vma_pages() and',
    '\t * migrate_vma_finalize().',
    '\t */',
    '\treturn VM_FAULT_SIGBUS;',
    '}',
  ];
}

interface Part {
  what: string;
  /** Fields to add to the object: [name, value]. */
  fields: Array<[string, string]>;
  /** Lines to put above the submitting function (new stubs and tables). */
  aboveFn: string[];
  /** Per ops table (its declaration): stub lines above it and fields to add. */
  table?: { decl: AstNode; list: AstNode; lines: string[]; fields: Array<[string, string]> };
}

/** Where the object's fields are written: a designated initializer list, or assignment statements (the last one before the submit). */
function layout(o: PgmapObject, submit: AstNode, src: Src): { list?: AstNode; after?: AstNode; base?: string } | undefined {
  if (o.initializer) {
    const list = field(o.initializer.node, 'value');
    return list && list.type === 'initializer_list' ? { list } : undefined;
  }
  // A compound literal stored into the object: its top-level list.
  const top = o.writes.find((w) => !w.path.includes('.') && w.at === w.value && w.value.parent?.type === 'initializer_pair');
  if (top) return { list: top.value.parent!.parent };
  const stmts = o.writes
    .filter((w) => w.at.type === 'assignment_expression' && w.at.end <= submit.start)
    .map((w) => ({ w, s: statementOf(w.at) }))
    .filter((x) => x.s && x.s.type === 'expression_statement');
  const last = stmts[stmts.length - 1];
  if (!last) return undefined;
  const base = baseOf(field(last.w.at, 'left')!, last.w.path.split('.').length, src);
  return base ? { after: last.s!, base } : undefined;
}

const pgmapInitFields: Fixer = (ctx) => {
  const { src, ff } = ctx;
  const fn = ctx.fnAt(ctx.finding.span.start);
  if (!fn) return [];
  const call = nodeOfType(ctx.nodesAt(fn, ctx.finding.span), 'call_expression');
  if (!call) return [];
  const o = ctx.shared('pgmap.objects', () => pgmapObjects(ff)).find((x) => x.submits.some((s) => s.node === call));
  if (!o) return [];
  const at = layout(o, call, src);
  if (!at) return [];
  const has = (p: string) => o.writes.some((w) => w.path === p || w.path.startsWith(p + '.'));
  const parts: Part[] = [];
  let uncovered = false;
  if (!o.type && !has('type')) uncovered = true;
  if (!has('range') && !has('ranges')) uncovered = true;
  const nrRange: Part | undefined = !has('nr_range') ? { what: 'nr_range', fields: [['nr_range', '1']], aboveFn: [] } : undefined;
  if (nrRange && has('ranges')) uncovered = true;
  else if (nrRange) parts.push(nrRange);
  const needsOwner = o.type === 'MEMORY_DEVICE_PRIVATE' || o.type === 'MEMORY_DEVICE_COHERENT';
  const owner = ownerGuess(fn);
  const prefix = owner?.tag ?? fn.info.name.split('_').slice(0, 2).join('_');
  if (needsOwner) {
    if (!has('owner')) {
      if (owner) parts.push({ what: `owner (${owner.text})`, fields: [['owner', owner.text]], aboveFn: [] });
      else uncovered = true;
    }
    const privateType = o.type === 'MEMORY_DEVICE_PRIVATE';
    if (!has('ops')) {
      const free = freshName(src.text, `${prefix}_page_free`);
      const mig = privateType ? freshName(src.text, `${prefix}_migrate_to_ram`) : undefined;
      const table = freshName(src.text, `${prefix}_pagemap_ops`);
      parts.push({
        what: `ops (${table} with ${mig ? 'page_free and migrate_to_ram stubs' : 'a page_free stub'})`,
        fields: [['ops', `&${table}`]],
        aboveFn: [
          ...pageFreeStub(free),
          '',
          ...(mig ? [...migrateToRamStub(mig), ''] : []),
          `static const struct dev_pagemap_ops ${table} = {`,
          `\t.page_free = ${free},`,
          ...(mig ? [`\t.migrate_to_ram = ${mig},`] : []),
          '};',
        ],
      });
    } else {
      const ops = opsTable(o, ff);
      if (ops && !ops.inFunction) {
        const names = new Set(ops.fields.map((f) => f.path));
        const lack: string[] = [];
        if (privateType && !names.has('migrate_to_ram')) lack.push('migrate_to_ram');
        if (!names.has('page_free') && !names.has('folio_free')) lack.push('page_free');
        const decl = ops.node.parent;
        const list = field(ops.node, 'value');
        if (lack.length && decl && decl.type === 'declaration' && list && list.type === 'initializer_list') {
          const tprefix = ops.name.replace(/_(pagemap_ops|pgmap_ops|dev_pagemap_ops|ops)$/, '');
          const lines: string[] = [];
          const fields: Array<[string, string]> = [];
          for (const l of lack) {
            const name = freshName(src.text, `${tprefix}_${l}`);
            if (lines.length) lines.push('');
            lines.push(...(l === 'page_free' ? pageFreeStub(name) : migrateToRamStub(name)));
            fields.push([l, name]);
          }
          parts.push({ what: `${lack.join(' and ')} stub${lack.length > 1 ? 's' : ''} in ${ops.name}`, fields: [], aboveFn: [], table: { decl, list, lines, fields } });
        } else if (lack.length) uncovered = true;
      }
    }
  }
  const build = (use: Part[]): FixEdit[] | undefined => {
    const fields = use.flatMap((p) => p.fields);
    const edits: FixEdit[] = [];
    if (fields.length) {
      let e: FixEdit[] | undefined;
      if (at.list) e = addInitializerFields(src, at.list, fields);
      else if (at.after && at.base) e = surround(src, at.after, [], fields.map(([n, v]) => `${at.base}${n} = ${v};`));
      if (!e) return undefined;
      edits.push(...e);
    }
    const above = use.flatMap((p) => p.aboveFn);
    if (above.length) {
      const e = stubAbove(src, fn.ast, above);
      if (!e) return undefined;
      edits.push(e);
    }
    for (const p of use) {
      if (!p.table) continue;
      const e1 = stubAbove(src, p.table.decl, p.table.lines);
      const e2 = addInitializerFields(src, p.table.list, p.table.fields);
      if (!e1 || !e2) return undefined;
      edits.push(e1, ...e2);
    }
    return edits;
  };
  const out: Array<Fix | undefined> = [];
  if (nrRange && parts.includes(nrRange)) out.push(ctx.fix(`Set nr_range = 1 (the pgmap describes one range)`, build([nrRange]), true));
  if (!uncovered && parts.length && !(parts.length === 1 && parts[0] === nrRange))
    out.push(ctx.fix(`Add the missing ${parts.map((p) => p.what).join(', ')}`, build(parts), false));
  return out;
};

export const pgmapFixers: Record<string, Fixer> = {
  'MIG-FAULT-PAGE': migFaultPage,
  'PGMAP-INIT-FIELDS': pgmapInitFields,
};

