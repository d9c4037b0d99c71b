/**
 * Fixes for the dma-buf rules: DMABUF-ERRPTR, DMABUF-LOCKING,
 * DMABUF-MOVE-NOTIFY, DMABUF-PIN-BALANCE.
 */
import { type AstNode, field, unwrap, walk } from '../core/ast';
import { truths } from '../core/conditions';
import type { CallFact, FileFacts, FunctionFacts } from '../core/facts';
import { anyHeld, anyMaybe, CALLER, type FileLocks, fileLocks, HELD } from '../rules/dmabuf/locks';
import { MUST_HOLD } from '../rules/dmabuf/vocab';
import type { FixContext, Fixer } from './engine';
import { addInitializerField, importerOf, isPlainKey, nodeOfType, setInitializerField, sgTableMember, stubAbove } from './shared';
import { deleteStatement, freshName, oneLine, renameCallee, type Src, statementOf, surround } from './text';
import type { Fix, FixEdit } from './types';

// ------------------------------------------------------------- DMABUF-ERRPTR

const NULLISH = /^(NULL|0|\(\(void \*\)0\))$/;

/** How a pointer is tested where it appears: the node to rewrite, and whether the test is true on failure (`!x`, `x == NULL`). */
function testForm(x: AstNode, src: Src): { node: AstNode; failureWhenTrue: boolean } {
  let cur = x;
  // Through parentheses inside the expression, not the ones of `if (...)` itself.
  while (cur.parent && cur.parent.type === 'parenthesized_expression' && cur.parent.parent && !/_statement$/.test(cur.parent.parent.type)) cur = cur.parent;
  const p = cur.parent;
  let out: { node: AstNode; failureWhenTrue: boolean } = { node: cur, failureWhenTrue: false };
  if (p && p.type === 'unary_expression' && p.op === '!') out = { node: p, failureWhenTrue: true };
  else if (p && p.type === 'binary_expression' && (p.op === '==' || p.op === '!=')) {
    const other = cur.field === 'left' ? field(p, 'right') : field(p, 'left');
    if (other && NULLISH.test(src.t(other).replace(/\s+/g, ' ').trim())) out = { node: p, failureWhenTrue: p.op === '==' };
  }
  // `unlikely(!x)`: IS_ERR() is already marked unlikely.
  const args = out.node.parent;
  const call = args?.parent;
  if (args && call && args.type === 'argument_list' && args.children.length === 1 && call.type === 'call_expression') {
    const f = field(call, 'function');
    if (f && /^(likely|unlikely)$/.test(src.t(f))) out = { ...out, node: call };
  }
  return out;
}

const ERRNO = /^-E[A-Z0-9]+$/;
const ERR_PTR_ERRNO = /^ERR_PTR\(\s*-E[A-Z0-9]+\s*\)$/;

/** Edits turning the error codes a failure branch returns into the pointer's own. */
function errorCodeEdits(branch: AstNode | undefined, ptr: string, src: Src): FixEdit[] {
  if (!branch) return [];
  const stmts = branch.type === 'compound_statement' ? branch.children : [branch];
  const edits: FixEdit[] = [];
  for (const s of stmts) {
    if (s.type === 'return_statement') {
      const v = s.children[0];
      if (!v) continue;
      const t = oneLine(src.t(v)).trim();
      if (ERRNO.test(t)) edits.push({ start: v.start, end: v.end, newText: `PTR_ERR(${ptr})` });
      else if (ERR_PTR_ERRNO.test(t)) edits.push({ start: v.start, end: v.end, newText: `ERR_CAST(${ptr})` });
    } else if (s.type === 'expression_statement') {
      const a = s.children[0];
      if (!a || a.type !== 'assignment_expression' || a.op !== '=') continue;
      const r = field(a, 'right');
      if (r && ERRNO.test(src.t(r).trim())) edits.push({ start: r.start, end: r.end, newText: `PTR_ERR(${ptr})` });
    }
  }
  return edits;
}

const errptr: Fixer = (ctx) => {
  const { finding, src, ff } = ctx;
  const fn = ctx.fnAt(finding.span.start);
  if (!fn) return [];
  const nodes = ctx.nodesAt(fn, finding.span);
  if (finding.events.some((e) => e.op === 'teardown_with_errptr')) {
    // A field that may keep the raw ERR_PTR, tested for NULL before a teardown.
    const n = nodes.find((x) => isPlainKey(x));
    if (!n) return [];
    const t = oneLine(src.t(n));
    const form = testForm(n, src);
    const text = form.failureWhenTrue ? `IS_ERR_OR_NULL(${t})` : `!IS_ERR_OR_NULL(${t})`;
    return [ctx.fix(`Test with IS_ERR_OR_NULL(${t})`, [{ start: form.node.start, end: form.node.end, newText: text }], true)];
  }
  const cond = nodes[0];
  if (!cond) return [];
  // `if (!dma_buf_get(fd))`: the result is not kept, so there is nothing to test with IS_ERR().
  const source = finding.events[0]?.span;
  if (source && source.start >= cond.start && source.end <= cond.end) return [];
  const tested = truths(cond, true, (x) => ff.t(x)).map((tr) => unwrap(tr.node)).filter((x) => isPlainKey(x));
  if (tested.length !== 1) return [];
  const x = tested[0];
  const ptr = oneLine(src.t(x));
  const form = testForm(x, src);
  const edits: FixEdit[] = [{ start: form.node.start, end: form.node.end, newText: form.failureWhenTrue ? `IS_ERR(${ptr})` : `!IS_ERR(${ptr})` }];
  // The whole condition is the test: its failure branch returns the pointer's error.
  let ifs: AstNode | undefined = cond.parent;
  while (ifs && ifs.type === 'parenthesized_expression') ifs = ifs.parent;
  let errEdits: FixEdit[] = [];
  if (ifs && ifs.type === 'if_statement' && unwrap(form.node) === unwrap(cond)) {
    const alt = field(ifs, 'alternative');
    const branch = form.failureWhenTrue ? field(ifs, 'consequence') : alt && alt.type === 'else_clause' ? alt.children[0] : alt;
    errEdits = errorCodeEdits(branch, ptr, src);
  }
  edits.push(...errEdits);
  const returned = errEdits.some((e) => e.newText.startsWith('ERR_CAST')) ? `ERR_CAST(${ptr})` : `PTR_ERR(${ptr})`;
  const title = errEdits.length ? `Test with IS_ERR(${ptr}) and return ${returned}` : `Test with IS_ERR(${ptr})`;
  return [ctx.fix(title, edits, true)];
};

// ------------------------------------------------------------ DMABUF-LOCKING

const locksOf = (ctx: FixContext): FileLocks => ctx.shared('dmabuf.locks', () => fileLocks(ctx.ff));

const UNLOCKED_VARIANT = new Set(['dma_buf_map_attachment', 'dma_buf_unmap_attachment', 'dma_buf_vmap', 'dma_buf_vunmap']);
/** Calls whose first argument is the dma-buf itself (not an attachment). */
const TAKES_BUFFER = new Set(['dma_buf_vmap', 'dma_buf_vunmap', 'dma_buf_move_notify', 'dma_buf_vmap_unlocked', 'dma_buf_vunmap_unlocked']);

function callAt(ctx: FixContext, fn: FunctionFacts): { node: AstNode; fact: CallFact } | undefined {
  const node = nodeOfType(ctx.nodesAt(fn, ctx.finding.span), 'call_expression');
  const fact = node && fn.calls.find((c) => c.node === node);
  return node && fact ? { node, fact } : undefined;
}

/** The reservation object a call needs locked, as the function can name it (a local alias when it has one). */
function resvOf(call: CallFact, fn: FunctionFacts, ff: FileFacts, src: Src): string | undefined {
  const a = call.args[0];
  if (!a || !isPlainKey(unwrap(a))) return undefined;
  const obj = oneLine(src.t(unwrap(a)));
  const expr = TAKES_BUFFER.has(call.name) ? `${obj}->resv` : `${obj}->dmabuf->resv`;
  const squash = (s: string) => s.replace(/\s+/g, '');
  for (const as of fn.assigns) {
    if (as.op !== '=' || as.lhsNode.type !== 'identifier' || !fn.locals.has(as.lhs) || as.rhs.end > call.node.start) continue;
    if (squash(ff.t(as.rhs)) !== squash(expr)) continue;
    // The alias must not be reassigned.
    if (fn.assigns.filter((x) => x.lhs === as.lhs).length === 1) return as.lhs;
  }
  return expr;
}

/** Edits wrapping the statement that holds `call` in lock/unlock (splitting `T *x = call(...);` when it is the last use-free declaration). */
function wrapEdits(ctx: FixContext, call: AstNode, lock: string, unlock: string): FixEdit[] | undefined {
  const { src } = ctx;
  const stmt = statementOf(call);
  if (!stmt) return undefined;
  if (stmt.type === 'expression_statement') return surround(src, stmt, [lock], [unlock]);
  if (stmt.type !== 'declaration' || !stmt.parent || stmt.parent.type !== 'compound_statement') return undefined;
  const decls = stmt.children.filter((c) => c.field === 'declarator');
  if (decls.length !== 1 || decls[0].type !== 'init_declarator') return undefined;
  const d = decls[0];
  const declarator = field(d, 'declarator');
  const value = field(d, 'value');
  if (!declarator || !value || call.start < value.start || call.end > value.end) return undefined;
  let id: AstNode | undefined = declarator;
  while (id && id.type !== 'identifier') id = field(id, 'declarator') ?? id.children[0];
  if (!id) return undefined;
  const name = src.t(id);
  // The declarations after it (up to the first statement) must not use it.
  const siblings = stmt.parent.children;
  let last = stmt;
  for (let i = siblings.indexOf(stmt) + 1; i < siblings.length && siblings[i].type === 'declaration'; i++) {
    if (new RegExp(`\\b${name}\\b`).test(src.t(siblings[i]))) return undefined;
    last = siblings[i];
  }
  if (!src.startsLine(stmt.start) || !src.endsLine(stmt.end) || !src.endsLine(last.end)) return undefined;
  const indent = src.indentAt(stmt.start);
  const eol = src.eol;
  const assign = `${name} = ${src.t(value)};`;
  const at = src.lineEnd(src.line(last.end));
  return [
    { start: declarator.end, end: value.end, newText: '' },
    { start: at, end: at, newText: eol + eol + [lock, assign, unlock].map((l) => indent + l).join(eol) },
  ];
}

const locking: Fixer = (ctx) => {
  const { src, ff } = ctx;
  const fn = ctx.fnAt(ctx.finding.span.start);
  if (!fn) return [];
  const c = callAt(ctx, fn);
  if (!c) return [];
  const { node, fact } = c;
  const locks = locksOf(ctx);
  const fl = locks.functions.get(fn.info.name);
  const state = fl?.before(fact);
  if (MUST_HOLD.has(fact.name)) {
    // Called without the lock: take it around the call, or use the variant that takes it.
    const maybe = !!state && anyMaybe(state);
    const certain = !!fl && fl.entry !== 'unknown' && !maybe;
    const resv = resvOf(fact, fn, ff, src);
    const fixes: Array<Fix | undefined> = [];
    const wrap = resv
      ? ctx.fix(
          `Take dma_resv_lock(${resv}, NULL) around ${fact.name}()`,
          wrapEdits(ctx, node, `dma_resv_lock(${resv}, NULL);`, `dma_resv_unlock(${resv});`),
          false,
        )
      : undefined;
    const unlocked =
      UNLOCKED_VARIANT.has(fact.name) && ctx.atLeast(6, 2)
        ? ctx.fix(`Use ${fact.name}_unlocked(), which takes the reservation lock itself`, renameCallee(src, node, `${fact.name}_unlocked`), false)
        : undefined;
    // What fits the function: it already takes reservation locks -> lock around; else the _unlocked call.
    const takesLocks = fn.calls.some((x) => {
      const k = locks.lockFn(x)?.kind;
      return k === 'acquire' || k === 'try' || k === 'release';
    });
    const first = takesLocks || !unlocked ? wrap : unlocked;
    const second = first === wrap ? unlocked : wrap;
    if (first && certain) first.preferred = true;
    fixes.push(first, second);
    return fixes;
  }
  if (fact.name.endsWith('_unlocked')) {
    // The _unlocked variant under the lock: the locked variant.
    const base = fact.name.replace(/_unlocked$/, '');
    const held = !!state && (anyHeld(state) || state.get(CALLER) === HELD);
    return [ctx.fix(`Use ${base}() (the reservation lock is already held here)`, renameCallee(src, node, base), held)];
  }
  if (fact.name === 'dma_resv_lock' || fact.name === 'dma_resv_lock_interruptible') {
    // Taking the lock in a callback that runs with it held: assert it instead.
    const stmt = statementOf(node);
    if (!stmt || stmt.type !== 'expression_statement' || !fact.args[0]) return [];
    const obj = oneLine(src.t(fact.args[0]));
    const squash = (s: string) => s.replace(/\s+/g, '');
    const expr = stmt.children[0];
    const edits: FixEdit[] = [];
    if (expr && unwrap(expr) === node) edits.push({ start: node.start, end: node.end, newText: `dma_resv_assert_held(${obj})` });
    else if (expr && expr.type === 'assignment_expression' && unwrap(field(expr, 'right') ?? expr) === node && field(expr, 'left')?.type === 'identifier') {
      // `ret = dma_resv_lock_interruptible(...); if (ret) return ...;`: the check goes with the lock.
      const v = src.t(field(expr, 'left')!);
      const list = stmt.parent?.children ?? [];
      const check = list[list.indexOf(stmt) + 1];
      const cond = check && check.type === 'if_statement' ? field(check, 'condition') : undefined;
      if (!check || !cond || squash(src.t(cond)) !== `(${v})` || field(check, 'alternative')) return [];
      const del = deleteStatement(src, check);
      if (!del) return [];
      // `ret` must still be used elsewhere (else it would be left set but unused).
      let used = false;
      walk(fn.body, (n) => {
        if (used || (n.start >= stmt.start && n.end <= check.end) || n.type === 'declaration') return false;
        if (n.type === 'identifier' && src.t(n) === v) used = true;
        return !used;
      });
      if (!used) return [];
      edits.push({ start: expr.start, end: expr.end, newText: `dma_resv_assert_held(${obj})` }, del);
    } else return [];
    for (const u of fn.calls) {
      if (u.name !== 'dma_resv_unlock' || !u.args[0] || squash(ff.t(u.args[0])) !== squash(obj)) continue;
      const us = statementOf(u.node);
      if (!us || us.type !== 'expression_statement' || unwrap(us.children[0] ?? us) !== u.node) return [];
      const del = deleteStatement(src, us);
      if (!del) return [];
      edits.push(del);
    }
    return [ctx.fix(`Assert the reservation lock ${fn.info.name}() already runs under instead of taking it again`, edits, false)];
  }
  return [];
};

// -------------------------------------------------------- DMABUF-MOVE-NOTIFY

/** Lines of an unmap-and-invalidate body for an importer whose mapping lives in `priv->member`. */
function unmapBody(attach: string, priv: string, member: string, dir: string): string[] {
  return [
    `if (!${priv}->${member})`,
    '\treturn;',
    '',
    '/* Stop the device using the old placement before unmapping it. */',
    `dma_buf_unmap_attachment(${attach}, ${priv}->${member}, ${dir});`,
    `${priv}->${member} = NULL;`,
  ];
}

/** Where this file maps attachments: the struct member the table is kept in, and the direction. */
function mappings(ff: FileFacts): Array<{ member: string; dir: string }> {
  const out: Array<{ member: string; dir: string }> = [];
  for (const info of ff.functions.values()) {
    const fn = ff.fn(info.name);
    if (!fn) continue;
    for (const c of fn.calls) {
      if (c.name !== 'dma_buf_map_attachment' && c.name !== 'dma_buf_map_attachment_unlocked') continue;
      const dir = c.args[1] ? oneLine(ff.t(c.args[1])) : 'DMA_BIDIRECTIONAL';
      const result = fn.assigns.find((a) => unwrap(a.rhs) === c.node);
      if (!result) continue;
      const keys = [result.lhs];
      for (const a of fn.assigns) if (a.lhs.includes('.') || a.lhs.includes('->')) if (ff.t(unwrap(a.rhs)) === result.lhs) keys.push(a.lhs);
      for (const k of keys) {
        const m = /(?:\.|->)([A-Za-z_]\w*)$/.exec(k);
        if (m) out.push({ member: m[1], dir });
      }
    }
  }
  return out;
}

/** The body skeleton for a move_notify of an importer of type `type` (when its mapping member is known). */
function skeleton(ff: FileFacts, attach: string, type: string | undefined, priv: string): { lines: string[]; invalidates: boolean } {
  const tag = type && /struct\s+([A-Za-z_]\w*)\s*\*/.exec(type)?.[1];
  const maps = mappings(ff);
  const member = tag ? sgTableMember(ff.text, tag, maps.map((m) => m.member)) : undefined;
  if (tag && member) {
    const dir = maps.find((m) => m.member === member)?.dir ?? 'DMA_BIDIRECTIONAL';
    return { lines: [`struct ${tag} *${priv} = ${attach}->importer_priv;`, '', ...unmapBody(attach, priv, member, dir)], invalidates: true };
  }
  return {
    lines: [
      '/*',
      ' * The exporter is about to move the buffer (the reservation lock is',
      ' * held): stop the device using the old placement, unmap it, and map',
      ' * it again before the next use.',
      ' */',
    ],
    invalidates: false,
  };
}

const moveNotify: Fixer = (ctx) => {
  const { finding, src, ff } = ctx;
  const fn = ctx.fnAt(finding.span.start);
  if (!fn) return [];
  if (finding.events.some((e) => e.op === 'dma_buf_dynamic_attach')) {
    // (a) importer ops without .move_notify: a new callback above the ops table.
    const c = callAt(ctx, fn);
    const opsAt = finding.related[0];
    const init = opsAt && ff.allInitializers().find((i) => i.node.start === opsAt.start && i.node.end === opsAt.end);
    if (!c || !init || !init.name) return [];
    const decl = init.node.parent;
    const list = field(init.node, 'value');
    if (!decl || decl.type !== 'declaration' || !list || list.type !== 'initializer_list' || init.inFunction) return [];
    const base = init.name.replace(/_(attach|import|importer)_ops$|_ops$/, '') + '_move_notify';
    const name = freshName(src.text, base);
    const privArg = c.fact.args[3];
    const imp = privArg ? importerOf(privArg, fn, ff) : undefined;
    const privName = imp && /^[A-Za-z_]\w*$/.test(imp.text) ? imp.text : 'priv';
    const sk = skeleton(ff, 'attach', imp?.type, privName);
    const fnLines = [`static void ${name}(struct dma_buf_attachment *attach)`, '{', ...sk.lines.map((l) => (l ? '\t' + l : '')), '}'];
    const existing = init.fields.find((f) => f.path === 'move_notify');
    const fieldEdits = existing ? setInitializerField(existing.value, name) : addInitializerField(src, list, 'move_notify', name);
    const stub = stubAbove(src, decl, fnLines);
    if (!fieldEdits || !stub) return [];
    const title = sk.invalidates
      ? `Add a .move_notify callback ${name}() that unmaps and invalidates`
      : `Add a .move_notify callback stub ${name}() (fill in the invalidation)`;
    return [ctx.fix(title, [...fieldEdits, stub], false)];
  }
  // (b) a move_notify that invalidates nothing: add the unmap.
  const body = field(fn.ast, 'body');
  const role = ff.rolesOf(fn.info.name).find((r) => r.field === 'move_notify');
  const attach = fn.info.params[0]?.name;
  if (!body || !role || !attach) return [];
  const tableName = role.table.name;
  // The importer's private data: a local set from importer_priv, else the type dynamic_attach hands in.
  let priv: { name: string; type?: string; declared: boolean } | undefined;
  for (const a of fn.assigns) {
    if (/^\w+->importer_priv$/.test(ff.t(unwrap(a.rhs)).replace(/\s+/g, '')) && fn.locals.has(a.lhs)) priv = { name: a.lhs, type: fn.locals.get(a.lhs), declared: true };
  }
  if (!priv) {
    for (const info of ff.functions.values()) {
      const f2 = ff.fn(info.name);
      for (const c of f2?.calls ?? []) {
        if (c.name !== 'dma_buf_dynamic_attach' || !c.args[2] || !c.args[3]) continue;
        if (!new RegExp(`\\b${tableName}\\b`).test(ff.t(c.args[2]))) continue;
        const imp = importerOf(c.args[3], f2!, ff);
        if (imp?.type) priv = { name: /^[A-Za-z_]\w*$/.test(imp.text) ? imp.text : 'priv', type: imp.type, declared: false };
      }
    }
  }
  const tag = priv?.type && /struct\s+([A-Za-z_]\w*)\s*\*/.exec(priv.type)?.[1];
  const maps = mappings(ff);
  const member = tag ? sgTableMember(ff.text, tag, maps.map((m) => m.member)) : undefined;
  if (!priv || !tag || !member) return [];
  const dir = maps.find((m) => m.member === member)?.dir ?? 'DMA_BIDIRECTIONAL';
  const lines = [...(priv.declared ? [] : [`struct ${tag} *${priv.name} = ${attach}->importer_priv;`, '']), ...unmapBody(attach, priv.name, member, dir)];
  const eol = src.eol;
  const close = body.end - 1;
  if (!src.startsLine(close)) return [];
  const inner = src.indentAt(close) + '\t';
  const text = lines.map((l) => (l ? inner + l : '')).join(eol);
  let edit: FixEdit;
  if (body.children.length === 0) {
    // Only comments (a TODO) inside: replace them.
    edit = { start: src.nextLineStart(body.start), end: src.lineStart(src.line(close)), newText: text + eol };
  } else {
    const at = src.lineStart(src.line(close));
    edit = { start: at, end: at, newText: eol + text + eol };
  }
  return [ctx.fix(`Unmap ${priv.name}->${member} in ${fn.info.name}() so the device stops using the old placement`, [edit], false)];
};

// -------------------------------------------------------- DMABUF-PIN-BALANCE

const LABEL_PREFIX = /^(err|out|fail|error|unwind|cleanup)/;

const pinBalance: Fixer = (ctx) => {
  const { finding, src, ff } = ctx;
  const fn = ctx.fnAt(finding.span.start);
  if (!fn) return [];
  const c = callAt(ctx, fn);
  if (!c) return [];
  const ev = new Set(finding.events.map((e) => e.op));
  if (ev.has('set_pinned_flag') && c.fact.name === 'dma_buf_unpin') {
    // The error path unpins but leaves the flag set: clear it.
    const flag = /leaves (\S+) set/.exec(finding.message)?.[1];
    const stmt = statementOf(c.node);
    if (!flag || !stmt || stmt.type !== 'expression_statement') return [];
    const squash = (s: string) => s.replace(/\s+/g, '');
    const setTo = fn.assigns.find((a) => squash(ff.t(a.lhsNode)) === squash(flag));
    const setText = setTo ? ff.t(setTo.rhs).trim() : 'true';
    const off = setText === '1' ? '0' : 'false';
    return [ctx.fix(`Clear ${flag} after this dma_buf_unpin()`, surround(src, stmt, [], [`${flag} = ${off};`]), true)];
  }
  if (!ev.has('return_error') || c.fact.name !== 'dma_buf_pin') return [];
  return [pinLeakFix(ctx, fn, c.node, c.fact)];
};

function pinLeakFix(ctx: FixContext, fn: FunctionFacts, pin: AstNode, fact: CallFact): Fix | undefined {
  const { finding, src } = ctx;
  const body = fn.body;
  const stmts = body.children;
  const pinStmt = statementOf(pin);
  if (!pinStmt || !fact.args[0]) return undefined;
  const top = stmts.find((s) => s.start <= pinStmt.start && pinStmt.end <= s.end);
  if (!top || top.type === 'labeled_statement') return undefined;
  const arg = oneLine(src.t(fact.args[0]));
  const squash = (s: string) => s.replace(/\s+/g, '');
  const unpin = `dma_buf_unpin(${arg});`;
  // The pin's own failure check: skipped (nothing is pinned there).
  let checkEnd = pinStmt.end;
  const assigned = pinStmt.type === 'expression_statement' && pinStmt.children[0]?.type === 'assignment_expression' ? field(pinStmt.children[0], 'left') : undefined;
  const resultVar = assigned ? squash(src.t(assigned)) : undefined;
  if (pinStmt.type === 'if_statement') checkEnd = pinStmt.end;
  else if (resultVar) {
    const next = stmts[stmts.indexOf(top) + 1];
    if (next && next.type === 'if_statement' && new RegExp(`\\b${resultVar.replace(/[^\w]/g, '\\$&')}\\b`).test(src.t(field(next, 'condition') ?? next))) checkEnd = next.end;
  }
  // The flag the release path looks at (field case): exits after it is set do not leak.
  const flag = /only when (\S+) is set/.exec(finding.message)?.[1];
  const leaks = finding.related.map((r) => r.start);
  const labels = new Map<string, number>();
  stmts.forEach((s, i) => {
    if (s.type === 'labeled_statement') {
      const l = field(s, 'label');
      if (l) labels.set(src.t(l), i);
    }
  });
  /** Whether falling from top-level statement `i` on reaches a leaking return. */
  const reachesLeak = (i: number): boolean => {
    for (let j = i; j < stmts.length; j++) {
      let s = stmts[j];
      while (s.type === 'labeled_statement') s = s.children.find((x) => x.field !== 'label') ?? s;
      if (s.type === 'return_statement') return leaks.includes(s.start);
      if (s.type === 'goto_statement') return false;
    }
    return false;
  };
  const firstLabel = stmts.findIndex((s, i) => i > stmts.indexOf(top) && s.type === 'labeled_statement');
  const regionEnd = firstLabel >= 0 ? stmts[firstLabel].start : body.end;
  const gotos: AstNode[] = [];
  const returns: AstNode[] = [];
  let bad = false;
  walk(body, (n) => {
    if (bad || n.end <= checkEnd || n.start >= regionEnd) return n.end > checkEnd && n.start < regionEnd;
    const before = src.text.slice(checkEnd, n.start);
    if (n.type === 'goto_statement') {
      const l = field(n, 'label');
      const at = l ? labels.get(src.t(l)) : undefined;
      if (at === undefined || !reachesLeak(at)) return false;
      if (flag && new RegExp(`${flag.replace(/[^\w]/g, '\\$&')}\\s*=(?!=)\\s*(?!0\\b|false\\b)`).test(before)) return false;
      gotos.push(n);
      return false;
    }
    if (n.type === 'return_statement') {
      if (leaks.includes(n.start)) returns.push(n);
      return false;
    }
    return true;
  });
  if (bad || (!gotos.length && !returns.length)) return undefined;
  // The unpin needs the reservation lock: nothing may unlock, or unpin already, on the way.
  for (const x of [...gotos, ...returns]) {
    const between = src.text.slice(pin.end, x.start);
    if (/\bdma_resv_unlock\s*\(|\bdma_buf_unpin\s*\(/.test(between)) return undefined;
  }
  const targets = new Set(gotos.map((g) => src.t(field(g, 'label')!)));
  if (!returns.length && targets.size === 1) {
    // Kernel unwinding: a new label that unpins, just before the label the gotos jump to.
    const label = [...targets][0];
    const li = labels.get(label)!;
    const prev = stmts[li - 1];
    let p = prev;
    while (p && p.type === 'labeled_statement') p = p.children.find((x) => x.field !== 'label') ?? p;
    const fallsThrough = !p || (p.type !== 'return_statement' && p.type !== 'goto_statement');
    const target = stmts[li];
    if (!fallsThrough && src.startsLine(target.start)) {
      const m = LABEL_PREFIX.exec(label);
      const name = freshName(src.t(fn.info), m ? `${m[1]}_unpin` : 'unpin');
      const inner = target.children.find((x) => x.field !== 'label');
      const stmtIndent = inner && src.line(inner.start) !== src.line(target.start) ? src.indentAt(inner.start) : src.indentAt(top.start);
      const at = src.lineStart(src.line(target.start));
      const edits: FixEdit[] = [{ start: at, end: at, newText: `${src.indentAt(target.start)}${name}:${src.eol}${stmtIndent}${unpin}${src.eol}` }];
      for (const g of gotos) {
        const l = field(g, 'label')!;
        edits.push({ start: l.start, end: l.end, newText: name });
      }
      return ctx.fix(`Unpin on the error path: add label ${name} (dma_buf_unpin()) before ${label}`, edits, true);
    }
  }
  // Unpin right before each leaking exit.
  const edits: FixEdit[] = [];
  for (const x of [...gotos, ...returns]) {
    const e = surround(src, x, [unpin], []);
    if (!e) return undefined;
    edits.push(...e);
  }
  return ctx.fix(`Call dma_buf_unpin(${arg}) on the error path${gotos.length + returns.length > 1 ? "s that leak" : " that leaks"} the pin`, edits, true);
}

export const dmabufFixers: Record<string, Fixer> = {
  'DMABUF-ERRPTR': errptr,
  'DMABUF-LOCKING': locking,
  'DMABUF-MOVE-NOTIFY': moveNotify,
  'DMABUF-PIN-BALANCE': pinBalance,
};

