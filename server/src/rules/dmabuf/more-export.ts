/**
 * DMABUF-EXPORT-OPS: the exporter's dma_buf_ops and dma_buf_export_info as
 * dma_buf_export() checks them (drivers/dma-buf/dma-buf.c, 6.1 and 6.12),
 * and a map_dma_buf that maps the table for a device other than the
 * importer's (`attach->dev`), or hands every importer the same table.
 */
import { type AstNode, field, unwrap } from '../../core/ast';
import { type FileFacts, type FunctionFacts, type InitializerFact, objectPath, rootOf } from '../../core/facts';
import type { CodeEvent } from '../../core/types';
import { type Rule, type RuleContext, rel } from '../api';
import { callEvent, isFalseLiteral, isTrueLiteral } from '../util';
import { analysed, derived, originsOf, pathOf, withRole } from './more-util';

/** DMA API calls that produce device addresses for their first argument. */
export const DMA_MAPPERS = new Set([
  'dma_map_sgtable',
  'dma_map_sg',
  'dma_map_sg_attrs',
  'dma_map_resource',
  'dma_map_phys',
  'dma_map_page',
  'dma_map_page_attrs',
  'dma_map_single',
  'dma_map_single_attrs',
]);

const REQUIRED = ['map_dma_buf', 'unmap_dma_buf', 'release'];

interface Submission {
  table: string;
  at: AstNode;
  fn?: string;
}

/** `X.ops = &T` assignments and `.ops = &T` fields of export-info initializers: the tables handed to dma_buf_export(). */
function submissions(ctx: RuleContext, tables: Set<string>): Submission[] {
  const { ff } = ctx;
  const out: Submission[] = [];
  const tableOf = (v: AstNode): string | undefined => {
    let u = unwrap(v);
    if (u.type === 'pointer_expression' && u.op === '&' && u.children[0]) u = unwrap(u.children[0]);
    if (u.type !== 'identifier') return undefined;
    const t = ff.t(u);
    return tables.has(t) ? t : undefined;
  };
  for (const fn of analysed(ctx)) {
    for (const a of fn.assigns) {
      if (a.op !== '=' || !/(^|\.)ops$/.test(objectPath(a.lhs))) continue;
      const t = tableOf(a.rhs);
      if (t) out.push({ table: t, at: a.lhsNode.parent ?? a.lhsNode, fn: fn.info.name });
    }
  }
  for (const init of ff.allInitializers()) {
    if (init.structType !== 'dma_buf_export_info') continue;
    for (const f of init.fields) {
      if (f.path !== 'ops') continue;
      const t = tableOf(f.value);
      if (t) out.push({ table: t, at: f.value.parent ?? f.value, fn: init.inFunction });
    }
  }
  return out;
}

function has(table: InitializerFact, name: string, ff: FileFacts, runtime: Set<string>): boolean {
  if (runtime.has(name)) return true;
  const f = table.fields.find((x) => x.path === name);
  return !!f && !isFalseLiteral(f.value, ff);
}

function checkTables(ctx: RuleContext): void {
  const { ff } = ctx;
  const tables = ff.allInitializers().filter((i) => i.structType === 'dma_buf_ops' && i.name);
  if (!tables.length) return;
  const names = new Set(tables.map((t) => t.name));
  const subs = submissions(ctx, names);
  for (const table of tables) {
    const esc = table.name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    // Handed by address to a function (to be copied and completed there, as vmwgfx's TTM prime does): not ours to judge.
    if (new RegExp(`[(,]\\s*&?\\s*${esc}\\s*[,)]`).test(ff.text)) continue;
    // Fields filled in at run time: `acme_ops.release = acme_release;`.
    const runtime = new Set<string>();
    for (const m of ff.text.matchAll(new RegExp(`\\b${esc}\\s*\\.\\s*(\\w+)\\s*=[^=]`, 'g'))) runtime.add(m[1]);
    const sub = subs.find((s) => s.table === table.name);
    const at: AstNode = sub?.at ?? table.node;
    const related = sub ? [rel(table.node, `${table.name} is defined here`)] : [];
    const events = (problem: string, extra: CodeEvent['args'] = {}): CodeEvent[] => [
      { op: 'dma_buf_ops', span: { start: table.node.start, end: table.node.end }, args: { table: table.name, ...fieldsOf(table, ff, runtime) } },
      { op: 'dma_buf_export', span: { start: at.start, end: at.end }, args: { problem, ...extra } },
    ];
    const missing = REQUIRED.filter((r) => !has(table, r, ff, runtime));
    if (missing.length && sub) {
      ctx.report({
        message: `dma_buf_export() refuses ${table.name}: it has no .${missing.join(', .')} (the core WARNs and returns ERR_PTR(-EINVAL) unless map_dma_buf, unmap_dma_buf and release are all set).`,
        at,
        related,
        functionName: sub.fn,
        events: events('missing', { missing: missing.join(',') }),
      });
    }
    const pin = has(table, 'pin', ff, runtime);
    const unpin = has(table, 'unpin', ff, runtime);
    if (pin !== unpin) {
      ctx.report({
        message: `${table.name} has .${pin ? 'pin' : 'unpin'} without .${pin ? 'unpin' : 'pin'}: dma_buf_export() WARNs and fails with -EINVAL (both or neither). A pin that can never be undone would keep the buffer in place forever.`,
        at,
        related,
        functionName: sub?.fn,
        events: events('pin-unpin', { pin, unpin }),
      });
    }
    const cache = table.fields.find((f) => f.path === 'cache_sgt_mapping');
    if (cache && isTrueLiteral(cache.value, ff) && (pin || unpin)) {
      ctx.report({
        message: `${table.name} sets .cache_sgt_mapping together with .pin/.unpin: dma_buf_export() WARNs and fails with -EINVAL. A dynamic exporter moves its buffers, so a mapping cached at attach time would go stale.`,
        at,
        related: [...related, rel(cache.value, 'cache_sgt_mapping is set here')],
        functionName: sub?.fn,
        events: events('cache-with-pin'),
      });
    }
  }
}

function fieldsOf(table: InitializerFact, ff: FileFacts, runtime: Set<string>): Record<string, boolean> {
  const out: Record<string, boolean> = {};
  for (const n of ['map_dma_buf', 'unmap_dma_buf', 'release', 'pin', 'unpin', 'cache_sgt_mapping']) out[n] = n === 'cache_sgt_mapping' ? !!table.fields.find((f) => f.path === n && isTrueLiteral(f.value, ff)) : has(table, n, ff, runtime);
  return out;
}

function checkExportInfo(ctx: RuleContext): void {
  const { ff } = ctx;
  for (const fn of analysed(ctx)) {
    for (const n of fn.cfg.nodes) {
      if (n.kind !== 'stmt' || n.ast?.type !== 'declaration') continue;
      const ty = field(n.ast, 'type');
      if (!ty || !/\bdma_buf_export_info\b/.test(ff.t(ty))) continue;
      for (const d of n.ast.children) {
        if (d.field !== 'declarator' || d.type !== 'identifier') continue;
        const name = ff.t(d);
        const zeroed = fn.calls.some((c) => /^(memset|memzero_explicit)$/.test(c.name) && c.args[0] && pathOf(c.args[0], ff) === name);
        if (zeroed) continue;
        ctx.report({
          severity: 'warning',
          message: `struct dma_buf_export_info ${name} is declared without DEFINE_DMA_BUF_EXPORT_INFO() and never zeroed: the members this function does not set (resv, flags, owner, exp_name) hold stack garbage when dma_buf_export() reads them. Use DEFINE_DMA_BUF_EXPORT_INFO(${name}).`,
          at: d,
          functionName: fn.info.name,
          events: [{ op: 'export_info_uninitialised', span: { start: d.start, end: d.end }, args: { name } }, { op: 'dma_buf_export', args: { problem: 'garbage-info' } }],
        });
      }
    }
  }
}

/** What the root of a device expression in a map_dma_buf callback designates. */
function rootClass(fn: FunctionFacts, root: string, attach: string, ff: FileFacts, depth = 0): 'attach' | 'attach-priv' | 'exporter' | 'global' | 'unknown' {
  if (root === attach) return 'attach';
  const params = fn.info.params.map((p) => p.name);
  if (params.includes(root)) return 'unknown';
  if (!fn.locals.has(root)) return ff.functions.has(root) ? 'unknown' : 'global';
  const origins = originsOf(fn, root);
  if (!origins.length || depth > 3) return 'unknown';
  let cls: ReturnType<typeof rootClass> | undefined;
  for (const o of origins) {
    const s = ff.t(o).replace(/\s+/g, '');
    let c: ReturnType<typeof rootClass>;
    const a = attach.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    if (new RegExp(`(^|\\W)${a}->dmabuf\\b`).test(s) || /(^|\W)(dmabuf|dma_buf|buf)->priv\b/.test(s)) c = 'exporter';
    else if (new RegExp(`(^|\\W)${a}->(priv|importer_priv)\\b`).test(s)) c = 'attach-priv';
    else {
      const u = unwrap(o);
      const k = pathOf(u, ff);
      c = k && !k.includes('.') ? rootClass(fn, rootOf(k), attach, ff, depth + 1) : 'unknown';
    }
    if (cls === undefined) cls = c;
    else if (cls !== c) return 'unknown';
  }
  return cls ?? 'unknown';
}

/** Whether a device expression in `fn` is `attach->dev`: 'yes', 'no' (another device), or 'unknown'. */
function isAttachDev(fn: FunctionFacts, dev: AstNode, attach: string, ff: FileFacts): 'yes' | 'no' | 'unknown' {
  return derived(fn, dev, ff, (n) => {
    const k = pathOf(n, ff);
    if (!k && n.type === 'call_expression') {
      // `dma_heap_get_dev(buffer->heap)`, `to_dev(priv)`: a device looked up from the exporter's object.
      const args = field(n, 'arguments')?.children ?? [];
      if (args.some((a) => pathOf(a, ff) === `${attach}.dev`)) return undefined;
      const classes = args.map((a) => pathOf(a, ff)).filter((x): x is string => !!x).map((x) => rootClass(fn, rootOf(x), attach, ff));
      return classes.length && classes.every((c) => c === 'exporter' || c === 'global') ? false : undefined;
    }
    if (!k) return undefined;
    if (k === `${attach}.dev`) return true;
    if (!k.includes('.')) return fn.locals.has(k) ? undefined : rootClass(fn, k, attach, ff) === 'global' ? false : undefined;
    const cls = rootClass(fn, rootOf(k), attach, ff);
    if (cls === 'attach') return k.startsWith(`${attach}.dmabuf`) ? false : undefined;
    if (cls === 'exporter' || cls === 'global') return false;
    return undefined;
  });
}

function checkMapDevice(ctx: RuleContext): void {
  const { ff } = ctx;
  for (const { fn, span } of withRole(ctx, 'map_dma_buf', 'dma_buf_ops')) {
    const attach = fn.info.params[0]?.name;
    if (!attach || !/dma_buf_attachment/.test(fn.info.params[0].type)) continue;
    const reportMap = (call: { node: AstNode; name: string }, where: FunctionFacts, dev: AstNode) => {
      ctx.report({
        message: `${fn.info.name}() is the exporter's .map_dma_buf, but ${call.name}() maps the table for ${ff.t(dev).replace(/\s+/g, ' ')}, not for the importer's device (${attach}->dev): the importer receives addresses of another device's IOMMU domain. Map for ${attach}->dev.`,
        at: call.node,
        related: [rel(span, `${fn.info.name}() is bound as .map_dma_buf here`)],
        functionName: where.info.name,
        events: [
          { op: 'map_dma_buf', span, args: { fn: fn.info.name } },
          callEvent(call.node, 'exporter_dma_map', { device: 'exporter', call: call.name }),
          { op: 'importer_dma' },
        ],
      });
    };
    for (const c of fn.calls) {
      if (!DMA_MAPPERS.has(c.name) || !c.args[0]) continue;
      if (isAttachDev(fn, c.args[0], attach, ff) === 'no') reportMap(c, fn, c.args[0]);
    }
    // One level into same-file helpers: the device the helper maps for, seen from the callback.
    for (const site of fn.calls) {
      const g = ff.functions.has(site.name) ? ff.fn(site.name) : undefined;
      if (!g || g === fn) continue;
      const gp = g.info.params.map((p) => p.name);
      for (const c of g.calls) {
        if (!DMA_MAPPERS.has(c.name) || !c.args[0]) continue;
        const k = pathOf(c.args[0], ff);
        if (!k) continue;
        const pi = gp.indexOf(rootOf(k));
        let verdict: 'yes' | 'no' | 'unknown';
        if (pi >= 0) {
          const arg = site.args[pi];
          const ak = arg ? pathOf(arg, ff) : undefined;
          if (!arg || !ak) continue;
          const suffix = k.slice(rootOf(k).length);
          if (!suffix) verdict = isAttachDev(fn, arg, attach, ff);
          else verdict = ak + suffix === `${attach}.dev` ? 'yes' : rootClass(fn, rootOf(ak), attach, ff) === 'exporter' ? 'no' : 'unknown';
        } else verdict = isAttachDev(g, c.args[0], '\u0000', ff) === 'no' && !g.locals.has(rootOf(k)) ? 'no' : 'unknown';
        if (verdict === 'no') reportMap(c, g, c.args[0]);
      }
    }
    // A table shared by every attachment: `return priv->sgt;`.
    for (const n of fn.cfg.nodes) {
      if (n.kind !== 'return' || !n.ast?.children[0]) continue;
      const v = unwrap(n.ast.children[0]);
      if (v.type !== 'field_expression' && !(v.type === 'pointer_expression' && v.op === '&')) continue;
      const k = pathOf(v, ff);
      if (!k || !k.includes('.')) continue;
      if (rootClass(fn, rootOf(k), attach, ff) !== 'exporter') continue;
      if (!/sg|table|sgt/i.test(k.split('.').pop()!)) continue;
      ctx.report({
        severity: 'warning',
        message: `${fn.info.name}() returns ${ff.t(v)}, a table of the exporter's object, to every importer: it is mapped for one device only, and the first dma_buf_unmap_attachment() frees or unmaps it under the other importers. Build and map a table per attachment (for ${attach}->dev).`,
        at: v,
        related: [rel(span, `${fn.info.name}() is bound as .map_dma_buf here`)],
        functionName: fn.info.name,
        events: [{ op: 'map_dma_buf', span, args: { fn: fn.info.name } }, callEvent(v, 'return_shared_sgt')],
      });
    }
  }
}

export const dmabufExportOps: Rule = {
  id: 'DMABUF-EXPORT-OPS',
  family: 'dmabuf',
  severity: 'error',
  summary: 'exporter ops or export info that dma_buf_export() rejects, or a map_dma_buf that maps for the wrong device',
  needs: ['dma_buf_ops', 'dma_buf_export_info', 'map_dma_buf'],
  check(ctx) {
    checkTables(ctx);
    checkExportInfo(ctx);
    checkMapDevice(ctx);
  },
};

