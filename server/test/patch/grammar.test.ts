/**
 * syntaxes/kernel-mail.tmLanguage.json: every regex compiles, every include
 * resolves, and a small line-based TextMate interpreter (begin/end, match,
 * captures, repository includes; embedded source.c is not followed) gives
 * the expected scopes on the b4 series fixture.
 */
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';

const REPO = path.resolve(__dirname, '../../../..');
const grammar = JSON.parse(fs.readFileSync(path.join(REPO, 'syntaxes', 'kernel-mail.tmLanguage.json'), 'utf8'));

interface Rule {
  name?: string;
  match?: string;
  begin?: string;
  end?: string;
  include?: string;
  patterns?: Rule[];
  captures?: Record<string, { name?: string; patterns?: Rule[] }>;
  beginCaptures?: Record<string, { name?: string; patterns?: Rule[] }>;
}

/** Oniguruma -> JS for the subset the grammar uses (\A: start of the document; a leading \G: sticky). */
function compile(src: string, firstLine: boolean): RegExp {
  const sticky = src.startsWith('\\G');
  return new RegExp((sticky ? src.slice(2) : src).replace(/\\A/g, firstLine ? '^' : '(?!)'), sticky ? 'dy' : 'dg');
}

function resolve(rules: readonly Rule[]): Rule[] {
  const out: Rule[] = [];
  for (const r of rules) {
    if (r.include === 'source.c' || r.include === '$self') continue;
    if (r.include?.startsWith('#')) {
      const target = grammar.repository[r.include.slice(1)] as Rule;
      assert.ok(target, `include ${r.include} resolves`);
      out.push(...(target.patterns && !target.match && !target.begin ? resolve(target.patterns) : [target]));
    } else out.push(r);
  }
  return out;
}

interface Frame {
  rule?: Rule;
  scopes: string[];
}

/** Scopes of every character of every line. */
function tokenize(lines: readonly string[]): string[][][] {
  const stack: Frame[] = [{ scopes: [grammar.scopeName], rule: { patterns: grammar.patterns } }];
  return lines.map((line, li) => {
    const scopes: string[][] = Array.from({ length: line.length + 1 }, () => []);
    const paint = (from: number, to: number, names: Array<string | undefined>) => {
      for (let i = from; i < Math.max(to, from + 1) && i <= line.length; i++) for (const n of names) if (n) scopes[i].push(n);
    };
    /** Match rules inside a capture: applied to the captured text only (as VS Code does). */
    const inner = (from: number, to: number, rules: readonly Rule[]) => {
      const text = line.slice(0, to);
      for (let p = from; p < to; ) {
        let best: { m: RegExpExecArray; r: Rule } | undefined;
        for (const r of resolve(rules)) {
          if (!r.match) continue;
          const re = compile(r.match, li === 0);
          re.lastIndex = p;
          const m = re.exec(text);
          if (m && m[0].length && (!best || m.index < best.m.index)) best = { m, r };
        }
        if (!best) break;
        paint(best.m.index, best.m.index + best.m[0].length, [best.r.name]);
        capture(best.m, best.r.captures);
        p = best.m.index + best.m[0].length;
      }
    };
    const capture = (m: RegExpExecArray, caps: Rule['captures']) => {
      if (!caps) return;
      for (const [k, c] of Object.entries(caps)) {
        const ix = m.indices?.[+k];
        if (ix && c.name) paint(ix[0], ix[1], [c.name]);
        if (ix && c.patterns) inner(ix[0], ix[1], c.patterns);
      }
    };
    let pos = 0;
    for (let guard = 0; guard < 200 && pos <= line.length; guard++) {
      const frame = stack[stack.length - 1];
      const base = stack.flatMap((f) => f.scopes);
      let best: { m: RegExpExecArray; rule?: Rule; end: boolean } | undefined;
      if (frame.rule?.end) {
        const re = compile(frame.rule.end, li === 0);
        re.lastIndex = pos;
        const m = re.exec(line);
        if (m) best = { m, end: true };
      }
      for (const r of resolve(frame.rule?.patterns ?? [])) {
        const re = compile((r.match ?? r.begin)!, li === 0);
        re.lastIndex = pos;
        const m = re.exec(line);
        if (m && (!best || m.index < best.m.index)) best = { m, rule: r, end: false };
      }
      if (!best) break;
      const { m } = best;
      const to = m.index + m[0].length;
      if (best.end) {
        stack.pop();
        pos = to;
        continue;
      }
      const r = best.rule!;
      paint(m.index, to, [...base, r.name]);
      if (r.match) {
        capture(m, r.captures);
        pos = to > pos ? to : pos + 1;
      } else {
        capture(m, r.beginCaptures);
        stack.push({ rule: r, scopes: r.name ? [r.name] : [] });
        pos = to;
        if (to === line.length) break;
      }
    }
    // Lines inside an open region carry its scope.
    for (let i = 0; i < scopes.length; i++) if (!scopes[i].length) scopes[i].push(...stack.flatMap((f) => f.scopes));
    return scopes;
  });
}

test('every regex of the grammar compiles and every include resolves', () => {
  assert.equal(grammar.scopeName, 'source.kernel-mail');
  const seen: string[] = [];
  const visit = (r: Rule) => {
    for (const k of ['match', 'begin', 'end'] as const) if (r[k]) seen.push(compile(r[k]!, true).source);
    if (r.include && r.include !== 'source.c') resolve([r]);
    for (const p of r.patterns ?? []) visit(p);
    for (const c of [...Object.values(r.captures ?? {}), ...Object.values(r.beginCaptures ?? {})]) for (const p of c.patterns ?? []) visit(p);
  };
  for (const p of grammar.patterns) visit(p);
  for (const r of Object.values(grammar.repository) as Rule[]) visit(r);
  assert.ok(seen.length > 30);
  // The C inside hunk lines is embedded.
  const hunk = grammar.repository.hunk as Rule;
  assert.ok(hunk.patterns!.some((p) => p.captures?.['2']?.patterns?.some((x) => x.include === 'source.c')));
});

test('scopes on a b4 series: headers, cover letter, diffstat, diff headers, hunks, signature', () => {
  const text = fs.readFileSync(path.join(REPO, 'server/test/fixtures/patch/acme-v2.mbx'), 'utf8');
  const lines = text.split('\n');
  const tokens = tokenize(lines);
  const at = (lineText: string, needle: string, nth = 0): string[] => {
    let li = -1;
    for (let k = 0; k <= nth; k++) li = lines.indexOf(lineText, li + 1);
    assert.ok(li >= 0, `line ${JSON.stringify(lineText)}`);
    const col = lines[li].indexOf(needle);
    assert.ok(col >= 0, needle);
    return tokens[li][col];
  };
  const has = (scopes: string[], name: string) => assert.ok(scopes.some((s) => s.startsWith(name)), `${name} in ${JSON.stringify(scopes)}`);
  const hasNot = (scopes: string[], name: string) => assert.ok(!scopes.some((s) => s.startsWith(name)), `no ${name} in ${JSON.stringify(scopes)}`);

  has(at('From git@z Thu Jan  1 00:00:00 1970', 'From'), 'meta.separator.mbox');
  const subject = '[PATCH v2 1/3] drm/acme: keep the pages of imported buffers for CPU';
  has(at(`Subject: ${subject}`, 'Subject'), 'support.type.property-name.header');
  has(at(`Subject: ${subject}`, '[PATCH'), 'keyword.other.patch-prefix');
  has(at(`Subject: ${subject}`, 'drm/acme'), 'markup.heading.subject');
  has(at(' readback', 'readback'), 'string.unquoted.header-value.continuation');
  has(at('Cc: =?utf-8?q?Christian_K=C3=B6nig?= <christian.koenig@amd.example>,', '=?utf-8'), 'constant.character.escape.encoded-word');
  has(at('Message-Id: <20250114092133.4172-2-jane.doe@acme.example>', '<'), 'constant.other.message-id');
  // Cover letter and commit message text.
  hasNot(at('- Keep the page array in struct acme_import (Christian).', 'Keep'), 'markup.deleted');
  has(at('>From the review of v1: the scanout fix is now a separate patch.', 'From'), 'markup.quote');
  has(at('Jane Doe (3):', 'Jane'), 'meta.shortlog.author');
  has(at('Signed-off-by: Jane Doe <jane.doe@acme.example>', 'Signed-off-by'), 'keyword.other.trailer');
  has(at('Signed-off-by: Jane Doe <jane.doe@acme.example>', '<jane'), 'markup.underline.link.email');
  has(at('Link: https://lore.kernel.org/r/20250114092133.4172-2-jane.doe@acme.example', 'https'), 'markup.underline.link');
  // The diffstat.
  const stat = ' drivers/gpu/drm/acme/acme_dmabuf.c | 21 +++++++++++++++++++--';
  has(at(stat, 'drivers'), 'entity.name.filename');
  has(at(stat, '21'), 'constant.numeric.diffstat');
  has(at(stat, '+++'), 'markup.inserted.diffstat');
  has(at(stat, '--'), 'markup.deleted.diffstat');
  has(at(' 2 files changed, 21 insertions(+), 2 deletions(-)', '2 files'), 'meta.diffstat.summary');
  has(at('---', '---'), 'meta.separator.changelog');
  // The diff.
  has(at('diff --git a/drivers/gpu/drm/acme/acme_dmabuf.c b/drivers/gpu/drm/acme/acme_dmabuf.c', 'diff'), 'meta.diff.header.git');
  has(at('index d2b859f..9c3115c 100644', 'index'), 'meta.diff.header.extended');
  has(at('--- a/drivers/gpu/drm/acme/acme_dmabuf.c', '---'), 'meta.diff.header.from-file');
  has(at('+++ b/drivers/gpu/drm/acme/acme_dmabuf.c', '+++'), 'meta.diff.header.to-file');
  const hunk = '@@ -66,24 +67,40 @@ struct acme_import *acme_import_dmabuf(struct acme_device *adev, int fd)';
  has(at(hunk, '@@'), 'meta.diff.range.unified');
  has(at(hunk, '-66,24'), 'constant.numeric.range.old');
  has(at(hunk, 'struct acme_import'), 'meta.diff.section');
  const added = '+\tsgt = dma_buf_map_attachment(imp->attach, DMA_BIDIRECTIONAL);';
  has(at(added, '+'), 'punctuation.definition.inserted.diff');
  has(at(added, 'dma_buf_map'), 'markup.inserted.diff');
  has(at(added, 'dma_buf_map'), 'meta.embedded.line.c');
  const removed = '-\tsgt = dma_buf_map_attachment_unlocked(imp->attach, DMA_BIDIRECTIONAL);';
  has(at(removed, 'sgt'), 'markup.deleted.diff');
  has(at(' \tstruct scatterlist *sg;', 'struct'), 'meta.diff.context');
  // A context line that is empty in the source (a lone space) stays in the hunk.
  has(at('+\timp->npages = n;', 'imp'), 'markup.inserted.diff');
  // The signature ends the hunk.
  has(at('-- ', '-- '), 'meta.separator.signature');
  hasNot(at('-- ', '-- '), 'markup.deleted');
  hasNot(at('2.39.5', '2.39'), 'meta.diff');
});
