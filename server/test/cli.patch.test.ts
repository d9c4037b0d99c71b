/**
 * `dmalens check` on patches and patch mail, `--terse` for b4, `-` for
 * standard input, `--tree` / kernel-tree whole-file mode, and `dmalens reply`,
 * run as a child process like cli.test.ts (the built command).
 */
import { after, before, describe, test } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Analyzer } from '../src/core/analyzer';
import { loadWasm } from '../src/node/assets';
import { safeRelativePath, TreeReader } from '../src/node/tree';
import { draftReply } from '../src/patch/reply';
import { reviewPatchText } from '../src/patch/review';

const BIN = path.resolve(__dirname, '..', '..', 'bin', 'dmalens.js');
const FIX = path.resolve(__dirname, '..', '..', 'test', 'fixtures', 'patch');
const TREE = path.join(FIX, 'tree');

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

let tmp: string;

function dmalens(args: string[], o: { cwd?: string; input?: string | Buffer } = {}): Run {
  const r = spawnSync(process.execPath, [BIN, ...args], {
    cwd: o.cwd ?? FIX,
    input: o.input ?? '',
    encoding: 'utf8',
    timeout: 60_000,
  });
  if (r.error) throw r.error;
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** `file:line:col: severity: [RULE]` of each text line (the messages belong to the rules). */
function brief(stdout: string): string[] {
  return stdout
    .split('\n')
    .filter(Boolean)
    .map((l) => {
      const m = /^(.*?:\d+:\d+: \w+): .* \[([A-Z0-9-]+)\]$/.exec(l);
      assert.ok(m, `not a gcc-style line: ${l}`);
      return `${m[1]} [${m[2]}]`;
    });
}

const DMABUF = 'drivers/gpu/drm/acme/acme_dmabuf.c';
const P2P = 'drivers/gpu/drm/acme/acme_p2p.c';
const SCANOUT = 'drivers/gpu/drm/acme/acme_scanout.c';

/** Adds a comment in acme_plane_cleanup(); acme_plane_prepare() above has had sg_page() all along. */
const COMMENT_PATCH = [
  `diff --git a/${SCANOUT} b/${SCANOUT}`,
  `--- a/${SCANOUT}`,
  `+++ b/${SCANOUT}`,
  '@@ -40,6 +40,7 @@ void acme_plane_cleanup(struct acme_plane *plane)',
  ' void acme_plane_cleanup(struct acme_plane *plane)',
  ' {',
  ' \tif (!plane->sgt)',
  ' \t\treturn;',
  ' ',
  '+\t/* The engine no longer scans out of this buffer. */',
  ' \tdma_buf_unmap_attachment_unlocked(plane->attach, plane->sgt,',
  '',
].join('\n');

const read = (name: string) => fs.readFileSync(path.join(FIX, name), 'utf8');

before(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'dmalens-cli-patch-'));
});

after(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe('check on patch files', () => {
  test('patches and mail in every encoding: exact lines and byte columns in the file', () => {
    const r = dmalens(['check', 'acme-1.diff', 'acme-1-qp.eml', 'acme-1-base64.eml', 'acme-1-crlf.eml', 'acme-1-latin1.eml', 'acme-v2.mbx', 'p2p-longline-qp.patch']);
    assert.equal(r.stderr, '');
    assert.equal(r.code, 1);
    assert.deepEqual(brief(r.stdout), [
      'acme-1.diff:29:9: error [DMABUF-LOCKING]',
      'acme-1.diff:49:22: error [DMABUF-SG-PAGE]',
      // quoted-printable: `=3D` before the call
      'acme-1-qp.eml:62:11: error [DMABUF-LOCKING]',
      'acme-1-qp.eml:82:24: error [DMABUF-SG-PAGE]',
      // base64: where the call's first byte is encoded
      'acme-1-base64.eml:71:18: error [DMABUF-LOCKING]',
      'acme-1-base64.eml:81:47: error [DMABUF-SG-PAGE]',
      'acme-1-crlf.eml:56:9: error [DMABUF-LOCKING]',
      'acme-1-crlf.eml:76:22: error [DMABUF-SG-PAGE]',
      'acme-1-latin1.eml:56:9: error [DMABUF-LOCKING]',
      'acme-1-latin1.eml:76:22: error [DMABUF-SG-PAGE]',
      'acme-v2.mbx:94:9: error [DMABUF-LOCKING]',
      'acme-v2.mbx:114:22: error [DMABUF-SG-PAGE]',
      'acme-v2.mbx:173:6: warning [P2P-DISTANCE-BOOL]',
      'p2p-longline-qp.patch:34:25: warning [P2P-DISTANCE-BOOL]',
    ]);
  });

  test('JSON: file and line in the patch file, target in the patched source, the subject', () => {
    const r = dmalens(['check', '--format', 'json', 'acme-v2.mbx']);
    assert.equal(r.code, 1);
    const doc = JSON.parse(r.stdout);
    assert.deepEqual(doc.errors, []);
    assert.deepEqual(
      doc.findings.map((f: any) => [f.file, f.line, f.column, f.endLine, f.endColumn, f.rule, f.severity, f.target, f.subject, f.existing]),
      [
        ['acme-v2.mbx', 94, 9, 94, 63, 'DMABUF-LOCKING', 'error', { file: DMABUF, line: 80 }, 'drm/acme: keep the pages of imported buffers for CPU readback', undefined],
        ['acme-v2.mbx', 114, 22, 114, 33, 'DMABUF-SG-PAGE', 'error', { file: DMABUF, line: 100 }, 'drm/acme: keep the pages of imported buffers for CPU readback', undefined],
        ['acme-v2.mbx', 173, 6, 173, 53, 'P2P-DISTANCE-BOOL', 'warning', { file: P2P, line: 33 }, 'drm/acme: enable peer-to-peer DMA when the topology allows it', undefined],
      ],
    );
    // The public fields keep their names and order; the patch fields come after them.
    assert.deepEqual(Object.keys(doc.findings[1]), ['file', 'line', 'column', 'endLine', 'endColumn', 'rule', 'severity', 'message', 'function', 'related', 'target', 'subject']);
    assert.deepEqual(doc.findings[1].related.map((x: any) => x.line), [94]);
    // A C file's findings have no patch fields.
    fs.writeFileSync(path.join(tmp, 'plain.c'), 'void f(struct dma_buf_attachment *a)\n{\n\tdma_buf_map_attachment(a, DMA_TO_DEVICE);\n}\n');
    const c = JSON.parse(dmalens(['check', '--format', 'json', path.join(tmp, 'plain.c')]).stdout);
    assert.ok(c.findings.length > 0);
    for (const f of c.findings) assert.equal('target' in f || 'subject' in f, false);
  });

  test('a file given by name is a patch by its extension, else by its text; .c and .h stay C', () => {
    fs.writeFileSync(path.join(tmp, 'series.txt'), read('acme-1.diff'));
    fs.writeFileSync(path.join(tmp, 'odd.c'), read('acme-1.diff'));
    const r = dmalens(['check', path.join(tmp, 'series.txt'), path.join(tmp, 'odd.c')]);
    assert.deepEqual(brief(r.stdout), [`${path.join(tmp, 'series.txt')}:29:9: error [DMABUF-LOCKING]`, `${path.join(tmp, 'series.txt')}:49:22: error [DMABUF-SG-PAGE]`]);
    // A directory walk still looks at .c and .h files only.
    fs.mkdirSync(path.join(tmp, 'walk'), { recursive: true });
    fs.copyFileSync(path.join(FIX, 'acme-1.diff'), path.join(tmp, 'walk', 'acme-1.diff'));
    assert.deepEqual(dmalens(['check', path.join(tmp, 'walk')]), { code: 0, stdout: '', stderr: '' });
  });

  test('- reads standard input: a patch when it looks like one, else C', () => {
    const r = dmalens(['check', '-'], { input: read('acme-1-qp.eml') });
    assert.equal(r.code, 1);
    assert.deepEqual(brief(r.stdout), ['<stdin>:62:11: error [DMABUF-LOCKING]', '<stdin>:82:24: error [DMABUF-SG-PAGE]']);
    const c = dmalens(['check', '--format', 'json', '-'], { input: 'void f(struct dma_buf_attachment *a)\n{\n\tdma_buf_map_attachment(a, DMA_TO_DEVICE);\n}\n' });
    const doc = JSON.parse(c.stdout);
    assert.deepEqual(doc.findings.map((f: any) => [f.file, f.line, f.rule, 'target' in f]), [['<stdin>', 3, 'DMABUF-LOCKING', false]]);
    // Files and standard input together.
    const both = dmalens(['check', 'acme-1.diff', '-'], { input: read('p2p-longline-qp.patch') });
    assert.deepEqual(brief(both.stdout), ['acme-1.diff:29:9: error [DMABUF-LOCKING]', 'acme-1.diff:49:22: error [DMABUF-SG-PAGE]', '<stdin>:34:25: warning [P2P-DISTANCE-BOOL]']);
    // Nothing on standard input: nothing to say.
    assert.deepEqual(dmalens(['check', '-']), { code: 0, stdout: '', stderr: '' });
  });

  test('a broken patch: its problems on stderr with their line, what could be read is reviewed', () => {
    const cut = read('acme-1.diff').split('\n').slice(0, 40).join('\n') + '\n';
    fs.writeFileSync(path.join(tmp, 'cut.patch'), cut);
    const r = dmalens(['check', path.join(tmp, 'cut.patch')]);
    // The function is cut short with the hunk: judged from part of it, a warning; the broken patch is not an I/O error.
    assert.equal(r.code, 0);
    assert.deepEqual(brief(r.stdout), [`${path.join(tmp, 'cut.patch')}:29:9: warning [DMABUF-LOCKING]`]);
    assert.match(r.stderr, /^dmalens: .*cut\.patch: line 41: error: the text ends inside the hunk @@ -66,24 \+67,40 @@/);
    const j = JSON.parse(dmalens(['check', '--format', 'json', path.join(tmp, 'cut.patch')]).stdout);
    assert.equal(j.errors.length, 1);
    assert.match(j.errors[0].message, /^line 41: error: the text ends inside the hunk/);
  });
});

describe('check --terse (b4 per-patch check)', () => {
  test('one line per finding at its place in the patched file; exit 1 with an error', () => {
    const r = dmalens(['check', '--terse', '-'], { input: read('acme-v2.mbx') });
    assert.equal(r.code, 1);
    assert.equal(r.stderr, '');
    const lines = r.stdout.split('\n').filter(Boolean);
    assert.deepEqual(
      lines.map((l) => l.replace(/: (ERROR|WARNING|INFO): .* \[/, ': $1: [')),
      [`${DMABUF}:80: ERROR: [DMABUF-LOCKING]`, `${DMABUF}:100: ERROR: [DMABUF-SG-PAGE]`, `${P2P}:33: WARNING: [P2P-DISTANCE-BOOL]`],
    );
    // b4 marks lines holding "ERROR:" as failures, the others as warnings.
    assert.equal(lines.filter((l) => l.includes('ERROR:')).length, 2);
  });

  test('a clean patch: no output at all and exit 0; warnings only: exit 0', () => {
    const text = read('acme-v2.mbx');
    const fix = text.slice(text.lastIndexOf('From git@z'));
    assert.deepEqual(dmalens(['check', '--terse', '-'], { input: fix }), { code: 0, stdout: '', stderr: '' });
    const warn = dmalens(['check', '--terse', '-'], { input: read('p2p-longline-qp.patch') });
    assert.equal(warn.code, 0);
    assert.match(warn.stdout, /^drivers\/gpu\/drm\/acme\/acme_p2p\.c:33: WARNING: pci_p2pdma_distance\(\) .* \[P2P-DISTANCE-BOOL\]\n$/);
  });

  test('the review\'s notes stay off stderr (b4 would count them as failures); broken input does not', () => {
    // Does not apply to the tree: noted without --terse, silent with it.
    const loud = dmalens(['check', '--tree', TREE, 'p2p-longline-qp.patch']);
    assert.match(loud.stderr, /line 22: warning: drivers\/gpu\/drm\/acme\/acme_p2p\.c: hunk 1 \(@@ -29,10 \+29,7 @@\) does not apply/);
    const quiet = dmalens(['check', '--terse', '--tree', TREE, '-'], { input: read('p2p-longline-qp.patch') });
    assert.equal(quiet.stderr, '');
    assert.equal(quiet.stdout.split('\n').filter(Boolean).length, 1);
    const cut = read('acme-1.diff').split('\n').slice(0, 40).join('\n') + '\n';
    const broken = dmalens(['check', '--terse', '-'], { input: cut });
    assert.match(broken.stderr, /line 41: error: the text ends inside the hunk/);
  });

  test('usage errors: --terse with JSON or --explain, --tree and --no-tree, a missing tree', () => {
    for (const args of [['--terse', '--format', 'json'], ['--terse', '--explain'], ['--tree', TREE, '--no-tree'], ['--tree', path.join(tmp, 'nope')]]) {
      const r = dmalens(['check', ...args, 'acme-1.diff']);
      assert.equal(r.code, 2, args.join(' '));
      assert.equal(r.stdout, '');
      assert.match(r.stderr, /^dmalens: (--terse|--tree)/);
      assert.equal(r.stderr.trim().split('\n').length, 1);
    }
  });
});

describe('whole-file mode', () => {
  test('--tree DIR: the series over the tree, the same findings; --all adds what the tree already had', () => {
    const r = dmalens(['check', '--format', 'json', '--tree', TREE, 'acme-v2.mbx']);
    assert.equal(r.stderr, '');
    assert.deepEqual(JSON.parse(r.stdout).findings.map((f: any) => `${f.line}:${f.column} ${f.rule} ${f.target.file}:${f.target.line}`), [
      `94:9 DMABUF-LOCKING ${DMABUF}:80`,
      `114:22 DMABUF-SG-PAGE ${DMABUF}:100`,
      `173:6 P2P-DISTANCE-BOOL ${P2P}:33`,
    ]);

    fs.writeFileSync(path.join(tmp, 'comment.patch'), COMMENT_PATCH);
    const file = path.join(tmp, 'comment.patch');
    assert.deepEqual(dmalens(['check', '--tree', TREE, file]), { code: 0, stdout: '', stderr: '' });
    assert.deepEqual(dmalens(['check', '--all', file]), { code: 0, stdout: '', stderr: '' }, 'hunk mode cannot see acme_plane_prepare()');
    const all = dmalens(['check', '--all', '--format', 'json', '--tree', TREE, file]);
    const found = JSON.parse(all.stdout).findings.filter((f: any) => f.target.line === 31);
    assert.deepEqual(
      found.map((f: any) => [f.line, f.column, f.rule, f.target, f.existing]),
      [[4, 1, 'DMABUF-SG-PAGE', { file: SCANOUT, line: 31 }, true]],
      'on the hunk header of the patch file, at line 31 of the patched file',
    );
    const text = dmalens(['check', '--all', '--tree', TREE, file]).stdout;
    assert.match(text, /comment\.patch:4:1: error: in drivers\/gpu\/drm\/acme\/acme_scanout\.c at line 31, which the patch does not show: sg_page\(\) .*\(already there before this patch\) \[DMABUF-SG-PAGE\]/);
    const terse = dmalens(['check', '--all', '--terse', '--tree', TREE, '-'], { input: COMMENT_PATCH }).stdout;
    assert.match(terse, /^drivers\/gpu\/drm\/acme\/acme_scanout\.c:31: ERROR: sg_page\(\) .*\(already there before this patch\) \[DMABUF-SG-PAGE\]$/m);
  });

  test('run in a kernel tree (MAINTAINERS and Kbuild): whole-file mode by default; --no-tree turns it off', () => {
    const kernel = path.join(tmp, 'linux');
    fs.cpSync(TREE, kernel, { recursive: true });
    fs.writeFileSync(path.join(kernel, 'MAINTAINERS'), '');
    fs.writeFileSync(path.join(kernel, 'Kbuild'), '');
    const inTree = dmalens(['check', '--all', '--terse', '-'], { cwd: kernel, input: COMMENT_PATCH });
    assert.match(inTree.stdout, /^drivers\/gpu\/drm\/acme\/acme_scanout\.c:31: ERROR: .*\[DMABUF-SG-PAGE\]$/m);
    assert.deepEqual(dmalens(['check', '--all', '--terse', '--no-tree', '-'], { cwd: kernel, input: COMMENT_PATCH }), { code: 0, stdout: '', stderr: '' });
  });

  test('paths that leave the tree are never read', () => {
    const root = path.join(tmp, 'jail');
    fs.mkdirSync(path.join(root, 'drivers'), { recursive: true });
    fs.copyFileSync(path.join(TREE, SCANOUT), path.join(tmp, 'outside.c'));
    fs.symlinkSync(path.join(tmp, 'outside.c'), path.join(root, 'drivers', 'link.c'));
    const escape = (p: string) => COMMENT_PATCH.replaceAll(SCANOUT, p);
    for (const p of ['../outside.c', 'drivers/../../outside.c', 'drivers/link.c']) {
      const r = dmalens(['check', '--all', '--tree', root, '-'], { input: escape(p) });
      assert.match(r.stderr, /not found in the tree; reviewed from the hunks alone/, p);
      assert.equal(r.stdout, '', p);
    }
    // The same file inside the tree is read.
    fs.copyFileSync(path.join(tmp, 'outside.c'), path.join(root, 'drivers', 'inside.c'));
    assert.match(dmalens(['check', '--all', '--tree', root, '-'], { input: escape('drivers/inside.c') }).stdout, /\[DMABUF-SG-PAGE\]/);

    assert.deepEqual(['a/../b', '/etc/passwd', 'C:\\x', 'x\\..\\y', '', 'a\0b'].map(safeRelativePath), [undefined, undefined, undefined, undefined, undefined, undefined]);
    assert.equal(safeRelativePath('./drivers//x.c'), 'drivers/x.c');
    const reader = new TreeReader(root, 1_000_000);
    assert.equal(reader.read('../outside.c'), undefined);
    assert.equal(reader.read('drivers/link.c'), undefined);
    assert.equal(typeof reader.read('drivers/inside.c'), 'string');
    assert.equal(new TreeReader(root, 10).read('drivers/inside.c'), undefined, 'over the size limit');
  });
});

describe('dmalens reply', () => {
  test('one LKML reply per patch with findings, blank-line separated; exactly the engine\'s drafts', async () => {
    const text = read('acme-v2.mbx');
    const r = dmalens(['reply', 'acme-v2.mbx']);
    assert.equal(r.code, 0);
    assert.equal(r.stderr, '');
    const review = reviewPatchText(text, await Analyzer.create(loadWasm()));
    const want = [1, 2].map((i) => draftReply(review.patches[i], review.patches[i].findings, text)).join('\n');
    assert.equal(r.stdout, want);
    assert.equal(r.stdout.match(/^Subject: Re: /gm)?.length, 2);
    assert.match(r.stdout, /\n\nTo: Jane Doe/, 'a blank line between the replies');
    // From standard input, with the reviewer's From.
    const s = dmalens(['reply', '--from', 'Rev Iewer <rev@example.org>', '-'], { input: read('acme-1.diff') });
    assert.match(s.stdout, /^From: Rev Iewer <rev@example\.org>\nSubject: Re: /);
    assert.match(s.stdout, /DMABUF-SG-PAGE \(error\)/);
  });

  test('a clean patch: nothing; not a patch: skipped; a usage error: exit 2', () => {
    const text = read('acme-v2.mbx');
    const fix = text.slice(text.lastIndexOf('From git@z'));
    assert.deepEqual(dmalens(['reply', '-'], { input: fix }), { code: 0, stdout: '', stderr: '' });
    fs.writeFileSync(path.join(tmp, 'x.c'), 'int x;\n');
    const c = dmalens(['reply', path.join(tmp, 'x.c')]);
    assert.equal(c.stdout, '');
    assert.match(c.stderr, /x\.c: skipped: not a patch or patch mail/);
    assert.equal(dmalens(['reply']).code, 2);
    assert.equal(dmalens(['reply', '--nope', 'acme-1.diff']).code, 2);
    assert.equal(dmalens(['reply', path.join(tmp, 'missing.patch')]).code, 2);
  });
});
