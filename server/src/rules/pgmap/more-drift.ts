/**
 * PGMAP-API-DRIFT: ZONE_DEVICE identifiers that do not exist in the target
 * kernel (removed or renamed, or newer than it).
 *
 * The table (model/apiHistory.ts) was checked against Debian's 6.1 and 6.12 trees (every
 * "removed" identifier is absent from both; every "added before 6.12" one is
 * present in both) and, for later changes, against mainline patches. Entries
 * marked `approx` carry a version this research could not pin to a tagged
 * release; their doc page says so.
 */
import type { Node } from 'web-tree-sitter';
import type { KernelVersion } from '../../core/types';
import { type Rule, type RuleContext } from '../api';
import { DRIFT, type Drift, V } from '../../model/apiHistory';
import { versionGiven } from './more-common';

/** The oldest tree the rules model: drift to before it is wrong on every tree DMA Lens knows. */
const FLOOR = V(6, 1);

function cmp(a: KernelVersion, b: KernelVersion): number {
  return a.major !== b.major ? a.major - b.major : a.minor - b.minor;
}

const fmt = (v: KernelVersion) => `${v.major}.${v.minor}`;

/** `#if` conditions that test the kernel version or a feature probe: code under them handles drift on purpose. */
const VERSION_GUARD = /LINUX_VERSION_CODE|KERNEL_VERSION|RHEL_RELEASE|\bNV_\w+_PRESENT\b|\bHAVE_\w+|\w+_HAS_\w+|__has_include/;

function guarded(n: Node): boolean {
  for (let p: Node | null = n.parent; p; p = p.parent) {
    if (p.type === 'preproc_if' || p.type === 'preproc_ifdef' || p.type === 'preproc_elif' || p.type === 'preproc_else' || p.type === 'preproc_elifdef') {
      const cond = p.childForFieldName('condition') ?? p.childForFieldName('name');
      if (cond && VERSION_GUARD.test(cond.text)) return true;
      // #else / #elif of a version test: the test sits on the enclosing #if.
      if ((p.type === 'preproc_else' || p.type === 'preproc_elif') && p.parent) {
        const c2 = p.parent.childForFieldName('condition') ?? p.parent.childForFieldName('name');
        if (c2 && VERSION_GUARD.test(c2.text)) return true;
      }
    }
    if (p.type === 'preproc_def' || p.type === 'preproc_function_def') return true;
  }
  return false;
}

/** Names the file defines itself (a compat shim): drift on them is handled. */
function definedHere(root: Node): Set<string> {
  const out = new Set<string>();
  for (const d of root.descendantsOfType(['preproc_def', 'preproc_function_def'])) {
    const n = d?.childForFieldName('name');
    if (n) out.add(n.text);
  }
  for (const f of root.descendantsOfType('function_definition')) {
    let decl = f?.childForFieldName('declarator') ?? null;
    for (let i = 0; decl && i < 6 && decl.type !== 'function_declarator'; i++) decl = decl.childForFieldName('declarator');
    const id = decl?.childForFieldName('declarator');
    if (id && id.type === 'identifier') out.add(id.text);
  }
  return out;
}

/** The declared type text of `name` in the function around `n` (parameters and locals), if any. */
function typeOf(ctx: RuleContext, n: Node, name: string): string | undefined {
  let f: Node | null = n.parent;
  while (f && f.type !== 'function_definition') f = f.parent;
  if (!f) return undefined;
  for (const fn of ctx.ff.functions.values()) {
    if (fn.start !== f.startIndex) continue;
    const p = fn.params.find((x) => x.name === name);
    if (p) return p.type;
    const facts = ctx.ff.fn(fn.name);
    return facts?.locals.get(name);
  }
  return undefined;
}


/**
 * What a `.res` of a dev_pagemap needs in the text (the report below asks the same): a variable
 * declared `struct dev_pagemap`, a `.res` in a dev_pagemap initializer, or `...pgmap->res` /
 * `...pagemap.res`. A driver's `res` of its own struct next to a `pgmap` elsewhere is not one.
 */
const PGMAP_RES = /\bdev_pagemap\b|(?:pgmap|pagemap)\s*(?:->|\.)\s*res\b/;

export const pgmapApiDrift: Rule = {
  id: 'PGMAP-API-DRIFT',
  family: 'pgmap',
  severity: 'info',
  summary: 'ZONE_DEVICE identifier that the target kernel does not have (removed, renamed, or newer)',
  needs: [...new Set(DRIFT.filter((d) => d.kind === 'ident' || d.kind === 'opsField').map((d) => d.name)), 'dev_pagemap', 'pgmap'],
  check(ctx) {
    const { ff } = ctx;
    const given = versionGiven(ctx);
    const invalid = (d: Drift): 'removed' | 'added' | undefined => {
      if (d.removedIn && cmp(ctx.version, d.removedIn) >= 0) {
        // Removed after the oldest tree we model: only wrong when the user named a newer tree.
        if (cmp(d.removedIn, FLOOR) > 0 && !given) return undefined;
        return 'removed';
      }
      if (d.addedIn && cmp(ctx.version, d.addedIn) < 0) return given ? 'added' : undefined;
      return undefined;
    };
    const live = DRIFT.filter((d) => invalid(d));
    const present = live.some((d) =>
      d.kind === 'pagePgmap' ? /(->|\.)\s*pgmap\b/.test(ff.text) : d.kind === 'pgmapRes' ? /(->|\.)\s*res\b/.test(ff.text) && PGMAP_RES.test(ff.text) : new RegExp(`\\b${d.name}\\b`).test(ff.text),
    );
    if (!present) return;
    // Walks the whole tree (a lazily parsed file parses it all for this): only once something the
    // target kernel lacks is in the text.
    const root = ff.doc.fullRoot();
    const defined = definedHere(root);
    const report = (n: Node, d: Drift, how: 'removed' | 'added', shown: string) => {
      const when = how === 'removed' ? `was removed in ${d.approx ? 'about ' : ''}${fmt(d.removedIn!)}` : `only exists from ${d.approx ? 'about ' : ''}${fmt(d.addedIn!)}`;
      ctx.report({
        severity: given ? 'error' : 'info',
        message: `${shown} ${when}, and the target kernel is ${fmt(ctx.version)}${given ? '' : ' (the newest DMA Lens knows; set the kernel version to check against your tree)'}: this does not build there. Use ${d.use}.`,
        at: { start: n.startIndex, end: n.endIndex },
        events: [{ op: 'api_drift', span: { start: n.startIndex, end: n.endIndex }, args: { name: d.name, how, target: fmt(ctx.version) } }],
      });
    };
    const byIdent = new Map(DRIFT.filter((d) => d.kind === 'ident').map((d) => [d.name, d]));
    const idents = root.descendantsOfType(['identifier', 'type_identifier', 'field_identifier']);
    for (const n of idents) {
      if (!n) continue;
      const name = n.text;
      const d = byIdent.get(name);
      if (d && n.type !== 'field_identifier') {
        if (defined.has(name) || guarded(n)) continue;
        // The definition of the identifier itself (a compat header) is not a use.
        const how = invalid(d);
        if (how) report(n, d, how, name);
        continue;
      }
      if (n.type !== 'field_identifier') continue;
      if (name === 'pgmap' || name === 'res') {
        const fe = n.parent;
        if (!fe || fe.type !== 'field_expression') continue;
        const arg = fe.childForFieldName('argument');
        if (!arg) continue;
        const op = fe.child(1)?.text;
        if (name === 'pgmap') {
          const d = DRIFT.find((x) => x.kind === 'pagePgmap')!;
          const how = invalid(d);
          if (!how || guarded(n)) continue;
          // `page->pgmap` on a struct page, or `folio->page.pgmap`.
          const isFolioPage = arg.type === 'field_expression' && arg.childForFieldName('field')?.text === 'page';
          const t = arg.type === 'identifier' ? typeOf(ctx, n, arg.text) : undefined;
          if ((op === '->' && t && /\bstruct page\b/.test(t)) || (op === '.' && isFolioPage)) report(fe, d, how, `${fe.text.replace(/\s+/g, '')} (struct page's pgmap member)`);
        } else {
          const d = DRIFT.find((x) => x.kind === 'pgmapRes')!;
          const how = invalid(d);
          if (!how || guarded(n)) continue;
          const t = arg.type === 'identifier' ? typeOf(ctx, n, arg.text) : undefined;
          const last = arg.type === 'field_expression' ? arg.childForFieldName('field')?.text : undefined;
          if ((t && /\bdev_pagemap\b/.test(t)) || last === 'pgmap' || last === 'pagemap') report(fe, d, how, `${fe.text.replace(/\s+/g, '')} (struct dev_pagemap's res member)`);
        }
      }
    }
    // Designated initializers of dev_pagemap_ops (.page_free / .folio_free) and dev_pagemap (.res).
    for (const init of ff.allInitializers()) {
      for (const f of init.fields) {
        if (init.structType === 'dev_pagemap_ops') {
          const d = DRIFT.find((x) => x.kind === 'opsField' && x.name === f.path);
          if (!d) continue;
          const how = invalid(d);
          const node = root.descendantForIndex(f.value.start);
          if (how && node && !guarded(node)) report(root.descendantForIndex(f.value.start, f.value.end) ?? node, d, how, `.${f.path}`);
        } else if (init.structType === 'dev_pagemap' && (f.path === 'res' || f.path.startsWith('res.'))) {
          const d = DRIFT.find((x) => x.kind === 'pgmapRes')!;
          const how = invalid(d);
          const node = root.descendantForIndex(f.value.start);
          if (how && node && !guarded(node)) report(node, d, how, '.res');
        }
      }
    }
  },
};
