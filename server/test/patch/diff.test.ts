/** The unified diff parser: git and GNU diffs, extended headers, hunks, and broken input. */
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { LineIndex } from '../../src/core/positions';
import { parseDiff } from '../../src/patch/diff';

const FIX = path.resolve(__dirname, '../../../test/fixtures/patch');
const lineOf = (text: string, offset: number) => new LineIndex(text).lineOf(offset) + 1;

test('a git diff: files, hunks, sections, line numbers and locations', () => {
  const text = fs.readFileSync(path.join(FIX, 'acme-1.diff'), 'utf8');
  const { files, diagnostics } = parseDiff(text);
  assert.deepEqual(diagnostics, []);
  assert.deepEqual(
    files.map((f) => [f.oldPath, f.newPath, f.status, f.git, f.hunks.length]),
    [
      ['drivers/gpu/drm/acme/acme_dmabuf.c', 'drivers/gpu/drm/acme/acme_dmabuf.c', 'modified', true, 2],
      ['drivers/gpu/drm/acme/acme_drv.h', 'drivers/gpu/drm/acme/acme_drv.h', 'modified', true, 1],
    ],
  );
  const h = files[0].hunks[1];
  assert.deepEqual([h.oldStart, h.oldCount, h.newStart, h.newCount, h.complete], [66, 24, 67, 40, true]);
  assert.equal(h.section, 'struct acme_import *acme_import_dmabuf(struct acme_device *adev, int fd)');
  assert.equal(text.slice(h.sectionSpan!.start, h.sectionSpan!.end), h.section);
  const add = h.lines.find((l) => l.kind === '+' && l.text.includes('dma_buf_map_attachment('))!;
  assert.equal(add.newLine, 80);
  assert.equal(add.oldLine, undefined);
  assert.equal(lineOf(text, add.start), 29);
  assert.equal(text[add.start], '+');
  const del = h.lines.find((l) => l.kind === '-' && l.text.includes('dma_buf_map_attachment_unlocked('))!;
  assert.equal(del.oldLine, 78);
  // The file header runs from `diff --git` to `+++`.
  assert.equal(text.slice(files[0].span.start, files[0].span.end).split('\n').length, 4);
});

test('the commit message, diffstat and signature around a diff are skipped', () => {
  const text = fs.readFileSync(path.join(FIX, 'acme-v2.mbx'), 'utf8');
  const { files, diagnostics } = parseDiff(text);
  assert.deepEqual(diagnostics, []);
  assert.deepEqual(
    files.map((f) => f.newPath),
    [
      'drivers/gpu/drm/acme/acme_dmabuf.c',
      'drivers/gpu/drm/acme/acme_drv.h',
      'drivers/gpu/drm/acme/acme_p2p.c',
      'drivers/gpu/drm/acme/acme_scanout.c',
    ],
  );
  assert.ok(files.every((f) => f.hunks.every((h) => h.complete)));
});

test('new, deleted, renamed and binary files; mode changes; no newline at end of file', () => {
  const text = [
    'diff --git a/drivers/acme/new.c b/drivers/acme/new.c',
    'new file mode 100644',
    'index 0000000..e69de29',
    '--- /dev/null',
    '+++ b/drivers/acme/new.c',
    '@@ -0,0 +1,2 @@',
    '+int a;',
    '+int b;',
    '\\ No newline at end of file',
    'diff --git a/drivers/acme/old.c b/drivers/acme/old.c',
    'deleted file mode 100644',
    'index e69de29..0000000',
    '--- a/drivers/acme/old.c',
    '+++ /dev/null',
    '@@ -1 +0,0 @@',
    '-int c;',
    'diff --git a/drivers/acme/a.c b/drivers/acme/b.c',
    'similarity index 92%',
    'rename from drivers/acme/a.c',
    'rename to drivers/acme/b.c',
    'index 1111111..2222222 100644',
    '--- a/drivers/acme/a.c',
    '+++ b/drivers/acme/b.c',
    '@@ -3,3 +3,3 @@ int f(void)',
    ' x;',
    '-y;',
    '+z;',
    ' w;',
    'diff --git a/drivers/acme/pure.c b/drivers/acme/moved.c',
    'similarity index 100%',
    'rename from drivers/acme/pure.c',
    'rename to drivers/acme/moved.c',
    'diff --git a/firmware/acme.bin b/firmware/acme.bin',
    'index 3333333..4444444 100644',
    'GIT binary patch',
    'literal 12',
    'TcmZ?wbaZ4y`2YX^|Nj2~',
    '',
    'diff --git a/scripts/run.sh b/scripts/run.sh',
    'old mode 100644',
    'new mode 100755',
  ].join('\n');
  const { files, diagnostics } = parseDiff(text);
  assert.deepEqual(diagnostics, []);
  assert.deepEqual(
    files.map((f) => [f.oldPath ?? null, f.newPath ?? null, f.status, f.binary, f.similarity ?? null, f.hunks.length]),
    [
      [null, 'drivers/acme/new.c', 'added', false, null, 1],
      ['drivers/acme/old.c', null, 'deleted', false, null, 1],
      ['drivers/acme/a.c', 'drivers/acme/b.c', 'renamed', false, 92, 1],
      ['drivers/acme/pure.c', 'drivers/acme/moved.c', 'renamed', false, 100, 0],
      ['firmware/acme.bin', 'firmware/acme.bin', 'modified', true, null, 0],
      ['scripts/run.sh', 'scripts/run.sh', 'modified', false, null, 0],
    ],
  );
  assert.equal(files[0].hunks[0].lines[1].noNewline, true);
  assert.deepEqual([files[1].hunks[0].oldCount, files[1].hunks[0].newCount], [1, 0]);
  assert.deepEqual([files[5].oldMode, files[5].newMode], ['100644', '100755']);
});

test('GNU diff -up: timestamps, the tree prefix stripped, truncated sections', () => {
  const text = fs.readFileSync(path.join(FIX, 'umem_dmabuf-injected.patch'), 'utf8');
  const { files, diagnostics } = parseDiff(text);
  assert.deepEqual(diagnostics, []);
  assert.equal(files.length, 1);
  assert.equal(files[0].git, false);
  assert.equal(files[0].oldPath, 'drivers/infiniband/core/umem_dmabuf.c');
  assert.equal(files[0].newPath, 'drivers/infiniband/core/umem_dmabuf.c');
  assert.deepEqual(
    files[0].hunks.map((h) => h.section),
    ['int ib_umem_dmabuf_map_pages(struct ib_u', 'ib_umem_dmabuf_get_pinned_and_lock(struc', 'void ib_umem_dmabuf_revoke(struct ib_ume'],
  );
  assert.equal(parseDiff(text, { strip: 0 }).files[0].newPath, 'linux-6.12/drivers/infiniband/core/umem_dmabuf.c');
});

test('quoted paths and several hunks without sections', () => {
  const text = [
    'diff --git "a/drivers/acme/sp ace.c" "b/drivers/acme/sp ace.c"',
    '--- "a/drivers/acme/sp ace.c"',
    '+++ "b/drivers/acme/sp ace.c"',
    '@@ -1,2 +1,2 @@',
    '-a',
    '+b',
    ' c',
    '@@ -10 +10 @@',
    '-d',
    '+e',
  ].join('\n');
  const { files, diagnostics } = parseDiff(text);
  assert.deepEqual(diagnostics, []);
  assert.equal(files[0].newPath, 'drivers/acme/sp ace.c');
  assert.deepEqual(
    files[0].hunks.map((h) => [h.oldStart, h.oldCount, h.newStart, h.newCount, h.section, h.complete]),
    [
      [1, 2, 1, 2, '', true],
      [10, 1, 10, 1, '', true],
    ],
  );
});

const BASE = [
  'diff --git a/x.c b/x.c',
  '--- a/x.c',
  '+++ b/x.c',
  '@@ -1,3 +1,4 @@ int f(void)',
  ' {',
  '+\tsgt = dma_buf_map_attachment(a, b);',
  ' \treturn 0;',
  ' }',
];

test('a hunk whose header counts too few lines: diagnostic on the header, lines kept', () => {
  const text = [...BASE.slice(0, 3), '@@ -1,3 +1,3 @@ int f(void)', ...BASE.slice(4), '+\tx = 1;', ''].join('\n');
  const { files, diagnostics } = parseDiff(text);
  assert.equal(diagnostics.length, 1);
  assert.match(diagnostics[0].message, /counts are wrong/);
  assert.equal(lineOf(text, diagnostics[0].span.start), 4);
  assert.equal(files[0].hunks[0].lines.length, 5);
  assert.equal(files[0].hunks[0].complete, false);
});

test('a hunk whose header counts too many lines: diagnostic where it stops', () => {
  const text = [...BASE.slice(0, 3), '@@ -1,5 +1,6 @@ int f(void)', ...BASE.slice(4), 'diff --git a/y.c b/y.c', '--- a/y.c', '+++ b/y.c', '@@ -1 +1 @@', '-a', '+b'].join('\n');
  const { files, diagnostics } = parseDiff(text);
  assert.equal(diagnostics.length, 1);
  assert.match(diagnostics[0].message, /the hunk @@ -1,5 \+1,6 @@ ends early: 2 old lines and 2 new lines missing/);
  assert.equal(lineOf(text, diagnostics[0].span.start), 9, 'at the line that ended it');
  assert.equal(files.length, 2, 'the next file is still read');
  assert.equal(files[1].hunks[0].complete, true);
});

test('a patch cut off inside a hunk: diagnostic at the end of the text', () => {
  const text = BASE.slice(0, 6).join('\n');
  const { files, diagnostics } = parseDiff(text);
  assert.equal(diagnostics.length, 1);
  assert.match(diagnostics[0].message, /text ends inside the hunk @@ -1,3 \+1,4 @@: 2 old lines and 2 new lines missing/);
  assert.equal(diagnostics[0].span.start, text.length);
  assert.equal(files[0].hunks[0].lines.length, 2);
});

test('a line the mail client wrapped is read as the continuation of the line before it', () => {
  const text = [
    ...BASE.slice(0, 3),
    '@@ -1,3 +1,4 @@ int f(void)',
    ' {',
    '+\tsgt = dma_buf_map_attachment(imp->attach,',
    'DMA_BIDIRECTIONAL);',
    ' \treturn 0;',
    ' }',
  ].join('\n');
  const { files, diagnostics } = parseDiff(text);
  assert.equal(diagnostics.length, 1);
  assert.match(diagnostics[0].message, /wrapped/);
  assert.equal(diagnostics[0].severity, 'warning');
  const lines = files[0].hunks[0].lines;
  assert.equal(lines.length, 5);
  assert.deepEqual([lines[2].wrapped, lines[2].kind, lines[2].newLine, lines[2].text], [true, '+', 2, 'DMA_BIDIRECTIONAL);']);
  assert.equal(files[0].hunks[0].complete, true);
});

test('garbage and binary data: no exception, at most diagnostics', () => {
  const inputs = [
    '',
    '@@ -1,2 +1,2 @@\n-a\n+b\n c\n',
    '@@ garbage @@\n+x\n',
    '--- a\n+++ b\n@@ -x,y +z @@\n',
    String.fromCharCode(...Array.from({ length: 2048 }, (_, i) => (i * 7919) % 65536)),
    'diff --git\n',
    'diff --cc a.c\nindex 1,2..3\n@@@ -1,1 -1,1 +1,1 @@@\n',
  ];
  for (const t of inputs) assert.doesNotThrow(() => parseDiff(t));
  const stray = parseDiff('@@ -1,2 +1,2 @@\n-a\n+b\n c\n');
  assert.equal(stray.files.length, 1);
  assert.match(stray.diagnostics[0].message, /without a file header/);
  assert.match(parseDiff('--- a\n+++ b\n@@ garbage @@\n+x\n').diagnostics[0].message, /malformed hunk header/);
  assert.match(parseDiff('diff --cc a.c\n').diagnostics[0].message, /combined diffs/);
});
