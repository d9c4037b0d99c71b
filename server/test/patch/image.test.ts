/** Hunk post-images wrapped as C (image.ts) and in-memory application (apply.ts). */
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { Analyzer } from '../../src/core/analyzer';
import { loadWasm } from '../../src/node/assets';
import { applyFile, Overlay } from '../../src/patch/apply';
import { parseDiff } from '../../src/patch/diff';
import { buildFragment, signatureFrom } from '../../src/patch/image';

const analyzerP = Analyzer.create(loadWasm());

function fragmentOf(diff: string) {
  const { files } = parseDiff(diff);
  return buildFragment(files[0]);
}

async function parsesCleanly(text: string): Promise<boolean> {
  const analyzer = await analyzerP;
  const doc = analyzer.parse(text);
  try {
    return !doc.tree.rootNode.hasError;
  } finally {
    doc.delete();
  }
}

const head = (section: string, counts = '-10,4 +10,5') => ['diff --git a/d.c b/d.c', '--- a/d.c', '+++ b/d.c', `@@ ${counts} @@${section ? ' ' + section : ''}`];

test('signatures from hunk sections: complete, cut after a comma, cut anywhere, or not a function', () => {
  assert.deepEqual(signatureFrom('int acme_map(struct acme_import *imp)'), { lead: '', copied: 37, tail: '', name: 'acme_map', complete: true });
  assert.deepEqual(signatureFrom('static int acme_map(struct acme_import *imp, int flags,'), { lead: '', copied: 54, tail: ')', name: 'acme_map', complete: false });
  assert.deepEqual(signatureFrom('int ib_umem_dmabuf_map_pages(struct ib_u'), { lead: '', copied: 29, tail: ')', name: 'ib_umem_dmabuf_map_pages', complete: false });
  assert.deepEqual(signatureFrom('ib_umem_dmabuf_get_pinned_and_lock(struc'), { lead: 'int ', copied: 35, tail: ')', name: 'ib_umem_dmabuf_get_pinned_and_lock', complete: false });
  for (const s of ['EXPORT_SYMBOL(acme_map);', 'static const struct dma_buf_ops acme_ops = {', 'struct acme_import {', 'err_free:', '', 'if (x)']) assert.equal(signatureFrom(s), undefined, s);
});

test('a hunk inside a function is wrapped in the signature from its header', async () => {
  const diff = [...head('static int acme_bind(struct acme_import *imp)'), ' \tint ret;', ' ', '+\tsgt = dma_buf_map_attachment(imp->attach, DMA_TO_DEVICE);', ' \treturn 0;'].join('\n');
  const f = fragmentOf(diff);
  assert.equal(f.text, 'static int acme_bind(struct acme_import *imp)\n{\n\tint ret;\n\n\tsgt = dma_buf_map_attachment(imp->attach, DMA_TO_DEVICE);\n\treturn 0;\n}\n');
  assert.deepEqual(f.functions, [{ hunk: 0, name: 'acme_bind', fromHeader: true }]);
  // The signature maps to the section text, the hunk lines to their lines, the made-up brace to the header.
  const sec = diff.indexOf('static int acme_bind');
  assert.equal(f.map.map(f.text.indexOf('acme_bind')), sec + 'static int '.length);
  const call = f.text.indexOf('dma_buf_map_attachment');
  assert.equal(diff.slice(f.map.map(call), f.map.map(call) + 22), 'dma_buf_map_attachment');
  assert.equal(f.map.map(f.text.indexOf('{')), diff.indexOf('@@ -10'));
  // The function's start is rebuilt: its lines are not in a whole construct.
  assert.deepEqual(f.lines.slice(0, 6), [
    undefined,
    undefined,
    { hunk: 0, line: 0, whole: false },
    { hunk: 0, line: 1, whole: false },
    { hunk: 0, line: 2, whole: false },
    { hunk: 0, line: 3, whole: false },
  ]);
  assert.ok(await parsesCleanly(f.text));
});

test('the end of one function and the whole next one: the first is reopened from the header', async () => {
  const diff = [
    ...head('struct acme_import *acme_import_dmabuf(struct acme_device *adev, int fd)', '-66,4 +66,9'),
    ' \treturn ERR_PTR(ret);',
    ' }',
    ' ',
    '+int acme_import_bind(struct acme_import *imp)',
    '+{',
    '+\tif (!imp->attach)',
    '+\t\treturn -EINVAL;',
    '+\treturn 0;',
    '+}',
  ].join('\n');
  const f = fragmentOf(diff);
  assert.ok(f.text.startsWith('struct acme_import *acme_import_dmabuf(struct acme_device *adev, int fd)\n{\n\treturn ERR_PTR(ret);\n}\n'));
  assert.ok(f.text.endsWith('\treturn 0;\n}\n'), 'nothing left open');
  // The tail of acme_import_dmabuf() is partial; acme_import_bind() is whole.
  assert.deepEqual(
    f.lines.filter((x) => x).map((x) => x!.whole),
    [false, false, true, true, true, true, true, true, true],
  );
  assert.ok(await parsesCleanly(f.text));
});

test('a hunk in an ops table is wrapped in the initializer from its header', async () => {
  const diff = [...head('static const struct dma_buf_attach_ops acme_ops = {', '-30,2 +30,3'), ' \t.allow_peer2peer = true,', '+\t.move_notify = acme_move_notify,', ' };'].join('\n');
  const f = fragmentOf(diff);
  assert.equal(f.text, 'static const struct dma_buf_attach_ops acme_ops = {\n\t.allow_peer2peer = true,\n\t.move_notify = acme_move_notify,\n};\n');
  assert.ok(await parsesCleanly(f.text));
});

test('hunks that start in a comment, on a label, inside nested blocks, or with no section', async () => {
  const comment = fragmentOf([...head('int f(void)', '-1,3 +1,4'), ' \t * the lock is held here', ' \t */', '+\tx = 1;', ' \treturn 0;'].join('\n'));
  assert.ok(comment.text.startsWith('int f(void)\n{\n/*\n\t * the lock is held here\n'), comment.text);
  assert.ok(await parsesCleanly(comment.text), comment.text);

  const label = fragmentOf([...head('int f(void)', '-1,2 +1,3'), ' err_unlock:', '+\tdma_resv_unlock(resv);', ' \treturn ret;'].join('\n'));
  assert.ok(label.text.startsWith('int f(void)\n{\nerr_unlock:\n'), label.text);
  assert.ok(await parsesCleanly(label.text));

  const nested = fragmentOf([...head('int f(void)', '-1,4 +1,5'), ' \t\t\tx++;', ' \t\t}', '+\t\ty++;', ' \t}', ' \treturn 0;'].join('\n'));
  assert.ok(nested.text.startsWith('int f(void)\n{\n{\n{\n'), nested.text);
  assert.ok(await parsesCleanly(nested.text), nested.text);

  const cut = fragmentOf([...head('int f(void)', '-1,3 +1,4'), ' \t    b->length == 0)', ' \t\tcontinue;', '+\tx = 1;', ' \tif (a &&'].join('\n'));
  assert.equal(cut.text, 'int f(void)\n{\nif (\n\t    b->length == 0)\n\t\tcontinue;\n\tx = 1;\n\tif (a &&\n0);}\n');
  assert.ok(await parsesCleanly(cut.text), cut.text);

  const elseFirst = fragmentOf([...head('int f(void)', '-1,3 +1,4'), ' \t\tx = 1;', ' \t} else {', '+\t\ty = 2;', ' \t}'].join('\n'));
  assert.ok(elseFirst.text.startsWith('int f(void)\n{\nif (1) {\n\t\tx = 1;\n\t} else {'), elseFirst.text);
  assert.ok(await parsesCleanly(elseFirst.text), elseFirst.text);

  const struct = fragmentOf([...head('', '-1,3 +1,4'), ' struct acme {', ' \tunion {', ' \t\tstruct {', '+\t\t\tint x;'].join('\n'));
  assert.ok(struct.text.endsWith('\t\t\tint x;\n};};};\n'), struct.text);
  assert.ok(await parsesCleanly(struct.text), struct.text);

  const anonymous = fragmentOf([...head('', '-1,2 +1,3'), ' \tx = 1;', '+\tsgt = dma_buf_map_attachment(a, b);', ' \treturn 0;'].join('\n'));
  assert.ok(anonymous.text.startsWith('void __dmalens_hunk1(void)\n{\n'), anonymous.text);
  assert.deepEqual(anonymous.functions, [{ hunk: 0, name: '__dmalens_hunk1', fromHeader: true }]);
  assert.ok(await parsesCleanly(anonymous.text));
});

test('a hunk that starts in the parameter lines gets the section unclosed', async () => {
  const diff = [
    ...head('ib_umem_dmabuf_get_pinned_and_lock(struct ib_device *device,', '-228,6 +228,7'),
    ' \t\t\t\t   struct device *dma_device,',
    ' \t\t\t\t   const struct dma_buf_attach_ops *ops)',
    ' {',
    '+\tint err;',
    ' \treturn NULL;',
    ' }',
  ].join('\n');
  const f = fragmentOf(diff);
  assert.ok(f.text.startsWith('int ib_umem_dmabuf_get_pinned_and_lock(struct ib_device *device,\n\t\t\t\t   struct device *dma_device,'), f.text);
  assert.ok(await parsesCleanly(f.text), f.text);
});

test('two hunks in the same function become two functions, the second renamed', async () => {
  const diff = [
    ...head('int acme_bind(struct acme_import *imp)', '-10,2 +10,3'),
    ' \tx = 1;',
    '+\ty = 2;',
    ' \tz = 3;',
    '@@ -40,2 +41,3 @@ int acme_bind(struct acme_import *imp)',
    ' \tu = 1;',
    '+\tv = 2;',
    ' \tw = 3;',
  ].join('\n');
  const f = fragmentOf(diff);
  assert.deepEqual(
    f.functions.map((x) => [x.name, x.realName]),
    [
      ['acme_bind', undefined],
      ['acme_bind__dmalens2', 'acme_bind'],
    ],
  );
  // The renamed name maps to the real name in the second header.
  const at = f.text.indexOf('acme_bind__dmalens2');
  assert.equal(diff.slice(f.map.map(at), f.map.map(at) + 9), 'acme_bind');
  assert.ok(diff.lastIndexOf('acme_bind') === f.map.map(at));
  assert.ok(await parsesCleanly(f.text));
});

const PRE = ['int a;', 'int b;', 'int c;', 'int d;', 'int e;', 'int f;', 'int g;', 'int h;'].join('\n') + '\n';

test('application: at the header line, at an offset, with trailing-whitespace damage, and refused', () => {
  const diff = (start: number) => ['--- a/x.c', '+++ b/x.c', `@@ -${start},3 +${start},4 @@`, ' int c;', ' int d;', '+int d2;', ' int e;'].join('\n');
  const exact = applyFile(PRE, parseDiff(diff(3)).files[0]);
  assert.ok(exact.ok);
  assert.equal(exact.text, PRE.replace('int d;\n', 'int d;\nint d2;\n'));
  assert.deepEqual(exact.offsets, [0]);
  assert.deepEqual(exact.origins.slice(1, 6), [
    { kind: 'unchanged', oldLine: 2 },
    { kind: 'context', hunk: 0, line: 0, oldLine: 3 },
    { kind: 'context', hunk: 0, line: 1, oldLine: 4 },
    { kind: 'added', hunk: 0, line: 2 },
    { kind: 'context', hunk: 0, line: 3, oldLine: 5 },
  ]);
  const shifted = applyFile('int x;\nint y;\n' + PRE, parseDiff(diff(3)).files[0]);
  assert.ok(shifted.ok);
  assert.deepEqual(shifted.offsets, [2], 'found two lines further down');
  const ws = applyFile(PRE.replace('int d;', 'int d;   '), parseDiff(diff(3)).files[0]);
  assert.ok(ws.ok, 'trailing whitespace is not compared');
  const refused = applyFile(PRE.replace('int d;', 'long d;'), parseDiff(diff(3)).files[0]);
  assert.ok(!refused.ok);
  assert.match(refused.message, /^hunk 1 \(@@ -3,3 \+3,4 @@\) does not apply: line 4 of the file is "long d;" where the hunk expects "int d;"/);
});

test('application: new files, removals, several hunks and a second hunk before the first is refused', () => {
  const created = applyFile('', parseDiff(['--- /dev/null', '+++ b/n.c', '@@ -0,0 +1,2 @@', '+int a;', '+int b;'].join('\n')).files[0]);
  assert.ok(created.ok);
  assert.equal(created.text, 'int a;\nint b;\n');
  const two = ['--- a/x.c', '+++ b/x.c', '@@ -1,2 +1,1 @@', '-int a;', ' int b;', '@@ -7,2 +6,3 @@', ' int g;', '+int g2;', ' int h;'].join('\n');
  const r = applyFile(PRE, parseDiff(two).files[0]);
  assert.ok(r.ok);
  assert.equal(r.text, 'int b;\nint c;\nint d;\nint e;\nint f;\nint g;\nint g2;\nint h;\n');
  const backwards = ['--- a/x.c', '+++ b/x.c', '@@ -5,1 +5,1 @@', '-int e;', '+int E;', '@@ -2,1 +2,1 @@', '-int b;', '+int B;'].join('\n');
  assert.equal(applyFile(PRE, parseDiff(backwards).files[0]).ok, false);
});

test('the overlay reads the tree once per path and survives a failing reader', () => {
  const reads: string[] = [];
  const o = new Overlay((p) => {
    reads.push(p);
    if (p === 'boom.c') throw new Error('EACCES');
    return p === 'x.c' ? 'int x;\n' : undefined;
  });
  assert.deepEqual(o.get('x.c'), { state: 'text', text: 'int x;\n' });
  assert.deepEqual(o.get('none.c'), { state: 'unknown', reason: 'not found in the tree' });
  assert.deepEqual(o.get('boom.c'), { state: 'unknown', reason: 'reading it failed: EACCES' });
  o.set('x.c', { state: 'text', text: 'int y;\n' });
  assert.deepEqual(o.get('x.c'), { state: 'text', text: 'int y;\n' });
  assert.deepEqual(reads, ['x.c', 'none.c', 'boom.c']);
  assert.equal(new Overlay().get('x.c').state, 'unknown');
});
