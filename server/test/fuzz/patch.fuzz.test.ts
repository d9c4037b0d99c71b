/**
 * Mutation fuzzing of patch review (server/src/patch): diffs, format-patch
 * mails, mbox and b4 series, in every encoding, broken in the ways mail
 * breaks them: truncated, lines lost or reordered, hunk counts that lie,
 * base64 and quoted-printable with bad characters, charsets that do not
 * exist, CRLF, NUL, latin-1. Review never throws (its catch-all diagnostic,
 * "patch review failed", counts as a crash here), ends within the budget,
 * and every span it reports lies in the file. The reply drafter and the
 * in-patch fixes run on what it finds.
 *
 * Seeded and reproducible: DMALENS_FUZZ_SEED=S, DMALENS_FUZZ_RUNS=N (npm run fuzz).
 */
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as fc from 'fast-check';
import { Analyzer } from '../../src/core/analyzer';
import { LineIndex } from '../../src/core/positions';
import { decodeBytes } from '../../src/core/text';
import { loadWasm } from '../../src/node/assets';
import { patchFindingFixes } from '../../src/fixes/patch';
import { draftReply } from '../../src/patch/reply';
import { looksLikePatch, type PatchReview, reviewPatchText } from '../../src/patch/review';
import { BUDGET_MS, fuzzRuns, FUZZ_SEED, measure, Slowest } from './common';

const RUNS = fuzzRuns(150);
const REPO = path.resolve(__dirname, '../../../..');
const FIX = path.join(REPO, 'server/test/fixtures/patch');
const TREE = path.join(FIX, 'tree');

function seeds(): string[] {
  const out: string[] = [];
  const dirs = [FIX, path.join(REPO, 'server/test/fixtures/hostile'), path.join(REPO, 'examples/patches')];
  for (const d of dirs) {
    if (!fs.existsSync(d)) continue;
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      if (!e.isFile() || !/\.(diff|patch|eml|mbox|mbx)$/.test(e.name)) continue;
      const t = decodeBytes(fs.readFileSync(path.join(d, e.name)));
      if (!('binary' in t)) out.push(t.text);
    }
  }
  return out;
}

const SEEDS = seeds();
const analyzerP = Analyzer.create(loadWasm());
const slowest = new Slowest();
let tried = 0;

const fromTree = (p: string): string | undefined => {
  const f = path.join(TREE, p);
  return !f.startsWith(TREE + path.sep) || !fs.existsSync(f) || !fs.statSync(f).isFile() ? undefined : fs.readFileSync(f, 'utf8');
};

function inText(s: { start: number; end: number }, text: string, what: string): void {
  assert.ok(Number.isInteger(s.start) && Number.isInteger(s.end) && s.start >= 0 && s.start <= s.end && s.end <= text.length, `${what} span ${s.start}-${s.end} outside the file (${text.length})`);
}

async function check(text: string, what: string, withTree: boolean): Promise<PatchReview> {
  const analyzer = await analyzerP;
  tried++;
  const { value: r, ms, cpuMs } = measure(() => {
    looksLikePatch(text);
    return reviewPatchText(text, analyzer, withTree ? { readTarget: fromTree, includeExisting: true } : {});
  });
  slowest.note(ms, what, cpuMs);
  assert.ok(cpuMs < BUDGET_MS, `${what}: ${cpuMs} ms of CPU (${ms} ms)`);
  const crashed = r.diagnostics.filter((d) => /patch review failed/.test(d.message));
  assert.deepEqual(crashed, [], 'the review threw');
  for (const d of r.diagnostics) inText(d.span, text, 'diagnostic');
  const index = new LineIndex(text);
  for (const p of r.patches) {
    inText(p.span, text, 'patch');
    for (const f of p.findings) {
      inText(f.span, text, 'finding');
      for (const rel of f.related) inText(rel, text, 'related');
      assert.ok(f.location.line >= 1 && f.location.line <= index.lineCount && f.location.column >= 1, 'location in the file');
    }
    if (p.findings.length) {
      const reply = draftReply(p, p.findings, text);
      assert.doesNotMatch(reply, /could not draft this reply/, 'the reply drafter threw');
      for (const f of p.findings.slice(0, 3)) {
        for (const fix of patchFindingFixes(text, f, analyzer)) for (const e of fix.edits) inText(e, text, 'fix edit');
      }
    }
  }
  return r;
}

/** Ways mail and patches break, applied to a realistic seed. */
const op = fc.oneof(
  // Bytes: a character replaced, NUL, a bidi control, latin-1, a lone surrogate.
  fc.record({ k: fc.constant('flip' as const), at: fc.nat(), ch: fc.constantFrom('\0', '\u202e', '\xe9', '\ud800', '=', '@', '+', '-', ' ', '\t', '\r', '\n', '\\', 'Z') }),
  // Truncation anywhere.
  fc.record({ k: fc.constant('cut' as const), at: fc.nat() }),
  // Lines lost, duplicated, reordered.
  fc.record({ k: fc.constant('dropLine' as const), at: fc.nat() }),
  fc.record({ k: fc.constant('dupLine' as const), at: fc.nat(), n: fc.integer({ min: 1, max: 50 }) }),
  fc.record({ k: fc.constant('swapLines' as const), a: fc.nat(), b: fc.nat() }),
  // Hunk headers whose counts and starts lie.
  fc.record({ k: fc.constant('hunkCounts' as const), which: fc.nat(), nums: fc.array(fc.oneof(fc.nat({ max: 5 }), fc.nat({ max: 100000 }), fc.constant(2 ** 31)), { minLength: 4, maxLength: 4 }) }),
  fc.record({ k: fc.constant('hunkHeader' as const), which: fc.nat(), s: fc.constantFrom('@@ -1 +1 @@', '@@ -0,0 +0,0 @@', '@@ @@', '@@ -a,b +c,d @@', '@@ -1,3 +1,3', '@@@ -1,2 -1,2 +1,3 @@@', '@@ -99999999999999999999,1 +1,1 @@') }),
  // Encodings: broken base64 and quoted-printable lines, charsets that do not exist.
  fc.record({ k: fc.constant('b64' as const), at: fc.nat(), s: fc.constantFrom('!!!!', '=', '==', '====', 'A', '\u00e9', '-_', 'QQ=Q') }),
  fc.record({ k: fc.constant('qp' as const), at: fc.nat(), s: fc.constantFrom('=', '=Z', '=4', '=\n', '=C3', '=FF=FE', '=0D=0A', '=00') }),
  fc.record({ k: fc.constant('header' as const), s: fc.constantFrom('Content-Transfer-Encoding: base64', 'Content-Transfer-Encoding: quoted-printable', 'Content-Transfer-Encoding: x-uuencode', 'Content-Type: text/plain; charset="x-no-such"', 'Content-Type: text/plain; charset=utf-16', 'Content-Type: multipart/mixed; boundary=""', 'Content-Type: multipart/mixed', 'Subject: =?utf-8?B?!!!?=', 'Subject: =?x-bad?Q?=ZZ?=', 'Subject: [PATCH 99999999999/1] x', 'From nobody Mon Jan  1 00:00:00 2024') }),
  // Whole-file transformations.
  fc.record({ k: fc.constant('crlf' as const) }),
  fc.record({ k: fc.constant('lf' as const) }),
  fc.record({ k: fc.constant('latin1' as const) }),
  fc.record({ k: fc.constant('concat' as const), seed: fc.nat() }),
);

type Op = typeof op extends fc.Arbitrary<infer T> ? T : never;

function lines(t: string): string[] {
  return t.split('\n');
}

function apply(text: string, o: Op): string {
  const n = text.length;
  switch (o.k) {
    case 'flip': {
      if (!n) return o.ch;
      const i = o.at % n;
      return text.slice(0, i) + o.ch + text.slice(i + 1);
    }
    case 'cut':
      return text.slice(0, n ? o.at % n : 0);
    case 'dropLine': {
      const l = lines(text);
      l.splice(o.at % l.length, 1);
      return l.join('\n');
    }
    case 'dupLine': {
      const l = lines(text);
      const i = o.at % l.length;
      l.splice(i, 0, ...new Array<string>(o.n).fill(l[i]));
      return l.join('\n');
    }
    case 'swapLines': {
      const l = lines(text);
      const a = o.a % l.length;
      const b = o.b % l.length;
      [l[a], l[b]] = [l[b], l[a]];
      return l.join('\n');
    }
    case 'hunkCounts': {
      const headers = [...text.matchAll(/^@@ -\d+(?:,\d+)? \+\d+(?:,\d+)? @@/gm)];
      if (!headers.length) return text;
      const h = headers[o.which % headers.length];
      const [a, b, c, d] = o.nums;
      return text.slice(0, h.index) + `@@ -${a},${b} +${c},${d} @@` + text.slice(h.index! + h[0].length);
    }
    case 'hunkHeader': {
      const headers = [...text.matchAll(/^@@ [^\n]*@@/gm)];
      if (!headers.length) return text;
      const h = headers[o.which % headers.length];
      return text.slice(0, h.index) + o.s + text.slice(h.index! + h[0].length);
    }
    case 'b64': {
      // Into a line that looks like base64 (a mail body), else anywhere.
      const l = lines(text);
      const b64 = l.map((x, i) => (/^[A-Za-z0-9+/]{20,}={0,2}\r?$/.test(x) ? i : -1)).filter((i) => i >= 0);
      const i = b64.length ? b64[o.at % b64.length] : o.at % l.length;
      const at = l[i].length ? o.at % l[i].length : 0;
      l[i] = l[i].slice(0, at) + o.s + l[i].slice(at);
      return l.join('\n');
    }
    case 'qp': {
      const i = n ? o.at % n : 0;
      return text.slice(0, i) + o.s + text.slice(i);
    }
    case 'header': {
      // Replaces the header of the same name in the first message, or adds it after the first line.
      const name = o.s.split(':')[0];
      const re = new RegExp(`^${name}:.*$`, 'm');
      if (!o.s.startsWith('From ') && re.test(text)) return text.replace(re, o.s);
      const nl = text.indexOf('\n');
      return nl < 0 ? `${o.s}\n${text}` : text.slice(0, nl + 1) + o.s + '\n' + text.slice(nl + 1);
    }
    case 'crlf':
      return text.replace(/\r?\n/g, '\r\n');
    case 'lf':
      return text.replace(/\r\n/g, '\n');
    case 'latin1':
      // The UTF-8 bytes read as latin-1 (what a wrong charset does).
      return Buffer.from(text, 'utf8').toString('latin1');
    case 'concat':
      return text + '\n' + SEEDS[o.seed % SEEDS.length];
  }
}

const mutated = fc.record({ seed: fc.nat(), ops: fc.array(op, { minLength: 1, maxLength: 8 }), tree: fc.boolean() }).map(({ seed, ops, tree }) => {
  let t = SEEDS[seed % SEEDS.length];
  for (const o of ops) t = apply(t, o);
  return { text: t, tree, ops: ops.map((o) => o.k).join(',') };
});

test('fuzz: patch review of mutated patches and mails', async () => {
  assert.ok(SEEDS.length >= 8, `patch seeds (${SEEDS.length})`);
  await fc.assert(
    fc.asyncProperty(mutated, async ({ text, tree, ops }) => {
      await check(text, `mutated patch (${ops})`, tree);
    }),
    { numRuns: RUNS, seed: FUZZ_SEED },
  );
});

test('fuzz: patch review of random text shaped like a patch', async () => {
  const line = fc.oneof(
    fc.constantFrom('diff --git a/x.c b/x.c', '--- a/x.c', '+++ b/x.c', '--- /dev/null', '+++ /dev/null', 'new file mode 100644', 'deleted file mode 100644', 'rename from a.c', 'rename to b.c', 'index 0000000..1111111 100644', 'Binary files a/x.bin and b/x.bin differ', 'GIT binary patch', 'literal 0', '\\ No newline at end of file', '-- ', '2.43.0', 'From: a <a@b>', 'Subject: [PATCH 1/2] drm: x', 'Content-Transfer-Encoding: base64', 'Content-Transfer-Encoding: quoted-printable', 'MIME-Version: 1.0', 'Content-Type: multipart/mixed; boundary="b"', '--b', '--b--', ''),
    fc.tuple(fc.nat({ max: 40 }), fc.nat({ max: 9 }), fc.nat({ max: 40 }), fc.nat({ max: 9 }), fc.string({ maxLength: 20 })).map(([a, b, c, d, s]) => `@@ -${a},${b} +${c},${d} @@ ${s}`),
    fc.constantFrom('+', '-', ' ').chain((p) => fc.constantFrom('\tdma_buf_pin(a);', '\tdma_resv_lock(r, NULL);', '\tsg = dma_buf_map_attachment(a, d);', '{', '}', 'static int f(struct dma_buf_attachment *a)', '\tif (IS_ERR(sg)) goto out;', 'out:', '\treturn 0;').map((s) => p + s)),
    fc.string({ maxLength: 60 }),
  );
  await fc.assert(
    fc.asyncProperty(fc.array(line, { maxLength: 120 }), fc.constantFrom('\n', '\r\n'), fc.boolean(), async (ls, eol, tree) => {
      await check(ls.join(eol), 'random patch', tree);
    }),
    { numRuns: RUNS * 3, seed: FUZZ_SEED },
  );
});

test('hostile patches: huge, empty, binary, endless headers', async () => {
  const seed = SEEDS[0];
  const cases: Array<[string, string]> = [
    ['empty', ''],
    ['only a hunk header', '@@ -1,1 +1,1 @@'],
    // Found by this fuzzer (seed 7): the in-patch fixes read the last line of a file's last hunk, which had none.
    ['an empty last hunk after a finding', 'diff --git a/x.c b/x.c\n@@ -0,0 +0,0 @@ \n+\tdma_buf_pin(a);\n@@ -0,0 +0,0 @@ '],
    // Found by this fuzzer: a start past 2^53 hung the offset search of apply.ts.
    ['a hunk starting past 2^53', '--- a/drivers/gpu/drm/acme/acme_dmabuf.c\n+++ b/drivers/gpu/drm/acme/acme_dmabuf.c\n@@ -99999999999999999999,1 +1,1 @@\n-a\n+dma_buf_pin(a);\n'],
    ['a hunk claiming 2^31 lines', `--- a/x.c\n+++ b/x.c\n@@ -1,2147483647 +1,2147483647 @@\n+dma_buf_pin(a);\n`],
    ['100,000 one-line hunks', '--- a/x.c\n+++ b/x.c\n' + '@@ -1 +1 @@\n-a\n+dma_buf_pin(a);\n'.repeat(100000)],
    ['a 2 MB added line', `--- a/x.c\n+++ b/x.c\n@@ -0,0 +1,1 @@\n+void f(void) { dma_buf_pin(a); ${'x = 1; '.repeat(300000)}}\n`],
    ['100,000 header lines', 'From: a\n' + 'X-Junk: y\n'.repeat(100000) + '\n' + seed],
    ['100,000 folded header lines', 'Subject: [PATCH] x\n' + ' folded\n'.repeat(100000) + '\n' + seed],
    ['100,000 nested multiparts', 'Content-Type: multipart/mixed; boundary="a"\n\n' + '--a\nContent-Type: multipart/mixed; boundary="a"\n\n'.repeat(100000)],
    ['a 1 MB base64 line', 'Subject: [PATCH] x\nContent-Transfer-Encoding: base64\n\n' + 'QUFB'.repeat(250000) + '\n'],
    ['a 1 MB quoted-printable soft line', 'Subject: [PATCH] x\nContent-Transfer-Encoding: quoted-printable\n\n' + 'a=\n'.repeat(300000)],
    ['ELF bytes as latin-1', Buffer.from([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1, 0, ...new Array(200).fill(0).map((_, i) => (i * 37) & 255)]).toString('latin1')],
    ['a series of 2,000 copies (up to 4 MB)', (seed + '\n').repeat(Math.max(1, Math.min(2000, Math.floor(4e6 / (seed.length + 1)))))],
  ];
  for (const [what, text] of cases) await check(text, what, true);
});

test('fuzz report: patch', () => {
  console.log(`fuzz patch: ${RUNS} runs per property, seed ${FUZZ_SEED}, ${tried} inputs; slowest ${slowest}`);
});
