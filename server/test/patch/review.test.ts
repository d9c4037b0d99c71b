/**
 * Patch review end to end: a b4 series in hunk and whole-file mode, the same
 * patch in every encoding with exact positions in the FILE, a real kernel
 * file, broken input, options, and a 50-patch series.
 */
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Analyzer } from '../../src/core/analyzer';
import { LineIndex } from '../../src/core/positions';
import { decodeBytes } from '../../src/core/text';
import { loadWasm } from '../../src/node/assets';
import { applyFile } from '../../src/patch/apply';
import { parseDiff } from '../../src/patch/diff';
import { looksLikePatch, type PatchFinding, type PatchReview, reviewPatchText, type ReviewOptions } from '../../src/patch/review';
import { syntheticSeries } from '../helpers/patchSeries';

const FIX = path.resolve(__dirname, '../../../test/fixtures/patch');
const TREE = path.join(FIX, 'tree');
const analyzerP = Analyzer.create(loadWasm());

function read(name: string): string {
  const d = decodeBytes(fs.readFileSync(path.join(FIX, name)));
  if ('binary' in d) throw new Error(`${name} is binary`);
  return d.text;
}

const fromTree = (p: string): string | undefined => {
  const f = path.join(TREE, p);
  return fs.existsSync(f) ? fs.readFileSync(f, 'utf8') : undefined;
};

async function review(text: string, options: ReviewOptions = {}): Promise<PatchReview> {
  return reviewPatchText(text, await analyzerP, options);
}

/** The essentials of a finding, for exact comparison. */
function brief(f: PatchFinding) {
  const { line, column, endLine, endColumn } = f.location;
  return `${f.patchIndex} ${f.rule} ${f.severity} ${line}:${column}-${endLine}:${endColumn} ${f.target.file}:${f.target.line} ${f.on} ${f.analysis}${f.partial ? ' partial' : ''}${f.existing ? ' existing' : ''}`;
}

const all = (r: PatchReview) => r.patches.flatMap((p) => p.findings).map(brief);

const DMABUF = 'drivers/gpu/drm/acme/acme_dmabuf.c';
const P2P = 'drivers/gpu/drm/acme/acme_p2p.c';

test('a b4 series, hunk mode: the two hazard patches draw their findings, the fix draws nothing', async () => {
  const text = read('acme-v2.mbx');
  const r = await review(text);
  assert.deepEqual(r.diagnostics, []);
  assert.deepEqual(
    r.patches.map((p) => [p.index, p.subjectPrefix, p.subject, p.coverLetter, p.files.map((f) => `${f.path}:${f.analysis}:+${f.added}-${f.removed}`)]),
    [
      [0, 'PATCH v2 0/3', 'drm/acme: peer-to-peer imports and a scanout fix', true, []],
      [1, 'PATCH v2 1/3', 'drm/acme: keep the pages of imported buffers for CPU readback', false, [`${DMABUF}:hunk:+19-2`, 'drivers/gpu/drm/acme/acme_drv.h:hunk:+2-0']],
      [2, 'PATCH v2 2/3', 'drm/acme: enable peer-to-peer DMA when the topology allows it', false, [`${P2P}:hunk:+5-1`]],
      [3, 'PATCH v2 3/3', 'drm/acme: program the scanout engine with the DMA address', false, ['drivers/gpu/drm/acme/acme_scanout.c:hunk:+3-7']],
    ],
  );
  assert.deepEqual(all(r), [
    `1 DMABUF-LOCKING error 94:9-94:63 ${DMABUF}:80 added hunk`,
    `1 DMABUF-SG-PAGE error 114:22-114:33 ${DMABUF}:100 added hunk`,
    `2 P2P-DISTANCE-BOOL warning 173:6-173:53 ${P2P}:33 added hunk partial`,
  ]);
  const [lock, sg] = r.patches[1].findings;
  assert.equal(text.slice(lock.span.start, lock.span.end), 'dma_buf_map_attachment(imp->attach, DMA_BIDIRECTIONAL)');
  assert.equal(lock.subject, 'drm/acme: keep the pages of imported buffers for CPU readback');
  assert.equal(lock.functionName, 'acme_import_bind');
  assert.match(lock.message, /acme_import_bind\(\) never takes it/);
  assert.ok(lock.events.length > 0 && lock.events.some((e) => e.op === 'dma_buf_map_attachment'));
  // Events keep their spans, now in the patch file.
  const ev = lock.events.find((e) => e.op === 'dma_buf_map_attachment')!;
  assert.equal(text.slice(ev.span!.start, ev.span!.start + 22), 'dma_buf_map_attachment');
  assert.equal(text.slice(sg.span.start, sg.span.end), 'sg_page(sg)');
  // Metadata for the faces.
  const p1 = r.patches[1];
  assert.equal(text.slice(p1.subjectRange!.start, p1.subjectRange!.end), '[PATCH v2 1/3] drm/acme: keep the pages of imported buffers for CPU\n readback');
  assert.deepEqual([p1.from, p1.date, p1.messageId, p1.series], [
    'Jane Doe <jane.doe@acme.example>',
    'Tue, 14 Jan 2025 10:21:33 +0100',
    '20250114092133.4172-2-jane.doe@acme.example',
    { number: 1, total: 3, version: 2 },
  ]);
  assert.equal(new LineIndex(text).lineOf(p1.files[0].hunks[1].span.start) + 1, 78);
});

test('the same series, whole-file mode over the tree: the same findings, and the fix still draws nothing', async () => {
  const text = read('acme-v2.mbx');
  const r = await review(text, { readTarget: fromTree });
  assert.deepEqual(r.diagnostics, []);
  assert.ok(r.patches.slice(1).every((p) => p.files.every((f) => f.analysis === 'file')));
  assert.deepEqual(all(r), [
    `1 DMABUF-LOCKING error 94:9-94:63 ${DMABUF}:80 added file`,
    `1 DMABUF-SG-PAGE error 114:22-114:33 ${DMABUF}:100 added file`,
    `2 P2P-DISTANCE-BOOL warning 173:6-173:53 ${P2P}:33 added file`,
  ]);
  // The hazard patch 3 removes was in the tree before; it is not reported, even as existing.
  const withExisting = await review(text, { readTarget: fromTree, includeExisting: true });
  assert.deepEqual(withExisting.patches[3].findings, []);
});

test('whole-file mode: later patches see the tree as earlier ones left it', async () => {
  // p2p-longline-qp.patch was made on top of patch 2/3: it only applies to what the series left.
  const text = read('acme-v2.mbx') + '\n' + read('p2p-longline-qp.patch');
  const r = await review(text, { readTarget: fromTree });
  assert.deepEqual(r.diagnostics, []);
  const last = r.patches[4];
  assert.equal(last.files[0].analysis, 'file');
  assert.deepEqual(last.findings.map(brief), [`4 P2P-DISTANCE-BOOL warning 275:25-276:53 ${P2P}:33 added file`]);
  // Alone, it does not apply to the tree: a diagnostic at its hunk header, and hunk mode.
  const alone = read('p2p-longline-qp.patch');
  const a = await review(alone, { readTarget: fromTree });
  assert.equal(a.patches[0].files[0].analysis, 'hunk');
  assert.equal(a.diagnostics.length, 1);
  assert.match(a.diagnostics[0].message, /^drivers\/gpu\/drm\/acme\/acme_p2p\.c: hunk 1 \(@@ -29,10 \+29,7 @@\) does not apply: line 32 of the file is "\\tadev->p2p_enabled = false;" where the hunk expects "\\t\/\* Only go peer-to-peer/);
  assert.equal(new LineIndex(alone).lineOf(a.diagnostics[0].span.start) + 1, 22, 'on the (soft-broken) hunk header line');
  assert.deepEqual(a.patches[0].findings.map(brief), [`0 P2P-DISTANCE-BOOL warning 34:25-35:53 ${P2P}:33 added hunk partial`]);
});

test('the same patch in every encoding: exact lines and columns in the FILE', async () => {
  const cases: Array<[string, string[]]> = [
    // quoted-printable: `=3D` before the call shifts the column by two.
    ['acme-1-qp.eml', [`0 DMABUF-LOCKING error 62:11-62:65 ${DMABUF}:80 added hunk`, `0 DMABUF-SG-PAGE error 82:24-82:35 ${DMABUF}:100 added hunk`]],
    // base64: the encoded line (and character) where the call's first byte is.
    ['acme-1-base64.eml', [`0 DMABUF-LOCKING error 71:18-72:14 ${DMABUF}:80 added hunk`, `0 DMABUF-SG-PAGE error 81:47-81:62 ${DMABUF}:100 added hunk`]],
    ['acme-1-crlf.eml', [`0 DMABUF-LOCKING error 56:9-56:63 ${DMABUF}:80 added hunk`, `0 DMABUF-SG-PAGE error 76:22-76:33 ${DMABUF}:100 added hunk`]],
    ['acme-1-latin1.eml', [`0 DMABUF-LOCKING error 56:9-56:63 ${DMABUF}:80 added hunk`, `0 DMABUF-SG-PAGE error 76:22-76:33 ${DMABUF}:100 added hunk`]],
    ['acme-1.diff', [`0 DMABUF-LOCKING error 29:9-29:63 ${DMABUF}:80 added hunk`, `0 DMABUF-SG-PAGE error 49:22-49:33 ${DMABUF}:100 added hunk`]],
    // A finding that starts before a soft line break and ends after it.
    ['p2p-longline-qp.patch', [`0 P2P-DISTANCE-BOOL warning 34:25-35:53 ${P2P}:33 added hunk partial`]],
  ];
  for (const [name, want] of cases) {
    const text = read(name);
    const r = await review(text);
    assert.deepEqual(r.diagnostics, [], name);
    assert.deepEqual(all(r), want, name);
    const f = r.patches[0].findings[0];
    const seen = text.slice(f.span.start, f.span.end);
    if (name === 'acme-1-base64.eml') assert.match(seen, /^[A-Za-z0-9+/\n]+$/, 'a span of base64');
    else if (name === 'p2p-longline-qp.patch') assert.equal(seen, 'adev->pdev->subsystem_vendor =3D=3D PCI_VENDOR_ID_A=\nCME && pci_p2pdma_distance(adev->pdev, client, true)');
    else assert.equal(seen, 'dma_buf_map_attachment(imp->attach, DMA_BIDIRECTIONAL)', name);
  }
  // In the CRLF file the line break is two characters: the columns do not change.
  const crlf = read('acme-1-crlf.eml');
  const f = (await review(crlf)).patches[0].findings[0];
  assert.equal(crlf.slice(f.span.end, f.span.end + 3), ';\r\n');
});

test('a finding that lives only on removed lines is not reported; a context-line finding only with allLines', async () => {
  // Patch 3/3 removes sg_page(): its pre-image had the hazard, the post-image has none.
  const text = read('acme-v2.mbx');
  const fix = text.slice(text.lastIndexOf('From git@z'));
  assert.deepEqual(all(await review(fix)), []);
  assert.deepEqual(all(await review(fix, { allLines: true })), []);
  assert.deepEqual(all(await review(fix, { readTarget: fromTree, includeExisting: true })), []);
});

const UMEM = 'drivers/infiniband/core/umem_dmabuf.c';

test('a real kernel file, hunk mode: what the hunks alone can show', async () => {
  const text = read('umem_dmabuf-injected.patch');
  const r = await review(text);
  assert.deepEqual(r.diagnostics, []);
  // Hunk 1: dma_buf_map_attachment_unlocked() where dma_resv_assert_held() above the hunk says
  //   the lock is held. The hunk cannot show the assert: nothing is reported (no false claim).
  // Hunk 2: the lock before dma_buf_pin() is removed; the pin is a context line: not reported.
  // Hunk 3: the _unlocked unmap right after dma_resv_lock() in the same hunk: found. The function
  //   starts above the hunk (its signature comes from the @@ header, cut at 40 columns by
  //   diff -p), so it is judged from part of it: a warning, marked partial.
  assert.deepEqual(all(r), [`0 DMABUF-LOCKING warning 38:4-40:28 ${UMEM}:361 added hunk partial`]);
  const f = r.patches[0].findings[0];
  assert.match(f.message, /^dma_buf_unmap_attachment_unlocked\(\) takes the reservation lock itself, but the lock of the same dma-buf is already held here: a self-deadlock/);
  assert.equal(f.functionName, 'ib_umem_dmabuf_revoke');
  assert.deepEqual(
    f.related.map((x) => [text.slice(x.start, x.end), x.message, x.target?.line]),
    [['dma_resv_lock(dmabuf->resv, NULL)', 'the reservation lock is taken here', 359]],
  );
  // With allLines, the context line of hunk 2 shows what the hunk alone can say about it: an
  // unlocked pin (a warning: the function's start is not in the hunk) and a pin-balance claim
  // that only the whole file could refute.
  const everything = await review(text, { allLines: true });
  assert.deepEqual(all(everything), [
    `0 DMABUF-LOCKING warning 30:9-30:41 ${UMEM}:242 context hunk partial`,
    `0 DMABUF-PIN-BALANCE warning 30:9-30:41 ${UMEM}:242 context hunk partial`,
    `0 DMABUF-LOCKING warning 38:4-40:28 ${UMEM}:361 added hunk partial`,
  ]);
});

function kernelFile(): string | undefined {
  const base = process.env.DMALENS_CACHE ?? (process.env.XDG_CACHE_HOME ? path.join(process.env.XDG_CACHE_HOME, 'dmalens') : path.join(os.homedir(), '.cache', 'dmalens'));
  const f = path.join(base, 'linux-source-6.12', 'linux-source-6.12', UMEM);
  return fs.existsSync(f) ? fs.readFileSync(f, 'utf8') : undefined;
}

const real = kernelFile();
const applies = real !== undefined && applyFile(real, parseDiff(read('umem_dmabuf-injected.patch')).files[0]).ok;

test(
  'a real kernel file, whole-file mode: the file shows what the hunks cannot',
  { skip: real === undefined ? 'no linux-source-6.12 in the cache (node scripts/kernel-tree.js)' : !applies ? `the cached ${UMEM} changed; the fixture patch no longer applies` : false },
  async () => {
    const text = read('umem_dmabuf-injected.patch');
    const r = await review(text, { readTarget: (p) => (p === UMEM ? real : undefined) });
    assert.deepEqual(r.diagnostics, []);
    assert.deepEqual(all(r), [
      // Hunk 1: dma_resv_assert_held() at line 24 says the lock is held: a self-deadlock.
      `0 DMABUF-LOCKING error 20:9-21:31 ${UMEM}:32 added file`,
      // Hunk 2: dma_buf_pin() lost its lock: reported on its context line, since the pre-image had no such finding.
      `0 DMABUF-LOCKING warning 30:9-30:41 ${UMEM}:242 context file`,
      // Hunk 3: as in hunk mode, with the certainty of the whole function.
      `0 DMABUF-LOCKING error 38:4-40:28 ${UMEM}:361 added file`,
    ]);
    const first = r.patches[0].findings[0];
    assert.match(first.message, /already held here: a self-deadlock/);
    // The assert is an event the model replays; it is not in the patch, so it has no span there.
    assert.deepEqual(
      first.events.map((e) => [e.op, !!e.span]),
      [
        ['dma_resv_assert_held', false],
        ['dma_buf_map_attachment_unlocked', true],
      ],
    );
  },
);

test('whole-file mode: a finding the patch causes outside its hunks is reported there', async () => {
  const pre = fromTree(DMABUF)!;
  const lines = pre.split('\n');
  const lock = lines.findIndex((l, i) => l === '\tdma_resv_lock(resv, NULL);' && lines[i + 1] === '\tif (imp->sgt) {');
  // `diff -U1`: the unmap call three lines below the removed lock is not in the hunk.
  const diff = [
    `--- a/${DMABUF}`,
    `+++ b/${DMABUF}`,
    `@@ -${lock},3 +${lock},2 @@ void acme_import_unbind(struct acme_import *imp)`,
    ' ',
    '-\tdma_resv_lock(resv, NULL);',
    ' \tif (imp->sgt) {',
  ].join('\n');
  assert.deepEqual(all(await review(diff)), [], 'the hunk alone shows no call');
  const r = await review(diff, { readTarget: fromTree });
  assert.deepEqual(r.diagnostics, []);
  const unmap = lines.findIndex((l) => l.startsWith('\t\tdma_buf_unmap_attachment(imp->attach, imp->sgt,'));
  assert.deepEqual(all(r), [`0 DMABUF-LOCKING warning 3:1-3:${diff.split('\n')[2].length + 1} ${DMABUF}:${unmap} outside file`]);
});

test('whole-file mode: related locations and events outside the hunks (a stand-in analyzer)', () => {
  const diff = read('acme-1.diff');
  const pre = fromTree(DMABUF)!;
  // Reports on the post-image line of the new map call, with a related location on the
  // dma_buf_get() line (not in any hunk) and one on the call itself.
  const fake = {
    analyzeText(text: string) {
      if (!text.includes('kvcalloc')) return { findings: [], notices: [], errorNodes: 0 };
      const call = text.indexOf('dma_buf_map_attachment(imp->attach');
      const attach = text.indexOf('dma_buf_get(fd)');
      return {
        findings: [
          {
            rule: 'DMABUF-LOCKING',
            severity: 'error' as const,
            message: 'm',
            span: { start: call, end: call + 22 },
            related: [
              { start: attach, end: attach + 15, message: 'got here' },
              { start: call, end: call + 22, message: 'mapped here' },
            ],
            events: [{ op: 'dma_buf_get', span: { start: attach, end: attach + 15 } }, { op: 'dma_buf_map_attachment', span: { start: call, end: call + 22 } }],
          },
        ],
        notices: [],
        errorNodes: 0,
      };
    },
  };
  const r = reviewPatchText(diff, fake, { readTarget: (p) => (p === DMABUF ? pre : undefined) });
  const f = r.patches[0].findings[0];
  const li = new LineIndex(diff);
  assert.deepEqual(brief(f), `0 DMABUF-LOCKING error 29:9-29:31 ${DMABUF}:80 added file`);
  const getLine = pre.split('\n').findIndex((l) => l.includes('dma_buf_get(fd)')) + 1;
  assert.deepEqual(
    f.related.map((x) => [x.message, li.lineOf(x.start) + 1, x.target?.line]),
    [
      [`got here (${DMABUF}:${getLine}, not in the patch)`, 5, getLine],
      ['mapped here', 29, 80],
    ],
  );
  assert.equal(diff.slice(f.related[0].start, f.related[0].start + 2), '@@', 'anchored on the nearest hunk header');
  assert.deepEqual(f.events.map((e) => [e.op, e.span ? li.lineOf(e.span.start) + 1 : null]), [['dma_buf_get', null], ['dma_buf_map_attachment', 29]]);
});

test('whole-file mode: renames read the old path; a new file is known to the next patch without a tree', async () => {
  const p2pPatch = read('acme-v2.mbx').split('\nFrom git@z')[2];
  const renamed = p2pPatch
    .replace(`diff --git a/${P2P} b/${P2P}`, `diff --git a/${P2P} b/drivers/gpu/drm/acme/acme_peer.c\nsimilarity index 88%\nrename from ${P2P}\nrename to drivers/gpu/drm/acme/acme_peer.c`)
    .replace(`+++ b/${P2P}`, '+++ b/drivers/gpu/drm/acme/acme_peer.c');
  const r = await review('From git@z' + renamed, { readTarget: fromTree });
  assert.deepEqual(r.diagnostics, []);
  assert.deepEqual(
    r.patches[0].files.map((f) => [f.oldPath, f.newPath, f.status, f.similarity, f.analysis]),
    [[P2P, 'drivers/gpu/drm/acme/acme_peer.c', 'renamed', 88, 'file']],
  );
  assert.deepEqual(all(r), ['0 P2P-DISTANCE-BOOL warning 39:6-39:53 drivers/gpu/drm/acme/acme_peer.c:33 added file']);
  const rf = r.patches[0].findings[0];
  assert.equal(('From git@z' + renamed).slice(rf.span.start, rf.span.end), '(pci_p2pdma_distance(adev->pdev, client, true))');

  const create = [
    'diff --git a/drivers/acme/new.c b/drivers/acme/new.c',
    'new file mode 100644',
    '--- /dev/null',
    '+++ b/drivers/acme/new.c',
    '@@ -0,0 +1,5 @@',
    '+int acme_new(struct dma_buf_attachment *attach)',
    '+{',
    '+\tint ret = 0;',
    '+\treturn ret;',
    '+}',
  ].join('\n');
  const modify = [
    'diff --git a/drivers/acme/new.c b/drivers/acme/new.c',
    '--- a/drivers/acme/new.c',
    '+++ b/drivers/acme/new.c',
    '@@ -2,3 +2,4 @@ int acme_new(struct dma_buf_attachment *attach)',
    ' {',
    ' \tint ret = 0;',
    '+\tret = dma_buf_pin(attach);',
    ' \treturn ret;',
  ].join('\n');
  const mail = (n: number, body: string) => `From ${n} Mon Sep 17 00:00:00 2001\nFrom: a@b\nSubject: [PATCH ${n}/2] acme ${n}\n\n---\n${body}\n`;
  const two = await review(mail(1, create) + '\n' + mail(2, modify));
  assert.deepEqual(two.diagnostics, []);
  assert.deepEqual(
    two.patches.map((p) => p.files[0].analysis),
    ['file', 'file'],
  );
  assert.deepEqual(two.patches[1].findings.map((f) => [f.rule, f.target.line, f.on, f.analysis]).filter((x) => x[0] === 'DMABUF-LOCKING'), [['DMABUF-LOCKING', 4, 'added', 'file']]);
});

test('hunk mode names: a second hunk in the same function, and a hunk with no section', async () => {
  const twice = [
    `--- a/${DMABUF}`,
    `+++ b/${DMABUF}`,
    '@@ -10,3 +10,4 @@ int acme_bind(struct acme_import *imp)',
    ' \tx = 1;',
    '+\tsgt = dma_buf_map_attachment(imp->attach, DMA_TO_DEVICE);',
    ' \ty = 2;',
    ' \tz = 3;',
    '@@ -40,3 +41,4 @@ int acme_bind(struct acme_import *imp)',
    ' \tu = 1;',
    '+\tdma_buf_unmap_attachment(imp->attach, sgt, DMA_TO_DEVICE);',
    ' \tv = 2;',
    ' \tw = 3;',
  ].join('\n');
  const r = await review(twice);
  assert.deepEqual(
    r.patches[0].findings.map((f) => [f.rule, f.functionName, /acme_bind\(\)/.test(f.message), /dmalens/.test(f.message)]),
    [
      ['DMABUF-LOCKING', 'acme_bind', true, false],
      ['DMABUF-LOCKING', 'acme_bind', true, false],
    ],
  );
  const anonymous = twice.replace(/ @@ int acme_bind\(struct acme_import \*imp\)/g, ' @@');
  const a = await review(anonymous);
  assert.equal(a.patches[0].findings.length, 2);
  for (const f of a.patches[0].findings) {
    assert.equal(f.functionName, undefined);
    assert.match(f.message, /nothing in the function around this hunk takes it/);
  }
});

test('only C files are analysed: a Documentation hunk that names an API draws nothing', async () => {
  const doc = [
    'diff --git a/Documentation/driver-api/acme.rst b/Documentation/driver-api/acme.rst',
    '--- a/Documentation/driver-api/acme.rst',
    '+++ b/Documentation/driver-api/acme.rst',
    '@@ -1,2 +1,3 @@',
    ' ACME imports',
    '+Call sgt = dma_buf_map_attachment(attach, dir); then sg_page(sgt->sgl).',
    ' =============',
  ].join('\n');
  const reads: string[] = [];
  const r = await review(doc, { readTarget: (p) => (reads.push(p), undefined) });
  assert.deepEqual(all(r), []);
  assert.deepEqual(r.patches[0].files.map((f) => [f.path, f.analysis]), [['Documentation/driver-api/acme.rst', 'none']]);
  assert.deepEqual(reads, [], 'the tree is not read for it');
});

test('options reach the rules: disabled rules, severity overrides, kernel version', async () => {
  const text = read('acme-1.diff');
  assert.deepEqual(
    (await review(text, { disabledRules: ['DMABUF-SG-PAGE'] })).patches[0].findings.map((f) => f.rule),
    ['DMABUF-LOCKING'],
  );
  assert.deepEqual(
    (await review(text, { severity: { 'DMABUF-SG-PAGE': 'info' } })).patches[0].findings.map((f) => f.severity),
    ['error', 'info'],
  );
  // Before 6.2 a map without the lock was only wrong for dynamic attachments, which the hunk does not show.
  assert.deepEqual(
    (await review(text, { kernelVersion: { major: 6, minor: 1 } })).patches[0].findings.map((f) => f.rule),
    ['DMABUF-SG-PAGE'],
  );
});

test('broken input: wrong hunk counts, truncated mail, garbage, empty files: diagnostics, never an exception', async () => {
  const mbx = read('acme-v2.mbx');
  // Wrong counts: the header of patch 1's second hunk claims fewer lines than there are.
  const wrong = mbx.replace('@@ -66,24 +67,40 @@', '@@ -66,24 +67,38 @@');
  const w = await review(wrong);
  const wd = w.diagnostics.find((d) => /counts are wrong/.test(d.message))!;
  assert.ok(wd, JSON.stringify(w.diagnostics));
  assert.equal(wd.severity, 'error');
  assert.equal(wd.patchIndex, 1);
  assert.equal(new LineIndex(wrong).lineOf(wd.span.start) + 1, 78);
  assert.deepEqual(all(w), all(await review(mbx)), 'the lines are analysed as they are');

  // Truncated mail: cut in the middle of patch 1's second hunk.
  const cut = mbx.slice(0, mbx.indexOf('\timp->npages = n;'));
  const t = await review(cut);
  assert.ok(t.diagnostics.some((d) => /text ends inside the hunk @@ -66,24 \+67,40 @@/.test(d.message) && d.span.start === cut.length), JSON.stringify(t.diagnostics));
  // The cut hunk no longer shows acme_import_bind() whole: its findings are partial warnings.
  assert.deepEqual(all(t), [`1 DMABUF-LOCKING warning 94:9-94:63 ${DMABUF}:80 added hunk partial`, `1 DMABUF-SG-PAGE warning 114:22-114:33 ${DMABUF}:100 added hunk partial`]);

  // Whole-file mode on a truncated hunk: the pre-image still matches, the post-image is cut.
  assert.doesNotThrow(() => reviewPatchText(cut, { analyzeText: () => ({ findings: [], notices: [], errorNodes: 0 }) }, { readTarget: fromTree }));

  // Binary garbage, an empty file, a mail without a diff.
  const garbage = Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 131 + 7) % 256)).toString('latin1');
  for (const junk of [garbage, '', '   \n\n', 'Subject: hello\n\nno diff here\n', 'From x Mon Jan  1 00:00:00 2024\n', '\ufeff\u0000\u0000']) {
    const r = await review(junk);
    assert.ok(r.diagnostics.length > 0, `a diagnostic for ${JSON.stringify(junk.slice(0, 20))}`);
    assert.deepEqual(all(r), []);
  }
  assert.match((await review('')).diagnostics[0].message, /empty/);
  assert.match((await review(garbage)).diagnostics[0].message, /does not look like a patch/);

  // An analyzer that throws, a reader that throws.
  const throwing = { analyzeText: () => { throw new Error('boom'); } };
  const rt = reviewPatchText(read('acme-1.diff'), throwing);
  assert.ok(rt.diagnostics.some((d) => /analysis failed: boom/.test(d.message)));
  const rr = await review(read('acme-1.diff'), { readTarget: () => { throw new Error('EIO'); } });
  assert.ok(rr.diagnostics.some((d) => /reading it failed: EIO; reviewed from the hunks alone/.test(d.message)));
  assert.equal(rr.patches[0].findings.length, 2);
});

test('looksLikePatch sniffs patches, mails and mboxes, not C or prose', () => {
  for (const name of ['acme-v2.mbx', 'acme-1-qp.eml', 'acme-1-base64.eml', 'acme-1-crlf.eml', 'acme-1-latin1.eml', 'acme-1.diff', 'umem_dmabuf-injected.patch', 'p2p-longline-qp.patch'])
    assert.equal(looksLikePatch(read(name)), true, name);
  for (const t of ['', 'int main(void)\n{\n\treturn 0;\n}\n', fromTree(DMABUF)!, 'Dear all,\n--- not a diff\n', 'Subject: lunch\n\nsee you\n'])
    assert.equal(looksLikePatch(t), false, JSON.stringify(t.slice(0, 30)));
});

test('a 50-patch series: every hazard found once, on its line, in both modes', async () => {
  const s = syntheticSeries(50);
  for (const opts of [{}, { readTarget: (p: string) => s.tree.get(p) }] as ReviewOptions[]) {
    const r = await review(s.mbox, opts);
    assert.deepEqual(r.diagnostics, []);
    assert.equal(r.patches.length, 51);
    const got = r.patches.flatMap((p) => p.findings.map((f) => `${f.patchIndex} ${f.rule} ${f.target.file}:${f.target.line}`));
    const want = s.expected.map((e) => `${e.patch} ${e.rule} ${e.file}:${e.line}`);
    assert.deepEqual(got, want);
  }
});

test('a hunk header claiming a line past 2^53 is searched for from the nearest place, not counted up to', () => {
  const pre = 'a\nb\nc\nd\n';
  const patch = ['--- a/x.c', '+++ b/x.c', '@@ -99999999999999999999,2 +1,3 @@', ' b', '+b2', ' c', ''].join('\n');
  const t0 = Date.now();
  const r = applyFile(pre, parseDiff(patch).files[0]);
  assert.ok(Date.now() - t0 < 1000);
  assert.ok(r.ok);
  if (r.ok) assert.equal(r.text, 'a\nb\nb2\nc\nd\n');
  const bad = applyFile(pre, parseDiff(patch.replace(' c\n', ' z\n')).files[0]);
  assert.equal(bad.ok, false);
});
