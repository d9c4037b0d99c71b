/**
 * The performance machinery must not change a single answer. Each shortcut is
 * compared here with the slow way it replaces:
 *
 * - the byte prefilter (rules/prefilter.ts) with the word-boundary regex;
 * - running only the rules whose needs a file mentions with running them all;
 * - incremental analysis (reused copies of unchanged functions, core/ast.ts
 *   AstCache) with a fresh parse and analysis, after every edit of a series;
 * - the language server's tree budget (lsp/analysers.ts) with no budget;
 * - `dmalens check` with worker threads (cli/bulk.ts) with the loop alone,
 *   byte for byte on stdout and stderr;
 * - the workspace lock pass in worker threads (node/workspaceWorkers.ts)
 *   with the one-thread pass.
 *
 * The same comparisons over Debian's 6.12 tree run when the tree is cached
 * (scripts/kernel-tree.js; DMALENS_SKIP_KERNEL=1 skips them), and scripts/bench.js
 * repeats the last one on the whole tree. Wall-clock time is never asserted.
 */
import { describe, test } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Analyzer, type ParsedFile } from '../src/core/analyzer';
import { sanitize } from '../src/core/sanitize';
import { binaryReason, decodeBytes } from '../src/core/text';
import type { AnalysisResult, AnalyzeOptions } from '../src/core/types';
import { main } from '../src/cli/main';
import { MIN_FILES } from '../src/cli/bulk';
import { CAnalyser } from '../src/lsp/analysers';
import { loadWasm } from '../src/node/assets';
import { collectWorkspaceFacts, type WorkspaceResult } from '../src/node/workspace';
import { collectWorkspaceFactsInWorkers } from '../src/node/workspaceWorkers';
import { WordFilter } from '../src/rules/prefilter';
import { interestingPattern, mayMatter, mayMatterBytes, RULES, runRules } from '../src/rules/registry';

const FIXTURES = path.resolve(__dirname, '../../test/fixtures/rules');
const BIN = path.resolve(__dirname, '..', '..', 'bin', 'dmalens.js');
const REPO = path.resolve(__dirname, '..', '..', '..');

function sourceFiles(dir: string): string[] {
  const out: string[] = [];
  for (const e of fs.readdirSync(dir, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1))) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...sourceFiles(p));
    else if (e.name.endsWith('.c') || e.name.endsWith('.h')) out.push(p);
  }
  return out;
}

function versionOf(file: string): AnalyzeOptions {
  const v = /(?:^|\/)v(\d+)\.(\d+)\//.exec(file);
  return v ? { kernelVersion: { major: +v[1], minor: +v[2] } } : {};
}

/** What a result says, as one comparable value. */
function answer(r: AnalysisResult): unknown {
  return { findings: r.findings, notices: r.notices, errorNodes: r.errorNodes };
}

const analyzerP = Analyzer.create(loadWasm());
const fixtures = sourceFiles(FIXTURES);

/** A small deterministic generator (the tests must repeat exactly). */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

function kernelTree(): string | undefined {
  if (process.env.DMALENS_SKIP_KERNEL === '1') return undefined;
  try {
    const script = require(path.join(REPO, 'scripts', 'kernel-tree.js')) as { cacheRoot(): string };
    const tree = path.join(script.cacheRoot(), 'linux-source-6.12', 'linux-source-6.12');
    return fs.existsSync(path.join(tree, 'Makefile')) && fs.existsSync(path.join(script.cacheRoot(), 'linux-source-6.12', '.complete')) ? tree : undefined;
  } catch {
    return undefined;
  }
}

describe('prefilter on bytes', () => {
  const regex = interestingPattern();

  test('agrees with the word-boundary regex on every fixture and on edited variants', () => {
    const words = RULES.flatMap((r) => r.needs);
    let matched = 0;
    for (const file of fixtures) {
      const bytes = fs.readFileSync(file);
      const text = bytes.toString('latin1');
      assert.equal(mayMatterBytes(bytes), regex.test(text), file);
      if (regex.test(text)) matched++;
      // The same text with each needed word glued to a neighbour, or cut short.
      for (const w of words) {
        const at = text.indexOf(w);
        if (at < 0) continue;
        for (const variant of [text.slice(0, at) + 'x' + text.slice(at), text.slice(0, at + w.length) + '_' + text.slice(at + w.length), text.slice(0, at + w.length - 1) + text.slice(at + w.length)]) {
          assert.equal(mayMatterBytes(Buffer.from(variant, 'latin1')), regex.test(variant), `${file}: ${w}`);
        }
      }
    }
    assert.ok(matched > fixtures.length / 2);
  });

  test('agrees on random byte strings built from the words, edges of the buffer included', () => {
    const words = [...new Set(RULES.flatMap((r) => r.needs))];
    const pieces = [...words, ' ', '\n', '(', 'x', '_', '9', '\u00e9', '\u00ff', 'dma_', 'pci_p2p', '->'];
    const rand = rng(42);
    for (let i = 0; i < 3000; i++) {
      let s = '';
      const n = 1 + Math.floor(rand() * 6);
      for (let k = 0; k < n; k++) s += pieces[Math.floor(rand() * pieces.length)];
      const latin1 = Buffer.from(s, 'latin1');
      const utf8 = Buffer.from(s, 'utf8');
      assert.equal(mayMatterBytes(latin1), regex.test(s), JSON.stringify(s));
      assert.equal(mayMatterBytes(utf8), regex.test(utf8.toString('latin1')), JSON.stringify(s));
      assert.equal(mayMatter(s), regex.test(s));
    }
  });

  test('a word list the byte search cannot take falls back to the regex', () => {
    const f = new WordFilter(['a', 'x.y', 'plain_word']);
    for (const s of ['a', 'ba', 'x.y', 'xzy', 'plain_word', 'plain_words', '']) {
      assert.equal(f.testBytes(Buffer.from(s)), f.pattern.test(s), s);
    }
    assert.equal(new WordFilter([]).testBytes(Buffer.from('anything')), false);
    assert.deepEqual([...new WordFilter(['ab', 'abc']).wordsIn('abc ab abcd ab')].sort(), ['ab', 'abc']);
  });

  test('binaryReason takes its shortcut only when the answer is the same', () => {
    const slow = (b: Uint8Array): string | undefined => {
      const sample = b.subarray(0, 8192);
      let control = 0;
      for (const x of sample) {
        if (x === 0) return 'contains NUL bytes (binary file)';
        if (x < 8 || (x > 13 && x < 32 && x !== 27)) control++;
      }
      return sample.length > 0 && control / sample.length > 0.1 ? 'mostly control characters (binary file)' : undefined;
    };
    const rand = rng(3);
    for (let i = 0; i < 500; i++) {
      const b = new Uint8Array(1 + Math.floor(rand() * 300));
      for (let k = 0; k < b.length; k++) b[k] = rand() < 0.8 ? 32 + Math.floor(rand() * 90) : Math.floor(rand() * 40);
      assert.equal(binaryReason(b), slow(b));
    }
    assert.equal(binaryReason(new Uint8Array(0)), undefined);
    assert.deepEqual(decodeBytes(Buffer.from('int x;\n')), { text: 'int x;\n', encoding: 'utf-8' });
  });
});

describe('only the rules a file can fire', () => {
  test('give the findings and notices of every rule, on every fixture', async () => {
    const analyzer = await analyzerP;
    for (const file of fixtures) {
      const doc = analyzer.parse(fs.readFileSync(file, 'utf8'));
      try {
        const options = versionOf(file);
        assert.deepEqual(answer(runRules(doc, options)), answer(runRules(doc, options, RULES)), file);
      } finally {
        doc.delete();
      }
    }
  });
});

/** Edits a series of files: insertions above, inside and below functions, deletions, undo. */
function editSeries(text: string, seed: number, count: number): string[] {
  const rand = rng(seed);
  const out: string[] = [];
  let cur = text;
  const history: string[] = [];
  for (let i = 0; i < count; i++) {
    const pick = rand();
    const at = Math.floor(rand() * (cur.length + 1));
    history.push(cur);
    if (pick < 0.35) cur = cur.slice(0, at) + ' ' + cur.slice(at);
    else if (pick < 0.5) cur = cur.slice(0, at) + '\n' + cur.slice(at);
    else if (pick < 0.65) cur = cur.slice(0, at) + cur.slice(at + 1);
    else if (pick < 0.75) {
      const line = cur.lastIndexOf('\n', at) + 1;
      cur = cur.slice(0, line) + '/* moved */\n' + cur.slice(line);
    } else if (pick < 0.85) cur = cur.slice(0, at) + ';' + cur.slice(at);
    else if (pick < 0.9 && history.length > 1) cur = history[history.length - 2]; // undo
    else if (pick < 0.95 && at < cur.length) cur = cur.slice(0, at) + SWAP(cur[at]) + cur.slice(at + 1); // same length: `<` made `>`
    else cur = cur.slice(0, at) + 'x' + cur.slice(at);
    out.push(cur);
  }
  return out;
}

/** A character replaced by one of the same length that changes what the code means. */
function SWAP(c: string): string {
  const pairs: Record<string, string> = { '<': '>', '>': '<', '+': '-', '-': '+', '0': '1', '1': '0', '!': ' ', '&': '|', '|': '&', '=': '!', '(': '[', ')': ']' };
  return pairs[c] ?? (/\w/.test(c) ? (c === 'x' ? 'y' : 'x') : c);
}

async function incrementalMatchesFresh(text: string, seed: number, edits: number, options: AnalyzeOptions): Promise<{ hits: number }> {
  const analyzer = await analyzerP;
  let doc: ParsedFile = analyzer.parse(text);
  analyzer.analyze(doc, options);
  let hits = 0;
  try {
    for (const [i, next] of editSeries(text, seed, edits).entries()) {
      doc = analyzer.parse(next, doc);
      const before = doc.asts.hits;
      const incremental = analyzer.analyze(doc, options);
      hits += doc.asts.hits - before;
      const fresh = analyzer.analyzeText(next, options);
      const fromScratch = analyzer.parse(next);
      try {
        assert.deepEqual(answer(incremental), answer(analyzer.analyze(fromScratch, options)), `edit ${i + 1}`);
      } finally {
        fromScratch.delete();
      }
      assert.deepEqual(incremental.findings, fresh.findings, `edit ${i + 1}`);
    }
  } finally {
    doc.delete();
  }
  return { hits };
}

describe('incremental analysis', () => {
  test('after every edit of a series, the same answer as a fresh parse and analysis (fixtures)', async () => {
    let hits = 0;
    const withFindings = fixtures.filter((f) => /bad/.test(path.basename(f))).slice(0, 12);
    for (const [k, file] of withFindings.entries()) hits += (await incrementalMatchesFresh(fs.readFileSync(file, 'utf8'), 100 + k, 25, versionOf(file))).hits;
    assert.ok(hits > 0, 'the copies of unchanged functions were reused');
  });

  const tree = kernelTree();
  test('the same on large kernel files', { skip: tree ? false : 'no cached 6.12 tree (scripts/kernel-tree.js), or DMALENS_SKIP_KERNEL=1' }, async () => {
    for (const [k, rel] of ['drivers/gpu/drm/amd/amdgpu/amdgpu_ttm.c', 'drivers/dma-buf/dma-buf.c', 'mm/memremap.c'].entries()) {
      const { hits } = await incrementalMatchesFresh(fs.readFileSync(path.join(tree!, rel), 'latin1'), 7 + k, 12, { kernelVersion: { major: 6, minor: 12 } });
      assert.ok(hits > 0, rel);
    }
  });

  test('an edit that keeps a function\'s length still gets a new copy of it (the reparse may keep its first child)', async () => {
    const analyzer = await analyzerP;
    const ops = (n: { op?: string; children: unknown[] }, out: string[] = []): string[] => {
      if (n.op) out.push(n.op);
      for (const c of n.children as Array<{ op?: string; children: unknown[] }>) ops(c, out);
      return out;
    };
    const before = 'static int f(int d)\n{\n\tif (d < 0)\n\t\treturn 1;\n\treturn 0;\n}\nstatic int g(void)\n{\n\treturn 2;\n}\n';
    let doc = analyzer.parse(before);
    try {
      const [f0, g0] = doc.tree.rootNode.namedChildren.map((n) => doc.asts.copy(n!));
      assert.deepEqual(ops(f0), ['<']);
      doc = analyzer.parse(before.replace('d < 0', 'd > 0'), doc);
      const [f1, g1] = doc.tree.rootNode.namedChildren.map((n) => doc.asts.copy(n!));
      assert.deepEqual(ops(f1), ['>'], 'the copy of the edited function');
      assert.equal(g1, g0, 'the untouched function is still reused');
    } finally {
      doc.delete();
    }
  });

  test('the sanitizer keeps lengths and line breaks, and finds iterators only at statements', () => {
    const src = 'void f(void)\n{\n\tlist_for_each_entry(p, h, m) {\n\t}\n\tx = 1for_each(a) ;\n\tscoped_guard(mutex, &l) {\n\t}\n\tmy_for_each_x (a, b) y();\n}\n';
    const s = sanitize(src);
    assert.equal(s.text.length, src.length);
    assert.deepEqual([...s.text].map((c, i) => (c === '\n') === (src[i] === '\n')).every(Boolean), true);
    assert.deepEqual([...s.iterators.values()], ['list_for_each_entry', 'scoped_guard', 'my_for_each_x']);
    const odd = '\ud800 int __user *p; \u00e9';
    assert.equal(sanitize(odd).text, odd.replace('__user', '      '));
    const bom = '\ufeffint __user *p;\n';
    assert.equal(sanitize(bom).text, bom.replace('__user', '      '));
  });
});

describe('language server tree budget', () => {
  test('documents over the budget lose their tree, and are analysed the same afterwards', async () => {
    const analyzer = await analyzerP;
    const c = new CAnalyser(analyzer, 1);
    const texts = fixtures.slice(0, 5).map((f) => fs.readFileSync(f, 'utf8'));
    const states: Array<ParsedFile | undefined> = [];
    const first = texts.map((t, i) => {
      const r = c.analyze(t, undefined, {});
      states[i] = r.state;
      return answer(r.result);
    });
    assert.equal(c.keptTrees().documents, 1, 'only the most recent keeps its tree');
    assert.equal(states.filter((s) => s === undefined).length, 0, 'every fixture names something a rule needs');
    assert.ok(states.slice(0, -1).every((s) => s!.deleted));
    texts.forEach((t, i) => {
      const r = c.analyze(t + '\n', states[i], {});
      states[i] = r.state;
      assert.deepEqual(answer(r.result), first[i]);
    });
    for (const s of states) c.dispose(s);
    assert.equal(c.keptTrees().documents, 0);
  });
});

describe('dmalens check with worker threads', () => {
  /** `workers` undefined: the default (workers once the walk has found MIN_FILES files). */
  async function run(workers: string | undefined, args: string[]): Promise<{ code: number; out: string; err: string }> {
    const saved = process.env.DMALENS_WORKERS;
    if (workers === undefined) delete process.env.DMALENS_WORKERS;
    else process.env.DMALENS_WORKERS = workers;
    let out = '';
    let err = '';
    try {
      const code = await main(args, { out: (s) => void (out += s), err: (s) => void (err += s) });
      return { code, out, err: err.replace(/\(\d+\.\d+ s\)/g, '(T s)') };
    } finally {
      if (saved === undefined) delete process.env.DMALENS_WORKERS;
      else process.env.DMALENS_WORKERS = saved;
    }
  }

  function tree(): string {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dmalens-bulk-'));
    fs.cpSync(FIXTURES, path.join(dir, 'fixtures'), { recursive: true });
    fs.writeFileSync(path.join(dir, 'binary.c'), Buffer.from([0x69, 0x6e, 0x74, 0, 1, 2]));
    fs.writeFileSync(path.join(dir, 'large.c'), 'int dma_buf_map_attachment;\n'.repeat(400));
    fs.writeFileSync(path.join(dir, 'latin1.c'), Buffer.from('/* caf\xe9 */\nvoid f(struct dma_buf_attachment *a)\n{\n\tdma_buf_map_attachment(a, 0);\n}\n', 'latin1'));
    fs.writeFileSync(path.join(dir, 'series.patch'), 'not a patch at all\n');
    fs.symlinkSync(path.join(dir, 'nowhere.c'), path.join(dir, 'dangling.c'));
    return dir;
  }

  test('the same output, exit code and messages as the loop alone, in every format', async () => {
    const dir = tree();
    try {
      for (const format of ['text', 'json', 'sarif']) {
        const args = ['check', '--summary', '--format', format, '--max-size', '10000', dir, path.join(dir, 'series.patch')];
        const serial = await run('0', args);
        const parallel = await run('3', args);
        assert.deepEqual(parallel, serial, format);
        // By default the workers start in the middle of the walk, once it has found MIN_FILES files.
        assert.ok(sourceFiles(dir).length > MIN_FILES);
        assert.deepEqual(await run(undefined, args), serial, format);
        assert.ok(serial.out.length > 100 && serial.err.includes('skipped'), format);
      }
      const explain = ['check', '--explain', '--kernel', '6.12', '--disable', 'DMABUF-ERRPTR', dir];
      assert.deepEqual(await run('2', explain), await run('0', explain));
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test('the built command (bundle or tsc output) gives the same bytes with and without workers', () => {
    const dir = tree();
    try {
      const go = (workers: string) => {
        const r = spawnSync(process.execPath, [BIN, 'check', '--format', 'json', dir], { encoding: 'utf8', env: { ...process.env, DMALENS_WORKERS: workers }, timeout: 120_000 });
        return { code: r.status, out: r.stdout, err: r.stderr };
      };
      assert.deepEqual(go('2'), go('0'));
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  const kernel = kernelTree();
  test('the same findings on the 6.12 tree, prefilter and rule choice included', { skip: kernel ? false : 'no cached 6.12 tree (scripts/kernel-tree.js), or DMALENS_SKIP_KERNEL=1', timeout: 30 * 60_000 }, async () => {
    const analyzer = await analyzerP;
    const dirs = ['drivers/dma-buf', 'drivers/gpu/drm/amd/amdgpu', 'drivers/pci', 'mm', 'net/core', 'drivers/infiniband/core'].map((d) => path.join(kernel!, d));
    let mattered = 0;
    for (const file of dirs.flatMap((d) => sourceFiles(d))) {
      const bytes = fs.readFileSync(file);
      const text = bytes.toString('latin1');
      assert.equal(mayMatterBytes(bytes), mayMatter(text), file);
      if (!mayMatter(text)) continue;
      mattered++;
      const decoded = decodeBytes(bytes);
      if ('binary' in decoded) continue;
      const doc = analyzer.parse(decoded.text);
      try {
        const options: AnalyzeOptions = { kernelVersion: { major: 6, minor: 12 } };
        assert.deepEqual(answer(runRules(doc, options)), answer(runRules(doc, options, RULES)), file);
      } finally {
        doc.delete();
      }
    }
    assert.ok(mattered > 50);
    const args = ['check', '--format', 'json', ...dirs];
    assert.deepEqual(await run('2', args), await run('0', args));
  });
});

describe('workspace lock pass in worker threads', () => {
  /** Facts and stats as comparable values (map order included: the first exporter of a wrapper wins). */
  const plain = (r: WorkspaceResult | undefined) =>
    r && {
      lockFns: [...(r.facts.lockFns ?? new Map())],
      calledLocked: [...(r.facts.calledLocked ?? new Set())].sort(),
      stats: { ...r.stats, seconds: 0 },
    };

  test('the same facts as the one-thread pass, on a workspace with cross-file callers', async () => {
    const analyzer = await analyzerP;
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dmalens-wsw-'));
    try {
      const write = (name: string, text: string) => {
        fs.writeFileSync(path.join(dir, name), text);
        return path.join(dir, name);
      };
      const files = [
        write('a_helper.c', 'int acme_map(struct acme_bo *bo)\n{\n\tbo->sgt = dma_buf_map_attachment(bo->attach, 0);\n\treturn 0;\n}\n'),
        write('b_caller.c', 'static int v(struct acme_bo *bo)\n{\n\tint r;\n\tdma_resv_lock(bo->base.resv, NULL);\n\tr = acme_map(bo);\n\tdma_resv_unlock(bo->base.resv);\n\treturn r;\n}\n'),
        write('c_wrapper.c', 'void acme_lock(struct acme_bo *bo)\n{\n\tdma_resv_lock(bo->base.resv, NULL);\n}\n'),
        write('d_wrapper_again.c', 'void acme_lock(struct acme_bo *bo)\n{\n\tdma_resv_assert_held(bo->base.resv);\n}\n'),
        write('e_binary.c', 'int x;\x00\x01'),
        ...fixtures.slice(0, 60),
      ];
      const one = collectWorkspaceFacts(analyzer, files, {});
      assert.ok(one.facts.calledLocked?.has('acme_map'));
      for (const workers of [1, 3]) assert.deepEqual(plain(await collectWorkspaceFactsInWorkers(files, {}, { workers }).result), plain(one), `${workers} workers`);
      const cancelled = collectWorkspaceFactsInWorkers(files, {}, { workers: 2 });
      cancelled.cancel();
      assert.equal(await cancelled.result, undefined);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  const kernel = kernelTree();
  test('the same facts on kernel drivers', { skip: kernel ? false : 'no cached 6.12 tree (scripts/kernel-tree.js), or DMALENS_SKIP_KERNEL=1', timeout: 30 * 60_000 }, async () => {
    const analyzer = await analyzerP;
    const files = ['drivers/gpu/drm/amd/amdgpu', 'drivers/gpu/drm/ttm', 'drivers/gpu/drm/xe', 'drivers/dma-buf', 'drivers/gpu/drm/i915/gem'].flatMap((d) => sourceFiles(path.join(kernel!, d)));
    const one = collectWorkspaceFacts(analyzer, files, { kernelVersion: { major: 6, minor: 12 } });
    assert.ok((one.facts.lockFns?.size ?? 0) > 0);
    const many = await collectWorkspaceFactsInWorkers(files, { kernelVersion: { major: 6, minor: 12 } }, { workers: 2 }).result;
    assert.deepEqual(plain(many), plain(one));
  });
});
