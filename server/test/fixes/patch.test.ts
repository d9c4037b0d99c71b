/**
 * Fixes inside patches (fixes/patch.ts): a fix computed on the C a patch
 * adds is mapped onto its `+` lines, hunk counts and later hunks' starts are
 * rewritten, and `git apply --check` accepts the result against the file it
 * targets (in a temporary repository); applying it gives the file with the
 * fix. A fix that touches a context line gives no patch fix.
 */
import { after, before, describe, test } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Analyzer } from '../../src/core/analyzer';
import type { Finding } from '../../src/core/types';
import { applyEdits, type Fix, FixSession, fixInPatch, hunkFixSource, patchFindingFixes, type PatchFixSource, unifiedDiff } from '../../src/fixes';
import { LineIndex } from '../../src/core/positions';
import { reviewPatchText } from '../../src/patch/review';
import { loadWasm } from '../../src/node/assets';

const RULES = path.resolve(__dirname, '../../../test/fixtures/rules');

let analyzer: Analyzer;
let tmp: string;
let hasGit = false;

before(async () => {
  analyzer = await Analyzer.create(loadWasm());
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'dmalens-patchfix-'));
  hasGit = spawnSync('git', ['--version']).status === 0;
});

after(() => {
  fs.rmSync(tmp, { recursive: true, force: true });
});

/** A git patch turning `pre` into `post` for `file`. */
function gitPatch(file: string, pre: string, post: string): string {
  return `diff --git a/${file} b/${file}\nindex 1111111..2222222 100644\n` + unifiedDiff(file, pre, post);
}

let repoCount = 0;
/** `git apply --check` then `git apply` of `patch` on a repository holding `file` = `pre`; the file afterwards. */
function gitApply(t: { skip(m: string): void }, file: string, pre: string, patch: string): string | undefined {
  if (!hasGit) {
    t.skip('git is not installed');
    return undefined;
  }
  const repo = path.join(tmp, `repo${repoCount++}`);
  fs.mkdirSync(path.join(repo, path.dirname(file)), { recursive: true });
  const git = (...args: string[]) => spawnSync('git', args, { cwd: repo, encoding: 'utf8', env: { ...process.env, GIT_CONFIG_NOSYSTEM: '1', HOME: tmp } });
  assert.equal(git('init', '-q').status, 0);
  fs.writeFileSync(path.join(repo, file), pre);
  fs.writeFileSync(path.join(repo, 'fix.patch'), patch);
  const check = git('apply', '--check', 'fix.patch');
  assert.equal(check.status, 0, `git apply --check refused the patch:\n${check.stderr}\n${patch}`);
  const apply = git('apply', 'fix.patch');
  assert.equal(apply.status, 0, apply.stderr);
  return fs.readFileSync(path.join(repo, file), 'utf8');
}

function lines(text: string): string[] {
  return text.split('\n');
}

/** `text` without the lines from the one containing `from` through the one containing `to`. */
function without(text: string, from: string, to: string): string {
  const ls = lines(text);
  const a = ls.findIndex((l) => l.includes(from));
  const b = ls.findIndex((l, i) => i >= a && l.includes(to));
  assert.ok(a >= 0 && b >= a, `${from} .. ${to}`);
  return [...ls.slice(0, a), ...ls.slice(b + 1)].join('\n');
}

function fixesOn(text: string, rule: string): { finding: Finding; fixes: Fix[] } {
  const doc = analyzer.parse(text);
  try {
    const finding = analyzer.analyze(doc).findings.find((f) => f.rule === rule);
    assert.ok(finding, `no ${rule} finding`);
    return { finding, fixes: new FixSession(doc).fixesFor(finding) };
  } finally {
    doc.delete();
  }
}

/** The fixes of `rule` computed on the hunks as the review analyses them. */
function hunkFixes(patch: string, file: string, rule: string): { source: PatchFixSource; fixes: Fix[] } {
  const source = hunkFixSource(patch, file);
  assert.ok(source, 'no hunks for the file');
  return { source, fixes: fixesOn(source.text, rule).fixes };
}

describe('fixInPatch', () => {
  test('DMABUF-ERRPTR: a line rewritten in place (whole-file and hunk mode), git apply takes it', (t) => {
    const file = 'drivers/dma-buf/acme/export.c';
    const post = fs.readFileSync(path.join(RULES, 'DMABUF-ERRPTR/bad-export-null.c'), 'utf8');
    const pre = without(post, 'dmabuf = dma_buf_export(', 'return -ENOMEM;');
    const patch = gitPatch(file, pre, post);
    const whole = fixesOn(post, 'DMABUF-ERRPTR').fixes[0];
    const expected = applyEdits(post, whole.edits);
    const pf = fixInPatch(patch, { file, text: post }, whole);
    assert.ok(pf, 'no patch fix (whole-file mode)');
    assert.equal(pf.title, whole.title);
    assert.equal(pf.preferred, true);
    assert.match(pf.text, /^\+\tif \(IS_ERR\(dmabuf\)\) \/\* expect: DMABUF-ERRPTR \*\/$/m);
    assert.match(pf.text, /^\+\t\treturn PTR_ERR\(dmabuf\);$/m);
    // Same line count: the header is unchanged.
    assert.equal(/^@@ .* @@/m.exec(pf.text)![0], /^@@ .* @@/m.exec(patch)![0]);
    assert.equal(gitApply(t, file, pre, pf.text), expected);

    const h = hunkFixes(patch, file, 'DMABUF-ERRPTR');
    const pf2 = fixInPatch(patch, h.source, h.fixes[0]);
    assert.ok(pf2, 'no patch fix (hunk mode)');
    assert.equal(pf2.text, pf.text);
  });

  test('DMABUF-PIN-BALANCE: new lines become + lines, the hunk count and the next hunk start move', (t) => {
    const file = 'drivers/infiniband/acme/umem.c';
    const post = fs.readFileSync(path.join(RULES, 'DMABUF-PIN-BALANCE/bad-errpath-leak.c'), 'utf8');
    // The patch adds the whole function, and (second hunk) drops a comment from the release path.
    let pre = without(post, 'int acme_umem_get_pinned(', '\treturn err;\n}'.split('\n')[0]);
    pre = pre.replace('\tdma_buf_detach(dmabuf, umem->attach);\n}', '\t/* the attachment goes last */\n\tdma_buf_detach(dmabuf, umem->attach);\n}');
    // `without` cut through `return err;` only: drop the function's closing brace too.
    pre = pre.replace(/\n\n}\n\nvoid acme_umem_release/, '\n\nvoid acme_umem_release');
    const patch = gitPatch(file, pre, post);
    const headers = [...patch.matchAll(/^@@ -(\d+),(\d+) \+(\d+),(\d+) @@/gm)].map((m) => m.slice(1).map(Number));
    assert.equal(headers.length, 2, patch);
    const h = hunkFixes(patch, file, 'DMABUF-PIN-BALANCE');
    const fix = h.fixes.find((f) => f.preferred)!;
    assert.match(fix.title, /err_unpin/);
    const pf = fixInPatch(patch, h.source, fix);
    assert.ok(pf, `no patch fix:\n${patch}`);
    const after = [...pf.text.matchAll(/^@@ -(\d+),(\d+) \+(\d+),(\d+) @@/gm)].map((m) => m.slice(1).map(Number));
    assert.deepEqual(after[0], [headers[0][0], headers[0][1], headers[0][2], headers[0][3] + 2]);
    assert.deepEqual(after[1], [headers[1][0], headers[1][1], headers[1][2] + 2, headers[1][3]]);
    assert.match(pf.text, /^\+err_unpin:\n\+\tdma_buf_unpin\(attach\);\n\+err_unlock:$/m);
    assert.match(pf.text, /^\+\t\tgoto err_unpin;$/m);
    const whole = fixesOn(post, 'DMABUF-PIN-BALANCE').fixes.find((f) => f.preferred)!;
    assert.equal(gitApply(t, file, pre, pf.text), applyEdits(post, whole.edits));
  });

  test('DMABUF-LOCKING: lock and unlock lines around an added call', (t) => {
    const file = 'drivers/gpu/drm/acme/fb.c';
    const post = fs.readFileSync(path.join(RULES, 'DMABUF-LOCKING/bad-pin-no-lock.c'), 'utf8');
    const pre = without(post, 'int acme_fb_prepare(', 'fb->pinned = true;');
    const patch = gitPatch(file, pre.replace('\treturn 0;\n}\n\nvoid acme_fb_cleanup', 'void acme_fb_cleanup'), post);
    const preImage = pre.replace('\treturn 0;\n}\n\nvoid acme_fb_cleanup', 'void acme_fb_cleanup');
    const source = hunkFixSource(patch, file)!;
    const doc = analyzer.parse(source.text);
    let fix: Fix | undefined;
    try {
      const idx = new LineIndex(source.text);
      const f = analyzer.analyze(doc).findings.find((x) => x.rule === 'DMABUF-LOCKING' && /dma_buf_pin\(/.test(source.text.slice(idx.lineStart(idx.lineOf(x.span.start)), idx.lineEnd(idx.lineOf(x.span.start)))))!;
      fix = new FixSession(doc).fixesFor(f).find((x) => /Take dma_resv_lock/.test(x.title));
    } finally {
      doc.delete();
    }
    assert.ok(fix);
    const pf = fixInPatch(patch, source, fix);
    assert.ok(pf, patch);
    assert.match(pf.text, /^\+\tdma_resv_lock\(fb->attach->dmabuf->resv, NULL\);\n\+\tret = dma_buf_pin\(fb->attach\);.*\n\+\tdma_resv_unlock\(fb->attach->dmabuf->resv\);$/m);
    const out = gitApply(t, file, preImage, pf.text);
    if (out !== undefined) assert.match(out, /\tdma_resv_lock\(fb->attach->dmabuf->resv, NULL\);\n\tret = dma_buf_pin/);
  });

  test('a fix that touches a context line is not mapped', () => {
    const file = 'drivers/dma-buf/acme/export.c';
    const post = fs.readFileSync(path.join(RULES, 'DMABUF-ERRPTR/bad-export-null.c'), 'utf8');
    // Only the return line is added; the `if (!dmabuf)` line the fix rewrites is context.
    const pre = post.replace('\t\treturn -ENOMEM;', '\t\treturn -EINVAL;');
    const patch = gitPatch(file, pre, post);
    const fix = fixesOn(post, 'DMABUF-ERRPTR').fixes[0];
    assert.equal(fixInPatch(patch, { file, text: post }, fix), undefined);
    // Another file's name, or a line map that says "made up": nothing either.
    assert.equal(fixInPatch(patch, { file: 'drivers/other.c', text: post }, fix), undefined);
    assert.equal(fixInPatch(patch, { file, text: post, postImageLine: () => undefined }, fix), undefined);
  });

  test('encoded mail bodies are not edited', () => {
    const file = 'drivers/dma-buf/acme/export.c';
    const post = fs.readFileSync(path.join(RULES, 'DMABUF-ERRPTR/bad-export-null.c'), 'utf8');
    const pre = without(post, 'dmabuf = dma_buf_export(', 'return -ENOMEM;');
    const patch = 'From: A <a@example.org>\nSubject: [PATCH] x\nContent-Transfer-Encoding: quoted-printable\n\n' + gitPatch(file, pre, post);
    const fix = fixesOn(post, 'DMABUF-ERRPTR').fixes[0];
    assert.equal(fixInPatch(patch, { file, text: post }, fix), undefined);
  });

  test('a patch mail: the review finding on an added line gets its fix, and git apply takes the mail', (t) => {
    const file = 'drivers/pci/acme/pipeline.c';
    const post = fs.readFileSync(path.join(RULES, 'P2P-DISTANCE-BOOL/bad-truthy-variable.c'), 'utf8');
    const pre = post.replace(/\tif \(dist\).*\n.*\n\telse\n.*\n/, '');
    assert.notEqual(pre, post);
    const mail = [
      'From 0123456789abcdef0123456789abcdef01234567 Mon Sep 17 00:00:00 2001',
      'From: Dev Eloper <dev@example.org>',
      'Date: Mon, 3 Mar 2025 10:00:00 +0100',
      'Subject: [PATCH] acme: use p2p when the provider is reachable',
      '',
      'Pick the peer-to-peer path from the distance.',
      '',
      'Signed-off-by: Dev Eloper <dev@example.org>',
      '---',
      gitPatch(file, pre, post) + '-- ',
      '2.43.0',
      '',
    ].join('\n');
    const review = reviewPatchText(mail, analyzer);
    const pfind = review.patches.flatMap((p) => p.findings).find((f) => f.rule === 'P2P-DISTANCE-BOOL');
    assert.ok(pfind, JSON.stringify(review.diagnostics));
    assert.equal(pfind.on, 'added');
    const fixes = patchFindingFixes(mail, pfind, analyzer);
    assert.equal(fixes.length, 1);
    assert.equal(fixes[0].preferred, true);
    assert.match(fixes[0].text, /^\+\tif \(dist >= 0\) \/\* expect: P2P-DISTANCE-BOOL \*\/$/m);
    const out = gitApply(t, file, pre, fixes[0].text);
    if (out !== undefined) assert.equal(reviewPatchText(fixes[0].text, analyzer).patches[0].findings.filter((f) => f.rule === 'P2P-DISTANCE-BOOL').length, 0);
  });
});
