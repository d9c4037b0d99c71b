/**
 * PGMAP-FOREIGN-OWNER: a driver interprets a ZONE_DEVICE page it did not
 * prove to be its own (reads or writes `zone_device_data`, or takes
 * `container_of()` of its pgmap).
 *
 * Pages whose owner is known by construction are not suspect: the page a
 * `.page_free`/`.migrate_to_ram` callback receives, pages migrate_vma or
 * migrate_device_range collected (they filter on `pgmap_owner`), and
 * device-private pages hmm_range_fault() reports for a range that names
 * `dev_private_owner` (it only reports the owner's own). Suspect are pages
 * that can be anyone's: GUP results and hmm_range_fault() results that are
 * merely ZONE_DEVICE (coherent, P2PDMA, DAX pages of other drivers come
 * back as ordinary present PTEs).
 */
import { type AstNode, field, unwrap, walk } from '../../core/ast';
import { type FileFacts, type FunctionFacts, objectPath } from '../../core/facts';
import { type Rule, rel } from '../api';
import { asCall, keyOf } from '../util';
import { arrayOf, solveTaint, type TaintSpec } from './more-common';

const GUP = new Set([
  'get_user_pages', 'get_user_pages_fast', 'get_user_pages_remote', 'get_user_pages_unlocked', 'pin_user_pages',
  'pin_user_pages_fast', 'pin_user_pages_remote', 'pin_user_pages_unlocked', 'iov_iter_get_pages2',
  'iov_iter_get_pages_alloc2', 'iov_iter_extract_pages',
]);

/** Index of the `pages` argument of each GUP call. */
const GUP_PAGES: Record<string, number> = {
  get_user_pages: 3, get_user_pages_fast: 3, get_user_pages_remote: 4, get_user_pages_unlocked: 3, pin_user_pages: 3,
  pin_user_pages_fast: 3, pin_user_pages_remote: 4, pin_user_pages_unlocked: 3, iov_iter_get_pages2: 1,
  iov_iter_get_pages_alloc2: 1, iov_iter_extract_pages: 1,
};

/** What a same-file helper does with its page parameters: interprets them, or checks their owner. */
interface HelperSummary {
  interprets: Map<number, string>;
  checksOwner: Set<number>;
}

function ownerCompare(cond: AstNode, key: string, ff: FileFacts): boolean {
  let hit = false;
  walk(cond, (x) => {
    if (hit) return false;
    if (x.type === 'binary_expression' && (x.op === '==' || x.op === '!=')) {
      const t = ff.t(x);
      if (/\bpgmap\b|->\s*owner\b|page_pgmap|folio_pgmap/.test(t) && mentionsKey(x, key, ff)) hit = true;
    }
    return true;
  });
  return hit;
}

function mentionsKey(n: AstNode, key: string, ff: FileFacts): boolean {
  let hit = false;
  walk(n, (x) => {
    if (hit) return false;
    if (x.type === 'identifier' || x.type === 'field_expression' || x.type === 'subscript_expression') {
      const k = keyOf(x, ff);
      if (k && (objectPath(k) === key || objectPath(k).startsWith(key + '.'))) {
        hit = true;
        return false;
      }
    }
    return true;
  });
  return hit;
}

/** Where `fn` interprets a page: a zone_device_data access or container_of() of its pgmap, with the page's key. */
function interpretations(fn: FunctionFacts, ff: FileFacts): Array<{ node: AstNode; what: string; cfgNode: number; key: string }> {
  const out: Array<{ node: AstNode; what: string; cfgNode: number; key: string }> = [];
  for (const n of fn.cfg.nodes) {
    if (!n.ast) continue;
    walk(n.ast, (x) => {
      if (x.type === 'compound_statement') return false;
      if (x.type === 'field_expression' && x.op === '->') {
        const f = field(x, 'field');
        const arg = field(x, 'argument');
        if (f && arg && ff.t(f) === 'zone_device_data') {
          const k = keyOf(arg, ff);
          if (k) out.push({ node: x, what: ff.t(x).replace(/\s+/g, ''), cfgNode: n.id, key: objectPath(k) });
        }
      }
      if (x.type === 'call_expression') {
        const f = field(x, 'function');
        const args = field(x, 'arguments')?.children ?? [];
        if (f && ff.t(f) === 'container_of' && args[0]) {
          const a = ff.t(args[0]).replace(/\s+/g, '');
          const inner = unwrap(args[0]);
          let subject: AstNode | undefined;
          if (/^(page_pgmap|folio_pgmap)\(/.test(a) && inner.type === 'call_expression') subject = field(inner, 'arguments')?.children[0];
          else if (/->pgmap$/.test(a) && inner.type === 'field_expression') subject = field(inner, 'argument');
          const sk = subject && keyOf(subject, ff);
          if (sk) out.push({ node: x, what: `container_of(${a}, ...)`, cfgNode: n.id, key: objectPath(sk) });
        }
      }
      return true;
    });
  }
  return out;
}

function summarize(ff: FileFacts): Map<string, HelperSummary> {
  const out = new Map<string, HelperSummary>();
  for (const info of ff.functions.values()) {
    const pageParams = info.params.map((p, i) => ({ p, i })).filter(({ p }) => /\bstruct (page|folio)\s*\*/.test(p.type));
    if (!pageParams.length) continue;
    const fn = ff.fn(info.name);
    if (!fn) continue;
    const s: HelperSummary = { interprets: new Map(), checksOwner: new Set() };
    for (const { p, i } of pageParams) {
      const conds = fn.cfg.nodes.filter((n) => n.ast && (n.kind === 'cond' || n.kind === 'return' || n.kind === 'stmt'));
      if (conds.some((n) => ownerCompare(n.ast!, p.name, ff))) {
        s.checksOwner.add(i);
        continue;
      }
      const it = interpretations(fn, ff).find((x) => x.key === p.name);
      if (it) s.interprets.set(i, it.what);
    }
    if (s.interprets.size || s.checksOwner.size) out.set(info.name, s);
  }
  // Helpers of helpers: interpreting a page through another helper counts.
  for (let round = 0; round < 2; round++) {
    for (const info of ff.functions.values()) {
      if (!info.params.some((p) => /\bstruct (page|folio)\s*\*/.test(p.type))) continue;
      const fn = ff.fn(info.name);
      if (!fn) continue;
      for (const [i, p] of info.params.entries()) {
        if (!/\bstruct (page|folio)\s*\*/.test(p.type)) continue;
        const s = out.get(info.name);
        if (s?.checksOwner.has(i) || s?.interprets.has(i)) continue;
        for (const c of fn.calls) {
          const hs = out.get(c.name);
          if (!hs || c.name === info.name) continue;
          const idx = c.args.findIndex((a) => keyOf(a, ff) === p.name);
          if (idx >= 0 && hs.interprets.has(idx)) {
            const cur = out.get(info.name) ?? { interprets: new Map(), checksOwner: new Set<number>() };
            cur.interprets.set(i, `${c.name}(), which reads ${hs.interprets.get(idx)}`);
            out.set(info.name, cur);
            break;
          }
        }
      }
    }
  }
  return out;
}

export const pgmapForeignOwner: Rule = {
  id: 'PGMAP-FOREIGN-OWNER',
  family: 'pgmap',
  severity: 'warning',
  summary: 'a ZONE_DEVICE page from GUP or hmm_range_fault() interpreted as the driver\'s own without an owner check',
  needs: ['zone_device_data', 'page_pgmap', 'folio_pgmap', 'pgmap'],
  context: ['hmm_pfn_to_page', ...GUP],
  check(ctx) {
    const { ff } = ctx;
    if (!/\b(hmm_pfn_to_page|get_user_pages\w*|pin_user_pages\w*|iov_iter_get_pages\w*|iov_iter_extract_pages)\b/.test(ff.text)) return;
    const helpers = summarize(ff);
    const ownerInFile = /(\.|->)dev_private_owner\s*=(?!\s*NULL\b)/.test(ff.text);
    for (const info of ff.analysedFunctions()) {
      const fn = ff.fn(info.name);
      if (!fn) continue;
      const gupArrays = new Map<string, string>();
      for (const c of fn.calls) {
        const idx = GUP_PAGES[c.name];
        const a = idx !== undefined ? c.args[idx] : undefined;
        const k = a && keyOf(a, ff);
        if (k) gupArrays.set(objectPath(k).replace(/^&/, ''), c.name);
      }
      const hasHmm = fn.calls.some((c) => c.name === 'hmm_pfn_to_page');
      if (!gupArrays.size && !hasHmm) continue;
      const sourceText = new Map<string, AstNode>();
      const spec: TaintSpec = {
        source: (rhs) => {
          const u = unwrap(rhs);
          const c = asCall(u, fn);
          if (c && c.name === 'hmm_pfn_to_page') {
            sourceText.set('hmm', c.node);
            return 'hmm:a page hmm_range_fault() reported';
          }
          if (u.type === 'subscript_expression' || (u.type === 'pointer_expression' && u.op === '*')) {
            const arr = arrayOf(u, ff);
            const gup = arr && gupArrays.get(arr);
            if (gup) return `gup:a page ${gup}() returned`;
          }
          return undefined;
        },
        refine: (call, truthy, s) => {
          const why = s.get(call.key);
          if (!why) return;
          // A device-private page that hmm_range_fault() reports is the range owner's own.
          if (truthy && ownerInFile && why.startsWith('hmm:') && (call.name === 'is_device_private_page' || call.name === 'folio_is_device_private')) s.delete(call.key);
          // Not ZONE_DEVICE at all: nothing to interpret.
          if (!truthy && (call.name === 'is_zone_device_page' || call.name === 'folio_is_zone_device')) s.delete(call.key);
          const hs = helpers.get(call.name);
          if (hs && hs.checksOwner.has(0)) s.delete(call.key);
        },
        refineCond: (cond, _edge, s) => {
          for (const k of [...s.keys()]) if (ownerCompare(cond, k, ff)) s.delete(k);
          // A helper that compares the owner, called in the condition.
          walk(cond, (x) => {
            if (x.type !== 'call_expression') return true;
            const c = asCall(x, fn);
            const hs = c && helpers.get(c.name);
            if (c && hs) for (const i of hs.checksOwner) { const k = c.args[i] && keyOf(c.args[i], ff); if (k) s.delete(objectPath(k)); }
            return true;
          });
        },
      };
      const before = solveTaint(fn, ff, spec);
      const report = (at: AstNode, why: string, key: string, what: string) => {
        const kind = why.slice(0, why.indexOf(':'));
        const from = why.slice(why.indexOf(':') + 1);
        ctx.report({
          message: `${what} treats ${key.replace(/\./g, '->')} as this driver's ZONE_DEVICE page, but it is ${from}, which may belong to another driver (a coherent, P2PDMA or DAX page of someone else's pgmap). Only the pgmap owner knows what zone_device_data and the memory around its pgmap hold. Check page_pgmap(page)->owner (or compare the pgmap with your own) first.`,
          at,
          related: kind === 'hmm' && sourceText.get('hmm') ? [rel(sourceText.get('hmm')!, 'the page comes from hmm_range_fault() here')] : [],
          functionName: fn.info.name,
          events: [{ op: kind === 'gup' ? 'gup_page' : 'hmm_page', args: { owner: 'other' } }, { op: 'interpret_zone_device_page', span: { start: at.start, end: at.end }, args: { via: what } }],
        });
      };
      const seen = new Set<number>();
      // An element of a GUP array used in place (`pages[i]->zone_device_data`): suspect unless the
      // function compares some owner of that array's pages.
      const elementOf = (key: string): string | undefined => {
        const m = /^(.*)\[[^\]]*\]$/.exec(key);
        if (!m || !gupArrays.has(m[1])) return undefined;
        const guarded = fn.cfg.nodes.some((n) => n.ast && ownerCompare(n.ast, m[1], ff));
        return guarded ? undefined : `gup:a page ${gupArrays.get(m[1])}() returned`;
      };
      for (const it of interpretations(fn, ff)) {
        const why = before[it.cfgNode]?.get(it.key) ?? elementOf(it.key);
        if (!why || seen.has(it.node.start)) continue;
        seen.add(it.node.start);
        report(it.node, why, it.key, it.what);
      }
      for (const c of fn.calls) {
        const hs = helpers.get(c.name);
        if (!hs || seen.has(c.node.start)) continue;
        for (const [i, what] of hs.interprets) {
          const k = c.args[i] && keyOf(c.args[i], ff);
          if (!k) continue;
          const key = objectPath(k);
          const why = before[c.cfgNode]?.get(key) ?? elementOf(key);
          if (!why) continue;
          seen.add(c.node.start);
          report(c.node, why, key, `${c.name}() (which reads ${what})`);
          break;
        }
      }
    }
  },
};
