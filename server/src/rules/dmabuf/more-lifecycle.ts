/**
 * DMABUF-LIFECYCLE: get -> attach -> map ... unmap -> detach -> put, each
 * step undone on error paths, the mapping unmapped with the direction it was
 * mapped with, and no use of a buffer whose reference went to an fd
 * (drivers/dma-buf/dma-buf.c: dma_buf_fd() calls fd_install(); from then on
 * another thread can close() the fd and free the buffer).
 */
import { type AstNode, field, unwrap, walk } from '../../core/ast';
import type { CfgNode } from '../../core/cfg';
import { truths } from '../../core/conditions';
import { type CallFact, type FileFacts, type FunctionFacts, objectPath, rootOf } from '../../core/facts';
import { reaches as reachesIn, solve } from '../../core/flow';
import { LineIndex } from '../../core/positions';
import type { CodeEvent, RelatedSpan } from '../../core/types';
import { type Rule, type RuleContext, rel } from '../api';
import { aliasRoots, callEvent } from '../util';
import { analysed, callees, dirConstant, escapesAt, isErrorReturn, pathOf } from './more-util';

const ATTACH = new Set(['dma_buf_attach', 'dma_buf_dynamic_attach']);
const MAP = new Set(['dma_buf_map_attachment', 'dma_buf_map_attachment_unlocked']);
const UNMAP = new Set(['dma_buf_unmap_attachment', 'dma_buf_unmap_attachment_unlocked']);
const ERR_TESTS = new Set(['IS_ERR', 'IS_ERR_OR_NULL', 'PTR_ERR_OR_ZERO']);

const LIVE = 1;
const NONE = 2;

/** Per key (A:attachment, M:mapping, B:buffer from dma_buf_get, F:buffer handed to an fd): LIVE|NONE bits; X: extra references. */
interface LState {
  v: ReadonlyMap<string, number>;
  /** fd result variable -> buffer key. */
  pending: Readonly<Record<string, string>>;
}

interface Site {
  call: CallFact;
  /** The key the result went to. */
  key: string;
  /** Attachment (for maps) or buffer (for attaches) key. */
  of?: string;
  dir?: string;
}

function resultKey(fn: FunctionFacts, call: CallFact): string | undefined {
  for (const a of fn.assignsAt.get(call.cfgNode) ?? []) if (a.op === '=' && unwrap(a.rhs) === call.node) return objectPath(a.lhs);
  return undefined;
}

function sameBuffer(a: string, b: string, fn: FunctionFacts, ff: FileFacts): boolean {
  if (a === b) return true;
  if (a.includes('.') || b.includes('.')) return false;
  const ra = aliasRoots(rootOf(a), fn, ff);
  for (const r of aliasRoots(rootOf(b), fn, ff)) if (ra.has(r)) return true;
  return false;
}

/** File-wide: member name -> the direction constant every map into it uses ('' when they differ or one is not constant). */
function fieldMapDirs(ctx: RuleContext): Map<string, { dir: string; call: CallFact }> {
  return ctx.shared('dmabuf.more.fieldMapDirs', () => {
    const out = new Map<string, { dir: string; call: CallFact }>();
    const bad = new Set<string>();
    for (const fn of analysed(ctx)) {
      // Members assigned from each local (`vb->sgt = sgt;`), found once per function.
      let storedIn: Map<string, string[]> | undefined;
      const membersOf = (k: string): string[] => {
        if (!storedIn) {
          storedIn = new Map();
          for (const a of fn.assigns) {
            if (a.op !== '=' || !objectPath(a.lhs).includes('.')) continue;
            const from = pathOf(a.rhs, ctx.ff);
            if (from === undefined) continue;
            const list = storedIn.get(from) ?? [];
            list.push(objectPath(a.lhs).split('.').pop()!);
            storedIn.set(from, list);
          }
        }
        return storedIn.get(k) ?? [];
      };
      for (const c of fn.calls) {
        if (!MAP.has(c.name)) continue;
        const k = resultKey(fn, c);
        if (!k) continue;
        // The member the table ends up in: directly, or through a local (`vb->sgt = sgt;`).
        const members = k.includes('.') ? [k.split('.').pop()!] : membersOf(k);
        const d = dirConstant(c.args[1], ctx.ff);
        for (const f of members) {
          const old = out.get(f);
          if (!d || (old && old.dir !== d)) bad.add(f);
          else if (!old) out.set(f, { dir: d, call: c });
        }
      }
    }
    for (const b of bad) out.delete(b);
    return out;
  });
}

function checkFunction(ctx: RuleContext, fn: FunctionFacts): void {
  const { ff } = ctx;
  const sites = new Map<CallFact, Site>();
  const obtained = new Set<string>();
  for (const c of fn.calls) {
    const k = resultKey(fn, c);
    if (ATTACH.has(c.name) && k) sites.set(c, { call: c, key: k, of: pathOf(c.args[0], ff) });
    else if (MAP.has(c.name) && k) sites.set(c, { call: c, key: k, of: pathOf(c.args[0], ff), dir: dirConstant(c.args[1], ff) });
    else if (c.name === 'dma_buf_get' && k) sites.set(c, { call: c, key: k });
    // A buffer this function created or looked up itself: it knows how many references it holds.
    if (k && (c.name === 'dma_buf_export' || c.name === 'dma_buf_get' || /export/.test(c.name))) obtained.add(k);
  }
  const fdCalls = fn.calls.filter((c) => c.name === 'dma_buf_fd');
  if (!sites.size && !fdCalls.length && !fn.calls.some((c) => UNMAP.has(c.name))) return;
  const attachOf = new Map<string, Site>();
  const mapOf = new Map<string, Site[]>();
  for (const s of sites.values()) {
    if (ATTACH.has(s.call.name)) attachOf.set(s.key, s);
    if (MAP.has(s.call.name)) {
      const list = mapOf.get(s.key);
      if (list) list.push(s);
      else mapOf.set(s.key, [s]);
    }
  }
  const fieldDirs = fieldMapDirs(ctx);
  const unmappers = new Set<string>();
  for (const c of fn.calls) {
    const g = ff.functions.has(c.name) ? ff.fn(c.name) : undefined;
    if (g && g !== fn && [g, ...callees(ff, g, 1)].some((h) => h.calls.some((x) => UNMAP.has(x.name)))) unmappers.add(c.name);
  }
  const returned = new Set<string>();
  for (const n of fn.cfg.nodes) {
    const v = n.kind === 'return' ? n.ast?.children[0] : undefined;
    if (v && unwrap(v).type === 'identifier') returned.add(ff.t(unwrap(v)));
  }
  const reported = new Set<number>();
  const report = (at: AstNode, message: string, events: CodeEvent[], related: RelatedSpan[] = [], severity?: 'error' | 'warning' | 'info') => {
    if (reported.has(at.start)) return;
    reported.add(at.start);
    ctx.report({ message, at, related, events, functionName: fn.info.name, severity });
  };

  const set = (s: LState, k: string, v: number | undefined): LState => {
    const m = new Map(s.v);
    if (v === undefined) m.delete(k);
    else m.set(k, v);
    return { v: m, pending: s.pending };
  };

  /** Effect of one call; `check` reports when the call breaks the order. */
  const applyCall = (c: CallFact, s: LState, check: boolean): LState => {
    if (unmappers.has(c.name)) {
      // A same-file helper that unmaps what it is given.
      let r = s;
      for (const a of c.args) {
        const k = pathOf(a, ff);
        if (k && r.v.has('M:' + k)) r = set(r, 'M:' + k, NONE);
      }
      return r;
    }
    const site = sites.get(c);
    if (site && ATTACH.has(c.name)) return set(s, 'A:' + site.key, LIVE);
    if (site && MAP.has(c.name)) return set(s, 'M:' + site.key, LIVE);
    if (site && c.name === 'dma_buf_get') return set(s, 'B:' + site.key, LIVE);
    if (c.name === 'dma_buf_detach') {
      const a = pathOf(c.args[1], ff);
      if (!a) return s;
      return set(s, 'A:' + a, s.v.has('A:' + a) ? NONE : undefined);
    }
    if (UNMAP.has(c.name)) {
      const t = pathOf(c.args[1], ff);
      if (!t) return s;
      if (check) {
        const d2 = dirConstant(c.args[2], ff);
        const maps = (mapOf.get(t) ?? []).filter((m) => reaches(fn, m.call.cfgNode, c.cfgNode));
        let d1: { dir: string; call: CallFact } | undefined;
        if (maps.length && maps.every((m) => m.dir && m.dir === maps[0].dir)) d1 = { dir: maps[0].dir!, call: maps[0].call };
        else if (!maps.length && t.includes('.')) d1 = fieldDirs.get(t.split('.').pop()!);
        if (d1 && d2 && d1.dir !== d2) {
          report(
            c.node,
            `${c.name}() with ${d2}, but the table was mapped with ${d1.dir}: the exporter unmaps (and syncs caches) for the wrong direction. On a non-coherent device the CPU then reads stale data; with CONFIG_DMA_API_DEBUG the DMA API reports "device driver frees DMA memory with different direction".`,
            [callEvent(d1.call, d1.call.name, { dir: d1.dir }), callEvent(c, c.name, { dir: d2, mappedDir: d1.dir })],
            [rel(d1.call.node, `mapped with ${d1.dir} here`)],
          );
        }
      }
      return s.v.has('M:' + t) ? set(s, 'M:' + t, NONE) : s;
    }
    if (c.name === 'get_dma_buf') {
      const b = pathOf(c.args[0], ff);
      return b ? set(s, 'X:' + b, Math.min(2, (s.v.get('X:' + b) ?? 0) + 1)) : s;
    }
    if (c.name === 'dma_buf_fd') {
      const b = pathOf(c.args[0], ff);
      if (!b) return s;
      if (check && c.args[1] && /^0+$/.test(ff.t(c.args[1]).trim()))
        report(c.node, `dma_buf_fd(${ff.t(c.args[0])}, 0) installs the fd without O_CLOEXEC: it leaks into every program this process execs. Pass O_CLOEXEC (or the caller's flags) unless the fd is meant to be inherited.`, [callEvent(c, 'dma_buf_fd', { flags: 0 })], [], 'info');
      if (!obtained.has(b)) return s;
      let r = set(s, 'F:' + b, LIVE);
      const fdVar = resultKey(fn, c);
      if (fdVar) r = { v: r.v, pending: { ...r.pending, [fdVar]: b } };
      return r;
    }
    if (c.name === 'dma_buf_put') {
      const b = pathOf(c.args[0], ff);
      if (!b) return s;
      const fd = s.v.get('F:' + b);
      const extra = s.v.get('X:' + b) ?? 0;
      if (fd && fd & LIVE) {
        if (extra > 0) return set(s, 'X:' + b, extra - 1);
        if (check) {
          const fdCall = fdCalls.find((x) => pathOf(x.args[0], ff) === b);
          report(
            c.node,
            `dma_buf_put(${ff.t(c.args[0])}) after dma_buf_fd() succeeded${fd === LIVE ? '' : ' on some path'}: the reference now belongs to the file descriptor, and nothing took another one with get_dma_buf(). This put drops the fd's reference: the buffer is freed while user space still holds the fd.`,
            [...(fdCall ? [callEvent(fdCall, 'dma_buf_fd')] : []), callEvent(c, 'dma_buf_put', { afterFd: true }), { op: 'user_uses_fd' }],
            fdCall ? [rel(fdCall.node, 'the reference goes to the fd here')] : [],
          );
        }
        return s;
      }
      return s.v.has('B:' + b) ? set(s, 'B:' + b, NONE) : s;
    }
    return s;
  };

  const sol = solve<LState>(fn.cfg, {
    entry: { v: new Map(), pending: {} },
    join: (a, b) => {
      const m = new Map<string, number>();
      for (const [k, v] of a.v) {
        if (k.startsWith('X:')) m.set(k, Math.min(v, b.v.get(k) ?? 0));
        else m.set(k, v | (b.v.get(k) ?? NONE));
      }
      for (const [k, v] of b.v) if (!a.v.has(k)) m.set(k, k.startsWith('X:') ? 0 : v | NONE);
      return { v: m, pending: { ...a.pending, ...b.pending } };
    },
    equals: (a, b) => a.v.size === b.v.size && [...a.v].every(([k, v]) => b.v.get(k) === v) && Object.keys(a.pending).length === Object.keys(b.pending).length,
    transfer: (node, s0) => {
      let s = s0;
      for (const c of fn.callsAt.get(node.id) ?? []) s = applyCall(c, s, false);
      // What the returned status variables hold: 1 = zero, 2 = non-zero.
      for (const a of fn.assignsAt.get(node.id) ?? []) {
        if (!returned.has(a.lhs)) continue;
        s = set(s, 'R:' + a.lhs, a.op === '=' && /^0$/.test(ff.t(a.rhs).trim()) ? 1 : 3);
      }
      // Handed on: no longer this function's to release.
      for (const k of [...s.v.keys()]) {
        const kind = k.slice(0, 2);
        if (kind !== 'A:' && kind !== 'M:' && kind !== 'B:') continue;
        if (escapesAt(fn, node.id, k.slice(2), ff, { freesKeepField: true, callsKeepLocal: kind === 'M:' })) s = set(s, k, undefined);
      }
      return s;
    },
    branch: (node, s, idx) => refine(node, s, idx, ff, returned),
  });

  // Order checks, with the state just before each call.
  for (const c of fn.calls) {
    let s = sol.before[c.cfgNode];
    if (!s) continue;
    for (const x of fn.callsAt.get(c.cfgNode) ?? []) {
      if (x === c) break;
      s = applyCall(x, s, false);
    }
    applyCall(c, s, true);
  }

  // Uses of a buffer after its reference went to an fd.
  for (const n of fn.cfg.nodes) {
    const s = sol.before[n.id];
    if (!s || !n.ast) continue;
    for (const [k, v] of s.v) {
      if (!k.startsWith('F:') || !(v & LIVE) || (s.v.get('X:' + k.slice(2)) ?? 0) > 0) continue;
      const b = k.slice(2);
      const use = derefOf(n, b, ff);
      if (!use) continue;
      const fdCall = fdCalls.find((x) => pathOf(x.args[0], ff) === b);
      report(
        use,
        `${ff.t(use)} reads the buffer after dma_buf_fd() handed its only reference to the fd${v === LIVE ? '' : ' (on some path)'}: user space can close() the fd at once and free the buffer. Take a reference with get_dma_buf() before dma_buf_fd(), or finish with the buffer first.`,
        [...(fdCall ? [callEvent(fdCall, 'dma_buf_fd')] : []), { op: 'user_closes_fd' }, callEvent(use, 'use_after_fd')],
        fdCall ? [rel(fdCall.node, 'the reference goes to the fd here')] : [],
      );
    }
  }

  // Detach while a mapping of the attachment is live; put while an attachment of the buffer is attached.
  // A walk per site only when what it looks for lies ahead of it (each walk is linear in the function).
  const budget: Budget = { steps: EXPLORE_BUDGET };
  const detaches = fn.calls.filter((c) => c.name === 'dma_buf_detach');
  const putCalls = fn.calls.filter((c) => c.name === 'dma_buf_put');
  const ahead = (from: CallFact, among: readonly CallFact[], calls: (c: CallFact) => boolean) => among.some((c) => calls(c) && reaches(fn, from.cfgNode, c.cfgNode));
  const errorReturns = fn.cfg.nodes.filter((n) => n.kind === 'return' && isErrorReturn(n, ff));
  for (const m of sites.values()) {
    if (!MAP.has(m.call.name) || !m.of) continue;
    if (!ahead(m.call, detaches, (c) => pathOf(c.args[1], ff) === m.of)) continue;
    const unmaps = (c: CallFact) => (UNMAP.has(c.name) && pathOf(c.args[1], ff) === m.key) || (unmappers.has(c.name) && c.args.some((a) => pathOf(a, ff) === m.key));
    const { hits } = explore(fn, m.call, m.key, ff, returned, { releases: unmaps, hit: (c) => c.name === 'dma_buf_detach' && pathOf(c.args[1], ff) === m.of, callsKeepLocal: true, budget });
    for (const d of hits)
      report(
        d.node,
        `dma_buf_detach() while the mapping made at line ${lineOf(ff, m.call.node)} is still live: the importer never gave the sg_table back, so the exporter's mapping (and its IOMMU entries) outlive the attachment while the device may still DMA to it. Call ${m.call.name.replace('map_', 'unmap_')}() first.`,
        [callEvent(m.call, m.call.name), callEvent(d, 'dma_buf_detach', { liveMapping: true }), { op: 'device_dma_after_detach' }],
        [rel(m.call.node, 'mapped here')],
      );
  }
  for (const a of sites.values()) {
    if (!ATTACH.has(a.call.name) || !a.of) continue;
    const buf = a.of;
    const fromGet = [...sites.values()].some((x) => x.call.name === 'dma_buf_get' && x.key === buf);
    if (!fromGet || fn.calls.some((c) => c.name === 'get_dma_buf' && pathOf(c.args[0], ff) === buf)) continue;
    const puts = (c: CallFact) => c.name === 'dma_buf_put' && !!pathOf(c.args[0], ff) && sameBuffer(pathOf(c.args[0], ff)!, buf, fn, ff);
    if (!ahead(a.call, putCalls, puts)) continue;
    const { hits } = explore(fn, a.call, a.key, ff, returned, {
      releases: (c) => c.name === 'dma_buf_detach' && pathOf(c.args[1], ff) === a.key,
      hit: puts,
      budget,
    });
    for (const p of hits)
      report(
        p.node,
        `dma_buf_put() drops this function's only reference to the buffer while the attachment made at line ${lineOf(ff, a.call.node)} is still attached: the attachment does not hold a reference, so the buffer can be released under it (dma_buf_release() WARNs on the non-empty attachment list). Detach first, then put.`,
        [callEvent(a.call, a.call.name), callEvent(p, 'dma_buf_put', { attached: true }), { op: 'dma_buf_detach', args: { late: true } }],
        [rel(a.call.node, 'attached here')],
      );
  }

  // Error paths that leave an attachment attached or a dma_buf_get() reference held.
  for (const src of sites.values()) {
    const isAttach = ATTACH.has(src.call.name);
    if (!isAttach && src.call.name !== 'dma_buf_get') continue;
    if (!errorReturns.some((r) => reaches(fn, src.call.cfgNode, r.id))) continue;
    const rets = leakingReturns(fn, src.call, src.key, ff, returned, (c) => (isAttach ? c.name === 'dma_buf_detach' && pathOf(c.args[1], ff) === src.key : c.name === 'dma_buf_put' && pathOf(c.args[0], ff) === src.key), budget);
    if (!rets.length) continue;
    const what = isAttach ? 'attachment' : 'reference';
    report(
      src.call.node,
      isAttach
        ? `The attachment made here is still attached when ${rets.length === 1 ? 'this error path returns' : `${rets.length} error paths return`}: nothing calls dma_buf_detach(), so it stays on the buffer's attachment list (the exporter keeps its mapping and the buffer can never be released cleanly).`
        : `The reference dma_buf_get() takes here is still held when ${rets.length === 1 ? 'this error path returns' : `${rets.length} error paths return`}: nothing calls dma_buf_put(), so the buffer (and its file) leaks.`,
      [callEvent(src.call, src.call.name), ...rets.slice(0, 1).map((r) => ({ op: 'return_error', span: r.ast ? { start: r.ast.start, end: r.ast.end } : undefined, args: { leaks: what } }))],
      rets.map((r) => rel(r.ast ?? src.call.node, `returns here with the ${what} still held`)),
    );
  }
}

/**
 * Error returns reachable from a successful `key = call(...)` on a path that
 * neither releases nor hands on the object. Follows paths one at a time,
 * with what each returned status variable holds (zero or not), so
 * `if (ret) dma_buf_detach(...); return ret;` is understood.
 */
function leakingReturns(fn: FunctionFacts, call: CallFact, key: string, ff: FileFacts, returned: Set<string>, releases: (c: CallFact) => boolean, budget?: Budget): CfgNode[] {
  return explore(fn, call, key, ff, returned, { releases, budget }).returns;
}

/**
 * Steps the walks of one function may take together. A realistic function
 * (the kernel's largest that matters, 60 KB) takes a few ten thousand; a
 * generated one with thousands of map sites ahead of thousands of nodes
 * would take billions. Past the budget the walks stop: fewer findings, never
 * wrong ones.
 */
const EXPLORE_BUDGET = 400_000;
interface Budget {
  steps: number;
}

const failVarsMemo = new WeakMap<FunctionFacts, Map<string, Set<string>>>();
/** Variables assigned `IS_ERR(key)` (or another error test of it), once per function and key. */
function failVarsOf(fn: FunctionFacts, key: string, ff: FileFacts): Set<string> {
  let m = failVarsMemo.get(fn);
  if (!m) failVarsMemo.set(fn, (m = new Map()));
  let out = m.get(key);
  if (out) return out;
  out = new Set<string>();
  for (const a of fn.assigns) {
    const u = unwrap(a.rhs);
    if (u.type !== 'call_expression') continue;
    const f = field(u, 'function');
    if (f && ERR_TESTS.has(ff.t(f)) && pathOf(field(u, 'arguments')?.children[0], ff) === key) out.add(objectPath(a.lhs));
  }
  m.set(key, out);
  return out;
}

/**
 * Walks the paths from a successful `key = call(...)`, one at a time, until
 * the object is released (`releases`), handed on, or a call `hit` accepts is
 * reached. Returns the hits and the error returns reached with the object
 * still held.
 */
function explore(
  fn: FunctionFacts,
  call: CallFact,
  key: string,
  ff: FileFacts,
  returned: Set<string>,
  o: { releases: (c: CallFact) => boolean; hit?: (c: CallFact) => boolean; callsKeepLocal?: boolean; budget?: Budget },
): { returns: CfgNode[]; hits: CallFact[] } {
  const failVars = failVarsOf(fn, key, ff);
  const vars = [...returned];
  type Z = Record<string, number>;
  const tag = (id: number, z: Z) => id + ':' + vars.map((v) => z[v] ?? 3).join(',');
  const out: CfgNode[] = [];
  const hits: CallFact[] = [];
  const seen = new Set<string>();
  const stack: Array<[number, Z]> = [];
  const push = (from: CfgNode, z: Z) => {
    from.succ.forEach((sid, i) => {
      let nz = z;
      if (from.kind === 'cond') {
        let failure = false;
        for (const tr of truths(from.ast, i === 0, (x) => ff.t(x))) {
          const u = unwrap(tr.node);
          const k = pathOf(u, ff);
          if (u.type === 'call_expression') {
            const f = field(u, 'function');
            if (tr.truthy && f && ERR_TESTS.has(ff.t(f)) && pathOf(field(u, 'arguments')?.children[0], ff) === key) failure = true;
          } else if (k === key && !tr.truthy) failure = true;
          else if (k && failVars.has(k) && tr.truthy) failure = true;
          if (u.type === 'identifier' && returned.has(ff.t(u))) {
            const known = nz[ff.t(u)] ?? 3;
            // An edge the status variable cannot take on this path.
            if ((known === 1 && tr.truthy) || (known === 2 && !tr.truthy)) failure = true;
            nz = { ...nz, [ff.t(u)]: tr.truthy ? 2 : 1 };
          }
        }
        if (failure) return;
      }
      stack.push([sid, nz]);
    });
  };
  push(fn.cfg.nodes[call.cfgNode], {});
  while (stack.length) {
    const [id, z0] = stack.pop()!;
    const t = tag(id, z0);
    if (seen.has(t) || seen.size > 20000) continue;
    if (o.budget && o.budget.steps-- <= 0) break;
    seen.add(t);
    const n = fn.cfg.nodes[id];
    let z = z0;
    for (const a of fn.assignsAt.get(id) ?? []) {
      if (!returned.has(a.lhs)) continue;
      z = { ...z, [a.lhs]: a.op === '=' && /^0$/.test(ff.t(a.rhs).trim()) ? 1 : 3 };
    }
    const here = fn.callsAt.get(id) ?? [];
    const hit = o.hit ? here.find(o.hit) : undefined;
    if (hit) {
      if (!hits.includes(hit)) hits.push(hit);
      continue;
    }
    if (here.some(o.releases)) continue;
    if (escapesAt(fn, id, key, ff, { freesKeepField: true, callsKeepLocal: o.callsKeepLocal })) continue;
    if (n.kind === 'return') {
      const v = n.ast?.children[0] ? unwrap(n.ast.children[0]) : undefined;
      const zero = v && v.type === 'identifier' && z[ff.t(v)] === 1;
      if (isErrorReturn(n, ff) && !zero && !out.includes(n)) out.push(n);
      continue;
    }
    push(n, z);
  }
  return { returns: out, hits };
}

function refine(node: CfgNode, s: LState, idx: number, ff: FileFacts, returned: Set<string>): LState {
  if (node.kind !== 'cond') return s;
  let m: Map<string, number> | undefined;
  const kill = (k: string) => {
    if (!(m ?? s.v).has(k)) return;
    m ??= new Map(s.v);
    m.set(k, NONE);
  };
  for (const tr of truths(node.ast, idx === 0, (x) => ff.t(x))) {
    const u = unwrap(tr.node);
    if (u.type === 'identifier' && returned.has(ff.t(u))) {
      m ??= new Map(s.v);
      m.set('R:' + ff.t(u), tr.truthy ? 2 : 1);
    }
  }
  for (const tr of truths(node.ast, idx === 0, (x) => ff.t(x))) {
    const u = unwrap(tr.node);
    if (u.type === 'call_expression') {
      const f = field(u, 'function');
      const name = f ? ff.t(f) : '';
      if (!ERR_TESTS.has(name) || !tr.truthy) continue;
      const k = pathOf(field(u, 'arguments')?.children[0], ff);
      if (k) for (const p of ['A:', 'M:', 'B:']) kill(p + k);
      continue;
    }
    const k = pathOf(u, ff);
    if (!k) continue;
    const fdOf = s.pending[k];
    if (fdOf && tr.truthy) kill('F:' + fdOf);
    if (!tr.truthy) for (const p of ['A:', 'M:', 'B:']) kill(p + k);
  }
  return m ? { v: m, pending: s.pending } : s;
}

/** A dereference of buffer `b` (`b->x`) in the node's own statement (not nested bodies). */
function derefOf(n: CfgNode, b: string, ff: FileFacts): AstNode | undefined {
  let hit: AstNode | undefined;
  walk(n.ast!, (x) => {
    if (hit || x.type === 'compound_statement') return false;
    if (x.type === 'call_expression') {
      const f = field(x, 'function');
      if (f && /^(dma_buf_fd|dma_buf_put|get_dma_buf)$/.test(ff.t(f))) return false;
    }
    if (x.type === 'field_expression' && x.op === '->') {
      const arg = field(x, 'argument');
      if (arg && pathOf(arg, ff) === b) {
        hit = x;
        return false;
      }
    }
    return true;
  });
  return hit;
}

function reaches(fn: FunctionFacts, from: number, to: number): boolean {
  return reachesIn(fn.cfg, from, to);
}

const lineIndexes = new WeakMap<FileFacts, LineIndex>();
function lineOf(ff: FileFacts, n: AstNode): number {
  let index = lineIndexes.get(ff);
  if (!index) lineIndexes.set(ff, (index = new LineIndex(ff.text)));
  return index.lineOf(n.start) + 1;
}

export const dmabufLifecycle: Rule = {
  id: 'DMABUF-LIFECYCLE',
  family: 'dmabuf',
  severity: 'error',
  summary: 'dma-buf get/attach/map/unmap/detach/put/fd out of order, not undone on error paths, or the buffer used after its reference went to an fd',
  needs: ['dma_buf_attach', 'dma_buf_dynamic_attach', 'dma_buf_map_attachment', 'dma_buf_map_attachment_unlocked', 'dma_buf_fd', 'dma_buf_get'],
  check(ctx) {
    for (const fn of analysed(ctx)) {
      if (!fn.calls.some((c) => ATTACH.has(c.name) || MAP.has(c.name) || UNMAP.has(c.name) || c.name === 'dma_buf_fd' || c.name === 'dma_buf_get' || c.name === 'dma_buf_detach')) continue;
      checkFunction(ctx, fn);
    }
  },
};
