/**
 * DMABUF-VMAP-IOMEM: since 5.11 dma_buf_vmap() fills a map struct
 * (struct dma_buf_map, struct iosys_map from 5.18) that may describe I/O
 * memory (is_iomem, vaddr_iomem). dma_buf_vunmap() checks the map it gets
 * against the one vmap returned: BUG_ON(!iosys_map_is_equal(...)) in
 * drivers/dma-buf/dma-buf.c (6.1, 6.12), which compares is_iomem too.
 */
import { type AstNode, field, unwrap, walk } from '../../core/ast';
import type { CfgNode } from '../../core/cfg';
import { type CallFact, type FileFacts, type FunctionFacts, objectPath } from '../../core/facts';
import { reaches, solve } from '../../core/flow';
import type { CodeEvent } from '../../core/types';
import { type Rule, type RuleContext, rel } from '../api';
import { callEvent } from '../util';
import { analysed, calleeName, liveNodes, pathOf } from './more-util';

export const VMAP = new Set(['dma_buf_vmap', 'dma_buf_vmap_unlocked']);
export const VUNMAP = new Set(['dma_buf_vunmap', 'dma_buf_vunmap_unlocked']);
/** Plain-memory CPU accessors: given a pointer, they load or store through it. */
export const CPU_SINKS = new Set([
  'memcpy', 'memmove', 'memset', 'memcmp', 'memchr', 'memchr_inv', 'memset32', 'memset64', 'memcpy_flushcache',
  'copy_to_user', 'copy_from_user', '__copy_to_user', '__copy_from_user', 'strscpy', 'strcpy', 'strncpy', 'strlcpy',
  'crc32', 'crc32_le', 'sha256_update', 'print_hex_dump', 'kmemdup', 'le32_to_cpup', 'get_unaligned', 'put_unaligned',
]);
/** Map-aware accessors: correct for either kind of memory (they still need begin/end_cpu_access). */
export const MAP_ACCESSORS = new Set([
  'iosys_map_memcpy_to', 'iosys_map_memcpy_from', 'iosys_map_memset', 'iosys_map_rd', 'iosys_map_wr',
  'iosys_map_rd_field', 'iosys_map_wr_field', 'dma_buf_map_memcpy_to', 'dma_buf_map_memcpy_from', 'dma_buf_map_memset',
]);
const IOMEM_TESTS = /\b(is_iomem|iosys_map_is_iomem|dma_buf_map_is_iomem|vaddr_iomem)\b/;

export interface VmapSite {
  call: CallFact;
  /** Object path of the map struct (`map`, `obj->map`). */
  map: string;
}

/** `dma_buf_vmap*(buf, &map)` calls of a function. */
export function vmapSites(fn: FunctionFacts, ff: FileFacts): VmapSite[] {
  const out: VmapSite[] = [];
  for (const c of fn.calls) {
    if (!VMAP.has(c.name) || c.args.length < 2) continue;
    const m = pathOf(c.args[1], ff);
    if (m) out.push({ call: c, map: m });
  }
  return out;
}

export interface CpuUse {
  /** Where the CPU touches the memory. */
  at: AstNode;
  kind: 'sink' | 'escape' | 'accessor';
  what: string;
  cfgNode: number;
  site: VmapSite;
}

/** Locals that hold `map.vaddr` (`ptr = err ? NULL : map.vaddr;`). */
function vaddrAliases(fn: FunctionFacts, map: string, ff: FileFacts): Set<string> {
  const out = new Set<string>();
  for (const a of fn.assigns) {
    if (a.op !== '=' || a.lhs.includes('.') || a.lhs.includes('->')) continue;
    let hit = false;
    walk(a.rhs, (x) => {
      if (hit) return false;
      if (x.type === 'field_expression' && pathOf(x, ff) === map + '.vaddr') hit = true;
      return !hit;
    });
    if (hit && fn.locals.has(a.lhs)) out.add(a.lhs);
  }
  return out;
}

/** What the CPU does with the memory of a vmap'ed map in `fn`. */
export function cpuUses(fn: FunctionFacts, site: VmapSite, ff: FileFacts): CpuUse[] {
  const out: CpuUse[] = [];
  const aliases = vaddrAliases(fn, site.map, ff);
  const isPtr = (n: AstNode | undefined): string | undefined => {
    if (!n) return undefined;
    let u = unwrap(n);
    while (u.type === 'binary_expression' && (u.op === '+' || u.op === '-')) u = unwrap(field(u, 'left') ?? u.children[0]);
    const k = pathOf(u, ff);
    if (!k) return undefined;
    if (k === site.map + '.vaddr') return ff.t(n);
    if (aliases.has(k)) return ff.t(n);
    return undefined;
  };
  for (const node of fn.cfg.nodes) {
    if (!node.ast) continue;
    if (node.kind === 'cond') continue;
    walk(node.ast, (x) => {
      if (x.type === 'compound_statement') return false;
      if (x.type === 'call_expression') {
        const name = calleeName(x, ff);
        const args = field(x, 'arguments')?.children ?? [];
        if (CPU_SINKS.has(name) && args.some((a) => isPtr(a))) out.push({ at: x, kind: 'sink', what: `${name}()`, cfgNode: node.id, site });
        else if (MAP_ACCESSORS.has(name) && args[0] && pathOf(args[0], ff) === site.map) out.push({ at: x, kind: 'accessor', what: `${name}()`, cfgNode: node.id, site });
        return true;
      }
      if ((x.type === 'pointer_expression' && x.op === '*') || x.type === 'subscript_expression' || (x.type === 'field_expression' && x.op === '->')) {
        const inner = x.type === 'pointer_expression' ? field(x, 'argument') ?? x.children[0] : field(x, 'argument') ?? x.children[0];
        if (isPtr(inner)) {
          out.push({ at: x, kind: 'sink', what: 'a dereference', cfgNode: node.id, site });
          return false;
        }
      }
      return true;
    });
    // Stored or returned as a plain pointer: the is_iomem flag is dropped.
    for (const a of fn.assignsAt.get(node.id) ?? []) {
      if (a.op !== '=') continue;
      const l = objectPath(a.lhs);
      if (!l.includes('.')) continue;
      const r = unwrap(a.rhs);
      if (isPtr(r) || (r.type === 'conditional_expression' && r.children.slice(1).some((c) => isPtr(c)))) out.push({ at: a.lhsNode.parent ?? a.rhs, kind: 'escape', what: `stored in ${ff.t(a.lhsNode)}`, cfgNode: node.id, site });
    }
    if (node.kind === 'return' && node.ast.children[0] && isPtr(node.ast.children[0])) out.push({ at: node.ast, kind: 'escape', what: 'returned', cfgNode: node.id, site });
  }
  const alive = liveNodes(fn, ff);
  return out.filter((u) => alive.has(u.cfgNode) && reachesFromCall(fn, site.call, u.cfgNode));
}

function reachesFromCall(fn: FunctionFacts, call: CallFact, to: number): boolean {
  return reaches(fn.cfg, call.cfgNode, to);
}

/** Whether some path from the vmap to `node` skips every test of the map's is_iomem. */
function uncheckedAt(fn: FunctionFacts, site: VmapSite, ff: FileFacts): (node: number) => boolean {
  const tests = (n: CfgNode): boolean => {
    if (!n.ast) return false;
    const t = ff.t(n.ast);
    if (!IOMEM_TESTS.test(t)) return false;
    const base = site.map.split('.').pop()!;
    return t.includes(base);
  };
  const sol = solve<boolean>(fn.cfg, {
    entry: false,
    join: (a, b) => a || b,
    equals: (a, b) => a === b,
    transfer: (node, s) => {
      if (node.id === site.call.cfgNode) return true;
      if (node.kind === 'cond' && tests(node)) return false;
      // `if (iosys_map_is_iomem(&map))` folded into a statement, or is_iomem recorded next to the pointer.
      if (node.kind !== 'cond' && tests(node)) return false;
      return s;
    },
  });
  return (id) => sol.before[id] === true && !tests(fn.cfg.nodes[id]);
}

export const dmabufVmapIomem: Rule = {
  id: 'DMABUF-VMAP-IOMEM',
  family: 'dmabuf',
  severity: 'warning',
  summary: 'dma_buf_vmap() mapping used as plain memory without checking is_iomem, or a forged map handed to dma_buf_vunmap()',
  since: { major: 5, minor: 11 },
  needs: ['dma_buf_vmap', 'dma_buf_vmap_unlocked', 'dma_buf_vunmap', 'dma_buf_vunmap_unlocked'],
  check(ctx) {
    const { ff } = ctx;
    for (const fn of analysed(ctx)) {
      if (!fn.calls.some((c) => VMAP.has(c.name) || VUNMAP.has(c.name))) continue;
      checkApi(ctx, fn);
      for (const site of vmapSites(fn, ff)) {
        const unchecked = uncheckedAt(fn, site, ff);
        const uses = cpuUses(fn, site, ff).filter((u) => u.kind !== 'accessor' && unchecked(u.cfgNode));
        const sink = uses.find((u) => u.kind === 'sink');
        const first = sink ?? uses.find((u) => u.kind === 'escape');
        if (!first) continue;
        const events: CodeEvent[] = [callEvent(site.call, site.call.name, { map: site.map }), callEvent(first.at, first.kind === 'sink' ? 'cpu_access_vaddr' : 'vaddr_escapes', { via: first.what })];
        ctx.report({
          severity: sink ? 'warning' : 'info',
          message: sink
            ? `${first.what} uses ${site.map.replace(/\./g, '.')}.vaddr as plain memory, but ${site.call.name}() may return I/O memory (is_iomem, e.g. a VRAM BAR): nothing checks ${site.map}.is_iomem first. Use iosys_map_memcpy_from()/iosys_map_memcpy_to()/iosys_map_rd(), which handle both kinds.`
            : `${site.map}.vaddr is ${first.what} as a plain pointer, dropping is_iomem: whoever uses it later cannot know it may be I/O memory, and a map rebuilt from it for dma_buf_vunmap() will not match. Keep the struct iosys_map itself.`,
          at: first.at,
          related: [rel(site.call.node, `${site.call.name}() fills ${site.map} here`)],
          functionName: fn.info.name,
          events,
        });
      }
      checkForged(ctx, fn);
    }
  },
};

function checkApi(ctx: RuleContext, fn: FunctionFacts): void {
  for (const c of fn.calls) {
    if (!VMAP.has(c.name)) continue;
    if (c.args.length === 1) {
      ctx.report({
        severity: 'error',
        message: `${c.name}(buf) is the pre-5.11 API: since 5.11 it is int ${c.name}(struct dma_buf *, struct iosys_map *) and returns an error code; the mapping comes back in the map struct (which may be I/O memory).`,
        at: c.node,
        functionName: fn.info.name,
        events: [callEvent(c, c.name, { oldApi: true })],
      });
      continue;
    }
    const parent = c.node.parent;
    if (parent && parent.type === 'expression_statement') {
      ctx.report({
        message: `The result of ${c.name}() is ignored: it fails (-ENOMEM, -EINVAL when the exporter has no .vmap) and then leaves the map cleared, so the code below dereferences NULL.`,
        at: c.node,
        functionName: fn.info.name,
        events: [callEvent(c, c.name, { fails: true, unchecked: true }), { op: 'cpu_access_vaddr', args: { via: 'NULL' } }],
      });
    }
  }
}

const FORGE_SYS = /^(iosys_map_set_vaddr|dma_buf_map_set_vaddr|IOSYS_MAP_INIT_VADDR|DMA_BUF_MAP_INIT_VADDR)$/;
const FORGE_IO = /^(iosys_map_set_vaddr_iomem|dma_buf_map_set_vaddr_iomem|IOSYS_MAP_INIT_VADDR_IOMEM)$/;

function checkForged(ctx: RuleContext, fn: FunctionFacts): void {
  const { ff } = ctx;
  for (const c of fn.calls) {
    if (!VUNMAP.has(c.name) || !c.args[1]) continue;
    const m = pathOf(c.args[1], ff);
    if (!m) continue;
    // The map came from a vmap in this function: fine.
    if (vmapSites(fn, ff).some((s) => s.map === m)) continue;
    let forged: AstNode | undefined;
    let iomemKnown = false;
    for (const x of fn.calls) {
      const target = x.args[0] ? pathOf(x.args[0], ff) : undefined;
      if (FORGE_SYS.test(x.name) && target === m) forged ??= x.node;
      if (FORGE_IO.test(x.name) && target === m) iomemKnown = true;
    }
    for (const a of fn.assigns) {
      const l = objectPath(a.lhs);
      const r = unwrap(a.rhs);
      if (l === m && r.type === 'call_expression' && FORGE_SYS.test(calleeName(r, ff))) forged ??= a.lhsNode.parent ?? r;
      if (l === m && r.type === 'call_expression' && FORGE_IO.test(calleeName(r, ff))) iomemKnown = true;
      if (l === m + '.vaddr') forged ??= a.lhsNode.parent ?? a.lhsNode;
      if (l === m + '.is_iomem' || l === m + '.vaddr_iomem') iomemKnown = true;
    }
    if (!forged || iomemKnown) continue;
    ctx.report({
      message: `${c.name}() gets a map rebuilt from a bare pointer (${ff.t(forged).replace(/\s+/g, ' ').slice(0, 60)}), not the map dma_buf_vmap() returned: when the exporter's mapping is I/O memory, is_iomem differs and dma_buf_vunmap() hits BUG_ON(!iosys_map_is_equal(&dmabuf->vmap_ptr, map)). Keep the struct iosys_map from the vmap and pass it back.`,
      at: c.node,
      related: [rel(forged, 'the map is forged here')],
      functionName: fn.info.name,
      events: [{ op: 'dma_buf_vmap', args: { iomem: true } }, callEvent(forged, 'forge_map', { isIomem: false }), callEvent(c, c.name, { forged: true })],
    });
  }
}
