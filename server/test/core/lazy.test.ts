/**
 * The lazy parse (core/skeleton.ts, CParser.parseLazily): which bodies the
 * scan leaves out, that leaving them out changes nothing the analysis sees,
 * and how a lazily parsed document becomes an ordinary one (the language
 * server's first parse of a document). kernel.test.ts compares the findings
 * on the real trees too.
 */
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Analyzer, type ParsedFile } from '../../src/core/analyzer';
import { FileFacts } from '../../src/core/facts';
import { functionBodies } from '../../src/core/skeleton';
import { sanitize } from '../../src/core/sanitize';
import { interestingPattern } from '../../src/rules/registry';
import { loadWasm } from '../../src/node/assets';
import { CAnalyser } from '../../src/lsp/analysers';

const analyzerP = Analyzer.create(loadWasm());
const REPO = path.resolve(__dirname, '..', '..', '..', '..');
const FIXTURES = path.join(REPO, 'server', 'test', 'fixtures', 'rules');

/** The rule fixtures (some in vMAJOR.MINOR/ folders: the kernel they are for) and the examples. */
function sources(): string[] {
  const under = (dir: string) => fs.readdirSync(dir, { recursive: true, encoding: 'utf8' }).filter((f) => /\.[ch]$/.test(f)).map((f) => path.join(dir, f));
  return [...under(FIXTURES), ...under(path.join(REPO, 'examples', 'drivers'))];
}

/** A body long enough to be left out. */
const BODY = '\n\tint a = 0;\n' + '\ta += f(a, "}{", \'}\'); /* } */ // {\n'.repeat(8);

/** The texts of the left-out parts. */
function bodies(text: string): string[] {
  return functionBodies(text).map((b) => text.slice(b.start, b.end));
}

test('the scan leaves out function, struct, union and enum bodies; braces in strings, characters and comments do not count', () => {
  const src = `static int f(struct d *d)\n{${BODY}}\nstruct s {${BODY}};\nunion {${BODY}} u;\nenum e {${BODY}};\n`;
  assert.deepEqual(bodies(src), [BODY, BODY, BODY, BODY]);
});

test('the scan keeps initializers and short bodies; a body after an attribute with arguments still goes', () => {
  const src = `static const struct dma_buf_ops ops = {${BODY}};\nint g(void) { return 0; }\nint x[] = {${BODY}};\n`;
  assert.deepEqual(bodies(src), []);
  // After an attribute with arguments (the sanitizer has blanked the known ones): still a function.
  assert.equal(bodies(`int h(void) __attr(x)\n{${BODY}}\n`).length, 1);
});

test('conditionals: balanced groups inside a body are fine; unbalanced braces anywhere leave nothing out', () => {
  const inside = `int f(void)\n{${BODY}#ifdef A\n\tif (x) {\n\t\ty();\n\t}\n#else\n\tz();\n#endif\n}\nint g(void)\n{${BODY}}\n`;
  assert.equal(bodies(inside).length, 2);
  // Both arms open a brace: only one of them closes in a full parse, which then recovers as it can: nothing is left out.
  const arms = `int a(void)\n{${BODY}}\nint f(void)\n{\n#ifdef A\n\tif (x) {\n#else\n\tif (y) {\n#endif\n\t\tz();\n\t}${BODY}}\nint g(void)\n{${BODY}}\n`;
  assert.deepEqual(bodies(arms), [], 'not even the function before the unbalanced arms');
  // Two headers in the arms of a conditional, one body.
  const headers = `#ifdef A\nint f(int a)\n{\n#else\nint f(void)\n{\n#endif${BODY}}\nint g(void)\n{${BODY}}\n`;
  assert.deepEqual(bodies(headers), []);
  // A body opened in a conditional and closed outside it.
  assert.deepEqual(bodies(`#if X\nint f(void)\n{${BODY}\n#endif\n}\n`), []);
  // Unterminated comment or string, a stray closing brace, a body still open at the end: nothing.
  assert.deepEqual(bodies(`int f(void)\n{${BODY}}\n/* never closed {\nint g(void) { return 0; }\n`), []);
  assert.deepEqual(bodies(`int f(void)\n{${BODY}}\nchar *s = "never closed`), []);
  assert.deepEqual(bodies(`int f(void)\n{${BODY}}\n}\n`), []);
  assert.deepEqual(bodies(`}\nint f(void)\n{${BODY}}\n`), []);
  assert.deepEqual(bodies(`int f(void)\n{${BODY}}\nint g(void)\n{${BODY}`), []);
});

/** `check` on `text` parsed in full and lazily, each with its FileFacts; both trees freed after. */
async function paired(text: string, check: (full: ParsedFile, lazy: ParsedFile, a: FileFacts, b: FileFacts) => void): Promise<void> {
  const analyzer = await analyzerP;
  const full = analyzer.parse(text);
  const lazy = analyzer.parseLazily(text);
  try {
    const pattern = interestingPattern(undefined, true);
    check(full, lazy, new FileFacts(full, pattern), new FileFacts(lazy, pattern));
  } finally {
    full.delete();
    lazy.delete();
  }
}

test('a lazily parsed file gives every function and table, and the same function trees as a full parse', async () => {
  const files = sources();
  assert.ok(files.length > 200);
  let left = 0;
  let fromRanges = 0;
  for (const file of files) {
    const text = fs.readFileSync(file, 'utf8');
    await paired(text, (full, lazy, a, b) => {
      assert.deepEqual([...b.functions.keys()], [...a.functions.keys()], file);
      assert.deepEqual(b.initializers.length, a.initializers.length, file);
      assert.deepEqual([...b.roles.keys()], [...a.roles.keys()], file);
      for (const [name, info] of a.functions) {
        const lazyInfo = b.functions.get(name)!;
        assert.deepEqual(lazy.copyFunction(lazyInfo.tsNode), full.copyFunction(info.tsNode), `${file}: ${name}`);
      }
      if (!lazy.parsedWhole) fromRanges++;
      assert.equal(lazy.fullRoot().toString(), full.tree.rootNode.toString(), file);
      left += functionBodies(sanitize(text).text).length;
    });
  }
  assert.ok(left > 100, `only ${left} bodies left out over the fixtures`);
  assert.ok(fromRanges > 100, `only ${fromRanges} files had their functions from their own ranges`);
});

test('analyzeText with lazy: the same findings and notices on every rule fixture and example', async () => {
  const analyzer = await analyzerP;
  for (const file of sources()) {
    const text = fs.readFileSync(file, 'utf8');
    const m = /\/v(\d+)\.(\d+)\//.exec(file);
    const options = m ? { kernelVersion: { major: +m[1], minor: +m[2] } } : {};
    const full = analyzer.analyzeText(text, options);
    const lazy = analyzer.analyzeText(text, options, { lazy: true });
    assert.deepEqual([lazy.findings, lazy.notices], [full.findings, full.notices], file);
  }
});

test('a full parse after a lazy one sees the whole text (the included ranges do not stay with the parser)', async () => {
  const analyzer = await analyzerP;
  const text = `int f(void)\n{${BODY}}\n`;
  const lazy = analyzer.parseLazily(text);
  assert.match(lazy.tree.rootNode.toString(), /compound_statement\)\)\)$/);
  assert.ok(!lazy.tree.rootNode.toString().includes('call_expression'));
  lazy.delete();
  const full = analyzer.parse(text);
  assert.ok(full.tree.rootNode.toString().includes('call_expression'));
  full.delete();
});

test('lazy parse of text with characters outside latin-1: offsets are UTF-16 code units throughout', async () => {
  const text = `/* é€😀 */\nint f(void)\n{\n\t/* ü😀 */${BODY}}\nint g(void)\n{${BODY}\tdma_buf_put(x);\n}\n`;
  await paired(text, (full, lazy, a, b) => {
    assert.ok(!lazy.complete);
    for (const name of ['f', 'g']) assert.deepEqual(lazy.copyFunction(b.functions.get(name)!.tsNode), full.copyFunction(a.functions.get(name)!.tsNode));
    assert.ok(!lazy.parsedWhole, 'each function came from a parse of its own range, not from a full parse');
  });
});

test('a lazily parsed document as the previous tree: reparsed afresh, or incrementally once filled in', async () => {
  const analyzer = await analyzerP;
  const text = `int f(void)\n{${BODY}}\nint g(void)\n{${BODY}\tdma_buf_put(x);\n}\n`;
  const edited = text.replace('dma_buf_put(x)', 'dma_buf_put(y)');
  const fresh = analyzer.parse(edited);
  const expected = fresh.tree.rootNode.toString();
  fresh.delete();

  // Not filled in: the reparse cannot reuse a tree without bodies, and parses afresh.
  const lazy = analyzer.parseLazily(text);
  assert.ok(!lazy.complete);
  const afresh = analyzer.parse(edited, lazy);
  assert.ok(lazy.deleted);
  assert.equal(afresh.tree.rootNode.toString(), expected);
  afresh.delete();

  // Filled in: an ordinary tree, reparsed incrementally.
  const lazy2 = analyzer.parseLazily(text);
  assert.ok(lazy2.fillIn());
  assert.ok(lazy2.complete);
  assert.ok(lazy2.tree.rootNode.toString().includes('call_expression'));
  const incremental = analyzer.parse(edited, lazy2);
  assert.equal(incremental.tree.rootNode.toString(), expected);
  incremental.delete();

  // The same text again after the fill-in: the tree is kept, with every body.
  const lazy3 = analyzer.parseLazily(text);
  lazy3.fullRoot();
  const same = analyzer.parse(text, lazy3);
  assert.ok(same.complete && same.tree.rootNode.toString().includes('call_expression'));
  same.delete();
});

test('the language server: a document opened is parsed lazily, filled in once its diagnostics are published, then edited incrementally', async () => {
  const analyzer = await analyzerP;
  const c = new CAnalyser(analyzer);
  const file = path.join(FIXTURES, 'DMABUF-LOCKING', fs.readdirSync(path.join(FIXTURES, 'DMABUF-LOCKING')).find((f) => f.startsWith('bad'))!);
  const text = fs.readFileSync(file, 'utf8');
  const first = c.analyze(text, undefined, {});
  assert.ok(first.state && !first.state.complete, 'the first parse leaves bodies out');
  assert.deepEqual(first.result.findings, analyzer.analyzeText(text).findings);
  assert.equal(c.published(first.state), false, 'the same top-level items: the lazy answer stands');
  assert.ok(first.state.complete, 'filled in once the diagnostics are out');
  assert.equal(c.published(first.state), false, 'once');
  const edited = text + '\n/* edit */\n';
  const second = c.analyze(edited, first.state, {});
  assert.ok(second.state && second.state.complete);
  assert.deepEqual(second.result.findings, analyzer.analyzeText(edited).findings);
  c.dispose(second.state);
});

test('the language server: broken code read lazily is analysed again on the whole tree', async () => {
  const analyzer = await analyzerP;
  const c = new CAnalyser(analyzer);
  // A struct holding statements (the core fuzz suite found it): lazily an empty struct and a function after it;
  // in full, tree-sitter's recovery turns both into one ERROR, and a rule finds a mismatched sync in it.
  const text = "#include <linux/dma-buf.h>\n\nstruct acme_\n{\n\tint ret;\n\n\tret = dma_buf_begin_cpu_access(pcm->dmabuf, DMA_TO_DEVICE);\n\tif (ret)\n\t\treturn ret;\n\tiosys_map_memset(&pcm->map, 0, 0, pcm->period);\n\treturn dma_buf_end_cpu_access(pcm->dmabuf, DMA_FROM_DEVICE);\n}\n\nint acme_pcm_prime(struct acme_pcm *pcm)\n{\n\tstruct iosys_map map;\n\tint ret;\n\n\tret = dma_buf_vmap_unlocked(pcm->dmabuf, &map);\n\tif (ret)\n\t\treturn ret;\n\n\tret = dma_buf_begin_cpu_access(pcm->dmabuf, DMA_TO_DEVICE);\n\tif (ret)\n\t\tgoto out;\n\tiosys_map_memcpy_to(&map, 0, pcm->silence, pcm->period);\n\tdma_buf_end_cpu_access(pcm->dmabuf, DMA_TO_DEVICE);\n\tiosys_map_wr(&map, pcm->period, u32, 0);\nout:\n\tdma_buf_vunmap_unlocked(pcm->dmabuf, &map);\n\treturn ret;\n}\n";
  assert.deepEqual(analyzer.analyzeText(text, {}, { lazy: true }).findings, []);
  assert.deepEqual(analyzer.analyzeText(text).findings.map((f) => f.rule), ['DMABUF-CPU-ACCESS-SYNC']);
  const first = c.analyze(text, undefined, {});
  assert.ok(first.state && !first.state.complete);
  assert.equal(c.published(first.state), true, 'the whole tree has other top-level items: analyse again');
  const again = c.analyze(text, first.state, {});
  assert.ok(again.state && again.state.complete);
  assert.deepEqual(again.result, analyzer.analyzeText(text));
  assert.equal(c.published(again.state), false);
  c.dispose(again.state);
});

test('the language server: kernel code with ERROR nodes inside bodies keeps its lazy answer', async () => {
  const analyzer = await analyzerP;
  const c = new CAnalyser(analyzer);
  // A kernel macro the grammar does not know, inside a body: ERROR nodes there, the same top level.
  const text = `static int f(struct d *d)\n{${BODY}\tDEFINE_WAIT_FUNC(wait, woken_wake_function) x y z;\n\tdma_buf_pin(d->attach);\n}\nstatic int g(void)\n{${BODY}}\n`;
  const first = c.analyze(text, undefined, {});
  assert.ok(first.state && !first.state.complete);
  assert.equal(c.published(first.state), false);
  assert.ok(first.state.complete && first.state.tree.rootNode.hasError, 'the whole tree has ERROR nodes');
  c.dispose(first.state);
});
