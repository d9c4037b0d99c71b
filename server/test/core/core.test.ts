/** Unit tests of the core: positions, the sanitizer, the parser (incremental), the CFG. */
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { Analyzer } from '../../src/core/analyzer';
import { copyTree } from '../../src/core/ast';
import { FileFacts } from '../../src/core/facts';
import { diffEdit, LineIndex, utf8Length } from '../../src/core/positions';
import { sanitize } from '../../src/core/sanitize';
import { decodeBytes } from '../../src/core/text';
import { interestingPattern } from '../../src/rules/registry';
import { loadWasm } from '../../src/node/assets';

const analyzerP = Analyzer.create(loadWasm());

test('LineIndex converts offsets to LSP positions, byte columns and back', () => {
  const text = 'a\r\n/* é€😀 */ x;\nlast';
  const li = new LineIndex(text);
  const x = text.indexOf('x;');
  assert.deepEqual(li.position(x), { line: 1, character: 11 });
  assert.deepEqual(li.byteLineColumn(x), { line: 2, column: 1 + utf8Length('/* é€😀 */ ') });
  assert.equal(li.byteLineColumn(x).column, 17);
  assert.deepEqual(li.utf16LineColumn(x), { line: 2, column: 12 });
  assert.equal(li.offsetAt({ line: 1, character: 11 }), x);
  assert.equal(li.offsetAt({ line: 0, character: 99 }), 1, 'clamped to the end of the line text, before \\r\\n');
  const cr = new LineIndex('ab\rcd\nef');
  assert.equal(cr.lineCount, 3, 'a lone \\r breaks the line, as in LSP');
  assert.deepEqual(cr.position(4), { line: 1, character: 1 });
  assert.equal(new LineIndex('ab\ncd').offsetAt({ line: 0, character: 99 }), 2);
  assert.equal(li.lineEnd(0), 1, 'line end excludes \\r\\n');
  assert.equal(li.offsetAt({ line: 9, character: 0 }), text.length);
  assert.equal(li.lineCount, 3);
});

test('diffEdit finds the changed middle and never splits a surrogate pair', () => {
  const e = diffEdit('abc\ndef', 'abc\ndXef')!;
  assert.equal(e.startIndex, 5);
  assert.equal(e.oldEndIndex, 5);
  assert.equal(e.newEndIndex, 6);
  assert.deepEqual(e.startPosition, { row: 1, column: 1 });
  assert.equal(diffEdit('same', 'same'), undefined);
  const s = diffEdit('x😀y', 'x😁y')!;
  assert.equal(s.startIndex, 1, 'starts before the high surrogate');
});

test('sanitizer keeps length and line breaks, blanks annotations, rewrites iterators', () => {
  const src = [
    'static int __init f(void __user *p, void __iomem *io) __acquires(x)',
    '{',
    '\tstruct foo *f = container_of(p, struct foo, node);',
    '\tsize_t n = sizeof(struct foo);',
    '\tlist_for_each_entry(pos, &head, node) {',
    '\t\tx++;',
    '\t}',
    '\tfor_each_sgtable_dma_sg(sgt, sg, i)',
    '\t\ty += sg_dma_len(sg);',
    '\tfoo_for_each(a, b);',
    '}',
  ].join('\n');
  const s = sanitize(src);
  assert.equal(s.text.length, src.length);
  assert.deepEqual(s.text.split('\n').map((l) => l.length), src.split('\n').map((l) => l.length));
  assert.ok(!/__user|__iomem|__init|__acquires/.test(s.text));
  assert.match(s.text, /container_of\(p,\s+foo, node\)/);
  assert.match(s.text, /sizeof\(struct foo\)/, 'sizeof keeps its type');
  assert.match(s.text, /while\s+\(pos, &head, node\) \{/);
  assert.match(s.text, /while\s+\(sgt, sg, i\)/);
  assert.match(s.text, /foo_for_each\(a, b\);/, 'a call followed by ; is left alone');
  assert.deepEqual([...s.iterators.values()].sort(), ['for_each_sgtable_dma_sg', 'list_for_each_entry']);
});

test('the sanitizer removes the ERROR nodes kernel idioms cause', async () => {
  const analyzer = await analyzerP;
  const src = 'static void f(struct acme *a)\n{\n\tstruct b *x = container_of(a, struct b, m);\n\tlist_for_each_entry(x, &a->l, n) {\n\t\tg(x);\n\t}\n\twritel(0, (void __iomem *)a->io);\n}\n';
  const doc = analyzer.parse(src);
  try {
    assert.equal(doc.tree.rootNode.hasError, false);
  } finally {
    doc.delete();
  }
});

test('incremental reparse gives the same tree as a fresh parse', async () => {
  const analyzer = await analyzerP;
  let text = 'int f(void)\n{\n\treturn g(1);\n}\n';
  let doc = analyzer.parse(text);
  const edits: Array<[number, string]> = [
    [text.indexOf('1'), '2'],
    [text.indexOf('g'), 'list_for_each_entry(p, h, m) { x(); }\n\t'],
    [0, '/* ✓ */ '],
  ];
  for (const [at, ins] of edits) {
    text = text.slice(0, at) + ins + text.slice(at);
    doc = analyzer.parse(text, doc);
    const fresh = analyzer.parse(text);
    assert.equal(doc.tree.rootNode.toString(), fresh.tree.rootNode.toString());
    fresh.delete();
  }
  doc.delete();
});

test('parsing never fails: garbage gives a tree, not an exception', async () => {
  const analyzer = await analyzerP;
  for (const junk of ['', '}}}}{{{', '\u0000\u0001\u0002', '#if\n#else\n', 'x'.repeat(10000), '('.repeat(5000)]) {
    const r = analyzer.analyzeText(junk);
    assert.deepEqual(r.findings, []);
  }
});

test('CFG: goto labels join error paths, returns reach exit', async () => {
  const analyzer = await analyzerP;
  const src = `static int f(struct d *d)
{
	int ret;

	ret = a(d);
	if (ret)
		goto err;
	ret = b(d);
	if (ret)
		goto err_a;
	return 0;
err_a:
	undo_a(d);
err:
	return ret;
}
`;
  const doc = analyzer.parse(src);
  try {
    const ff = new FileFacts(doc, /\b(a|b)\b/);
    const fn = ff.fn('f')!;
    const labels = fn.cfg.nodes.filter((n) => n.label).map((n) => n.label);
    assert.deepEqual(labels.sort(), ['err', 'err_a']);
    const err = fn.cfg.nodes.find((n) => n.label === 'err')!;
    assert.equal(err.pred.length, 2, 'err is reached by the goto and by falling through from err_a');
    const returns = fn.cfg.nodes.filter((n) => n.kind === 'return');
    assert.equal(returns.length, 2);
    for (const r of returns) assert.deepEqual(r.succ, [fn.cfg.exit]);
    assert.deepEqual(fn.calls.map((c) => c.name), ['a', 'b', 'undo_a']);
  } finally {
    doc.delete();
  }
});

test('light AST copy keeps operators and fields', async () => {
  const analyzer = await analyzerP;
  const doc = analyzer.parse('int x = !a && b->c;');
  try {
    const ast = copyTree(doc.tree.rootNode);
    const bin = find(ast, 'binary_expression')!;
    assert.equal(bin.op, '&&');
    assert.equal(find(ast, 'unary_expression')!.op, '!');
    assert.equal(find(ast, 'field_expression')!.op, '->');
  } finally {
    doc.delete();
  }
  function find(n: ReturnType<typeof copyTree>, type: string): ReturnType<typeof copyTree> | undefined {
    if (n.type === type) return n;
    for (const c of n.children) {
      const f = find(c, type);
      if (f) return f;
    }
    return undefined;
  }
});

test('decodeBytes: UTF-8, latin-1 fallback, binary refused', () => {
  assert.deepEqual(decodeBytes(Buffer.from('é', 'utf8')), { text: 'é', encoding: 'utf-8' });
  assert.deepEqual(decodeBytes(Buffer.from([0x63, 0xe9])), { text: 'cé', encoding: 'latin-1' });
  assert.ok('binary' in decodeBytes(Buffer.from([0x7f, 0x45, 0x4c, 0x46, 0, 1])));
});

test('the prefilter pattern is derived from the rules', () => {
  const re = interestingPattern();
  assert.ok(re.test('sgt = dma_buf_map_attachment(a, d);'));
  assert.ok(re.test('.type = MEMORY_DEVICE_PRIVATE,'));
  assert.ok(!re.test('int main(void) { return 0; }'));
});
