/**
 * The built `dmalens` command, run as a child process (`node server/bin/dmalens.js`)
 * on temporary files: exit codes, stderr messages, the public output shapes.
 *
 * Assertions that need findings skip while no rules are registered.
 */
import { after, before, describe, test } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { scenarioRules } from '../src/model/explain';

const BIN = path.resolve(__dirname, '..', '..', 'bin', 'dmalens.js');
const DOCS = path.resolve(__dirname, '..', '..', '..', 'docs', 'rules');

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

let tmp: string;

function dmalens(...args: string[]): Run {
  const r = spawnSync(process.execPath, [BIN, ...args], { cwd: tmp, encoding: 'utf8', timeout: 60_000 });
  if (r.error) throw r.error;
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function write(rel: string, content: string | Buffer): string {
  const p = path.join(tmp, rel);
  fs.mkdirSync(path.dirname(p), { recursive: true });
  fs.writeFileSync(p, content);
  return rel;
}

function oneLine(s: string): string {
  return s.replace(/\s*[\r\n]+\s*/g, ' ').trim();
}

/** One line, `dmalens: ...`, no stack trace. */
function assertOneLineError(stderr: string, pattern: RegExp): void {
  const lines = stderr.split('\n').filter((l) => l.length > 0);
  assert.equal(lines.length, 1, `expected one line on stderr, got:\n${stderr}`);
  assert.match(lines[0], /^dmalens: /);
  assert.match(lines[0], pattern);
  assert.doesNotMatch(stderr, /^\s+at /m);
}

const CLEAN = `// SPDX-License-Identifier: GPL-2.0
#include <linux/module.h>

static int demo_add(int a, int b)
{
	return a + b;
}
`;

// Misuses from several rule families (the hazard catalog's "bad" examples).
// Every line starts with a comment holding multibyte characters, so a finding
// anywhere has a byte column different from its UTF-16 column.
const BAD_BODY = `#include <linux/dma-buf.h>
#include <linux/dma-resv.h>
#include <linux/memremap.h>
#include <linux/pci-p2pdma.h>

static struct sg_table *demo_map_locked(struct dma_buf *buf, struct dma_buf_attachment *att)
{
	struct sg_table *sgt;

	dma_resv_lock(buf->resv, NULL);
	sgt = dma_buf_map_attachment_unlocked(att, DMA_BIDIRECTIONAL);
	dma_resv_unlock(buf->resv);
	if (!sgt)
		return NULL;
	return sgt;
}

static struct sg_table *demo_map_unlocked(struct dma_buf_attachment *att)
{
	struct sg_table *sgt = dma_buf_map_attachment(att, DMA_TO_DEVICE);

	if (IS_ERR(sgt))
		return sgt;
	return sgt;
}

static struct dev_pagemap demo_pgmap;

static int demo_add_memory(struct device *dev, struct resource *res)
{
	void *addr;

	demo_pgmap.range.start = res->start;
	demo_pgmap.range.end = res->end;
	demo_pgmap.nr_range = 1;
	demo_pgmap.type = MEMORY_DEVICE_PRIVATE;
	addr = devm_memremap_pages(dev, &demo_pgmap);
	return PTR_ERR_OR_ZERO(addr);
}

static void demo_p2p_copy(struct pci_dev *pdev, const void *src, size_t len)
{
	void *buf = pci_alloc_p2pmem(pdev, len);

	if (!buf)
		return;
	memcpy(buf, src, len);
	pci_free_p2pmem(pdev, buf, len);
}
`;

function prefixed(prefix: string): string {
  return BAD_BODY.split('\n')
    .map((l) => (l.length > 0 ? `${prefix}${l}` : l))
    .join('\n');
}

const BAD_UTF8 = prefixed('/* é€🙂 */ ');
const BAD_LATIN1 = Buffer.from(prefixed('/* café ¼ */ '), 'latin1');

interface JsonFinding {
  file: string;
  line: number;
  column: number;
  endLine: number;
  endColumn: number;
  rule: string;
  severity: string;
  message: string;
  function?: string;
  related?: { line: number; column: number; message: string }[];
}

let ruleCount = 0;
let ruleIds: string[] = [];

before(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'dmalens-cli-'));
  write('clean.c', CLEAN);
  write('bad.c', BAD_UTF8);
  write('bad-latin1.c', BAD_LATIN1);
  write('latin1.c', Buffer.from('/* Copyright (c) Jos\xe9 M\xfcller */\n' + CLEAN, 'latin1'));
  write('blob.c', Buffer.from([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0]));
  write('tree/a.c', CLEAN);
  write('tree/sub/b.h', CLEAN);
  write('tree/data.bin.c', Buffer.from([0, 1, 2, 3]));
  const r = dmalens('rules', '--format', 'json');
  assert.equal(r.code, 0, r.stderr);
  const rules = JSON.parse(r.stdout).rules as { id: string }[];
  ruleCount = rules.length;
  ruleIds = rules.map((x) => x.id);
});

after(() => fs.rmSync(tmp, { recursive: true, force: true }));

const NEEDS_RULES = 'no rules registered yet (rules() is empty)';

describe('dmalens: usage', () => {
  test('--version prints the package version', () => {
    const r = dmalens('--version');
    assert.equal(r.code, 0);
    const pkg = JSON.parse(fs.readFileSync(path.resolve(__dirname, '..', '..', '..', 'package.json'), 'utf8'));
    assert.equal(r.stdout, `dmalens ${pkg.version}\n`);
  });

  test('help and --help print usage on stdout', () => {
    for (const arg of ['help', '--help', '-h']) {
      const r = dmalens(arg);
      assert.equal(r.code, 0);
      assert.match(r.stdout, /Usage:/);
      assert.match(r.stdout, /dmalens check/);
      assert.match(r.stdout, /dmalens rules/);
      assert.equal(r.stderr, '');
    }
    assert.match(dmalens('check', '--help').stdout, /--format text\|json\|sarif/);
  });

  test('no arguments: usage on stderr, exit 2', () => {
    const r = dmalens();
    assert.equal(r.code, 2);
    assert.equal(r.stdout, '');
    assert.match(r.stderr, /Usage:/);
  });

  test('bad option: exit 2, one line on stderr', () => {
    const r = dmalens('check', '--frobnicate', 'clean.c');
    assert.equal(r.code, 2);
    assertOneLineError(r.stderr, /unknown option '--frobnicate'/);
    assert.equal(r.stdout, '');
  });

  test('unknown command: exit 2, one line', () => {
    const r = dmalens('lint', 'clean.c');
    assert.equal(r.code, 2);
    assertOneLineError(r.stderr, /unknown command 'lint'/);
  });

  test('option missing its value, bad format, bad --max-size: exit 2, one line', () => {
    for (const args of [
      ['check', 'clean.c', '--format'],
      ['check', '--format', 'xml', 'clean.c'],
      ['check', '--max-size', 'lots', 'clean.c'],
      ['check', '--severity', 'X=fatal', 'clean.c'],
      ['rules', '--format', 'sarif'],
    ]) {
      const r = dmalens(...args);
      assert.equal(r.code, 2, args.join(' '));
      assertOneLineError(r.stderr, /./);
    }
  });

  test('check without paths: exit 2', () => {
    const r = dmalens('check');
    assert.equal(r.code, 2);
    assertOneLineError(r.stderr, /no files or directories/);
  });

  test('--kernel X.Y is validated', () => {
    assert.equal(dmalens('check', '--kernel', '6.12', 'clean.c').code, 0);
    assert.equal(dmalens('check', '--kernel=6.1', 'clean.c').code, 0);
    for (const bad of ['six', '6', '6.12.1', '']) {
      const r = dmalens('check', '--kernel', bad, 'clean.c');
      assert.equal(r.code, 2, `--kernel '${bad}'`);
      assertOneLineError(r.stderr, /--kernel/);
    }
  });
});

describe('dmalens check: files', () => {
  test('a clean file: exit 0, nothing on stdout or stderr', () => {
    const r = dmalens('check', 'clean.c');
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, '');
    assert.equal(r.stderr, '');
  });

  test('nonexistent path: exit 2, one line naming it; the other files are still analysed', () => {
    const r = dmalens('check', 'no/such/file.c');
    assert.equal(r.code, 2);
    assertOneLineError(r.stderr, /^dmalens: no\/such\/file\.c: no such file or directory$/);
    const both = dmalens('check', '--format', 'json', 'missing.c', 'clean.c');
    assert.equal(both.code, 2);
    const doc = JSON.parse(both.stdout);
    assert.deepEqual(doc.errors, [{ file: 'missing.c', message: 'no such file or directory' }]);
  });

  test('binary file: skipped with a message, not an error', () => {
    const r = dmalens('check', 'blob.c', 'clean.c');
    assert.equal(r.code, 0);
    assertOneLineError(r.stderr, /^dmalens: blob\.c: skipped: .*binary/);
    assert.equal(r.stdout, '');
  });

  test('latin-1 file: accepted', () => {
    const r = dmalens('check', '--format', 'json', 'latin1.c');
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stderr, '');
    assert.deepEqual(JSON.parse(r.stdout), { findings: [], errors: [] });
  });

  test('file over --max-size: skipped with a notice', () => {
    const r = dmalens('check', '--max-size', '10', 'clean.c');
    assert.equal(r.code, 0);
    assertOneLineError(r.stderr, /^dmalens: clean\.c: skipped: \d+ bytes, over the 10-byte limit/);
  });

  test('unreadable file: one line, exit 2', (t) => {
    if (process.platform === 'win32' || process.getuid?.() === 0) {
      t.skip('permissions do not stop root (or Windows) from reading');
      return;
    }
    const f = write('locked.c', CLEAN);
    fs.chmodSync(path.join(tmp, f), 0);
    try {
      const r = dmalens('check', f);
      assert.equal(r.code, 2);
      assertOneLineError(r.stderr, /^dmalens: locked\.c: permission denied$/);
    } finally {
      fs.chmodSync(path.join(tmp, f), 0o644);
    }
  });

  test('directory: recursive over .c and .h, binaries skipped, --summary on stderr', () => {
    const r = dmalens('check', '--summary', 'tree');
    assert.equal(r.code, 0);
    assert.equal(r.stdout, '');
    const lines = r.stderr.trimEnd().split('\n');
    assert.equal(lines.length, 2, r.stderr);
    assert.match(lines[0], new RegExp(`^dmalens: tree\\${path.sep}data\\.bin\\.c: skipped: `));
    assert.match(lines[1], /^dmalens: 2 files analysed, 1 skipped: 0 errors, 0 warnings, 0 info/);
  });
});

describe('dmalens check: formats', () => {
  test('JSON: {findings, errors} with the public field names', (t) => {
    const r = dmalens('check', '--format', 'json', 'bad.c', 'blob.c');
    assert.ok(r.code === 0 || r.code === 1, r.stderr);
    const doc = JSON.parse(r.stdout);
    assert.deepEqual(Object.keys(doc).sort(), ['errors', 'findings']);
    assert.equal(doc.errors.length, 1);
    assert.deepEqual(Object.keys(doc.errors[0]), ['file', 'message']);
    assert.equal(doc.errors[0].file, 'blob.c');
    if (ruleCount === 0) {
      t.skip(NEEDS_RULES);
      return;
    }
    assert.ok(doc.findings.length > 0, 'bad.c should draw at least one finding');
    const required = ['file', 'line', 'column', 'endLine', 'endColumn', 'rule', 'severity', 'message'];
    for (const f of doc.findings as JsonFinding[]) {
      for (const k of required) assert.ok(k in f, `missing ${k}`);
      for (const k of Object.keys(f)) assert.ok([...required, 'function', 'related'].includes(k), `unexpected ${k}`);
      assert.equal(f.file, 'bad.c');
      assert.ok(Number.isInteger(f.line) && f.line >= 1);
      assert.ok(Number.isInteger(f.column) && f.column >= 1);
      assert.ok(f.endLine > f.line || (f.endLine === f.line && f.endColumn >= f.column));
      assert.ok(['error', 'warning', 'info'].includes(f.severity));
      assert.ok(ruleIds.includes(f.rule), `unknown rule ${f.rule}`);
      for (const rel of f.related ?? []) assert.deepEqual(Object.keys(rel).sort(), ['column', 'line', 'message']);
    }
  });

  test('SARIF 2.1.0: required keys', () => {
    const r = dmalens('check', '--format', 'sarif', 'bad.c', 'clean.c', 'blob.c');
    assert.ok(r.code === 0 || r.code === 1, r.stderr);
    const log = JSON.parse(r.stdout);
    assert.equal(log.version, '2.1.0');
    assert.equal(typeof log.$schema, 'string');
    assert.equal(log.runs.length, 1);
    const run = log.runs[0];
    assert.equal(run.tool.driver.name, 'DMA Lens');
    assert.equal(run.columnKind, 'utf16CodeUnits');
    assert.equal(run.tool.driver.rules.length, ruleCount);
    for (const rule of run.tool.driver.rules) {
      assert.equal(typeof rule.id, 'string');
      assert.equal(typeof rule.shortDescription.text, 'string');
      // An absolute URI (SARIF 2.1.0 requires one): the rule's page as installed, docs/rules/<ID>.md.
      const help = new URL(rule.helpUri);
      assert.equal(help.protocol, 'file:', rule.helpUri);
      const page = fileURLToPath(help);
      assert.equal(page, path.join(DOCS, `${rule.id}.md`));
      assert.ok(fs.statSync(page).isFile(), `${page} exists`);
      assert.ok(['error', 'warning', 'note'].includes(rule.defaultConfiguration.level));
    }
    assert.ok(Array.isArray(run.results));
    for (const res of run.results) {
      assert.equal(typeof res.ruleId, 'string');
      assert.ok(['error', 'warning', 'note'].includes(res.level));
      assert.equal(typeof res.message.text, 'string');
      const loc = res.locations[0].physicalLocation;
      assert.equal(loc.artifactLocation.uri, 'bad.c');
      for (const k of ['startLine', 'startColumn', 'endLine', 'endColumn']) {
        assert.ok(Number.isInteger(loc.region[k]) && loc.region[k] >= 1, k);
      }
      for (const rel of res.relatedLocations ?? []) {
        assert.equal(typeof rel.message.text, 'string');
        assert.equal(rel.physicalLocation.artifactLocation.uri, 'bad.c');
      }
    }
    assert.equal(run.invocations[0].toolExecutionNotifications.length, 1);
  });

  test('columns: bytes in text and JSON, UTF-16 in SARIF, for UTF-8 and latin-1 files', (t) => {
    if (ruleCount === 0) {
      t.skip(NEEDS_RULES);
      return;
    }
    for (const [file, encoding] of [
      ['bad.c', 'utf8'],
      ['bad-latin1.c', 'latin1'],
    ] as const) {
      const text = dmalens('check', file);
      const json = JSON.parse(dmalens('check', '--format', 'json', file).stdout).findings as JsonFinding[];
      const sarif = JSON.parse(dmalens('check', '--format', 'sarif', file).stdout).runs[0].results;
      assert.ok(json.length > 0, `${file} should draw at least one finding`);
      assert.equal(sarif.length, json.length);
      // Text: exactly one gcc-style line per finding, nothing else on stdout.
      assert.equal(
        text.stdout,
        json
          .map((f) => `${f.file}:${f.line}:${f.column}: ${f.severity}: ${oneLine(f.message)} [${f.rule}]\n`)
          .join(''),
      );
      const lines = fs.readFileSync(path.join(tmp, file)).toString(encoding).split('\n');
      let multibyteBefore = 0;
      json.forEach((f, i) => {
        const region = sarif[i].locations[0].physicalLocation.region;
        assert.equal(region.startLine, f.line);
        const before = lines[f.line - 1].slice(0, region.startColumn - 1);
        assert.equal(f.column, Buffer.byteLength(before, encoding) + 1, `${file}: ${JSON.stringify(f)}`);
        if (Buffer.byteLength(before, 'utf8') !== before.length) multibyteBefore++;
      });
      assert.ok(multibyteBefore > 0, `${file}: no finding has multibyte characters before it on its line`);
    }
  });

  test('exit code 1 on an error-severity finding; 0 once those rules are disabled', (t) => {
    if (ruleCount === 0) {
      t.skip(NEEDS_RULES);
      return;
    }
    const r = dmalens('check', '--format', 'json', 'bad.c');
    const findings = JSON.parse(r.stdout).findings as JsonFinding[];
    const errorRules = [...new Set(findings.filter((f) => f.severity === 'error').map((f) => f.rule))];
    assert.ok(errorRules.length > 0, 'bad.c should draw an error-severity finding');
    assert.equal(r.code, 1);
    const disabled = dmalens('check', '--format', 'json', '--disable', errorRules.join(','), 'bad.c');
    assert.equal(disabled.code, 0, disabled.stderr);
    const left = JSON.parse(disabled.stdout).findings as JsonFinding[];
    assert.ok(left.every((f) => !errorRules.includes(f.rule)));
    // A severity override turns the same findings into warnings.
    const overridden = dmalens('check', ...errorRules.flatMap((id) => ['--severity', `${id}=warning`]), 'bad.c');
    assert.equal(overridden.code, 0, overridden.stderr);
  });
});

describe('dmalens rules', () => {
  test('--format json: {"rules": [{"id","severity","summary"}]}', () => {
    const r = dmalens('rules', '--format', 'json');
    assert.equal(r.code, 0);
    const doc = JSON.parse(r.stdout);
    assert.deepEqual(Object.keys(doc), ['rules']);
    assert.ok(Array.isArray(doc.rules));
    for (const rule of doc.rules) {
      assert.deepEqual(Object.keys(rule), ['id', 'severity', 'summary']);
      assert.match(rule.id, /^[A-Z0-9]+(-[A-Z0-9]+)+$/);
      assert.ok(['error', 'warning', 'info'].includes(rule.severity));
      assert.equal(typeof rule.summary, 'string');
    }
  });

  test('text: a table with one row per rule', () => {
    const r = dmalens('rules');
    assert.equal(r.code, 0);
    const lines = r.stdout.trimEnd().split('\n');
    assert.match(lines[0], /^RULE\s+SEVERITY\s+SUMMARY$/);
    if (ruleCount === 0) assert.deepEqual(lines.slice(1), ['(no rules)']);
    else assert.deepEqual(lines.slice(1).map((l) => l.split(/\s+/)[0]), [...ruleIds].sort());
  });
});

const OUTCOMES = ['OK', 'SILENT_CORRUPTION', 'IOMMU_FAULT', 'UR_AER', 'CPU_FAULT', 'HANG', 'DEADLOCK', 'UAF', 'LEAK', 'LIVELOCK', 'WARN', 'IO_ERROR'];

interface JsonExplanation {
  outcome: string;
  summary: string;
  target?: string;
  world: string;
  worldNotes?: string[];
  failsIn?: { world: string; outcome: string; summary: string };
  steps: { actor: string; action: string; state?: Record<string, string>; location?: { line: number; column: number } }[];
}

function assertExplanation(e: JsonExplanation, where: string, lineCount?: number): void {
  for (const k of Object.keys(e)) assert.ok(['outcome', 'summary', 'target', 'world', 'worldNotes', 'failsIn', 'steps'].includes(k), `${where}: unexpected ${k}`);
  assert.ok(OUTCOMES.includes(e.outcome), `${where}: outcome ${e.outcome}`);
  assert.equal(typeof e.summary, 'string');
  assert.equal(typeof e.world, 'string');
  assert.ok(Array.isArray(e.steps) && e.steps.length > 0, where);
  for (const s of e.steps) {
    for (const k of Object.keys(s)) assert.ok(['actor', 'action', 'state', 'location'].includes(k), `${where}: step key ${k}`);
    assert.equal(typeof s.actor, 'string');
    assert.equal(typeof s.action, 'string');
    for (const v of Object.values(s.state ?? {})) assert.equal(typeof v, 'string');
    if (s.location) {
      assert.deepEqual(Object.keys(s.location).sort(), ['column', 'line']);
      assert.ok(Number.isInteger(s.location.line) && s.location.line >= 1, where);
      assert.ok(Number.isInteger(s.location.column) && s.location.column >= 1, where);
      if (lineCount !== undefined) assert.ok(s.location.line <= lineCount, `${where}: line ${s.location.line} of ${lineCount}`);
    }
  }
}

describe('dmalens check --explain', () => {
  test('JSON: each finding gains an "explanation"; the other fields stay as they were', (t) => {
    if (ruleCount === 0) {
      t.skip(NEEDS_RULES);
      return;
    }
    const plain = JSON.parse(dmalens('check', '--format', 'json', 'bad.c').stdout).findings as JsonFinding[];
    const r = dmalens('check', '--format', 'json', '--explain', 'bad.c');
    assert.ok(r.code === 0 || r.code === 1, r.stderr);
    assert.equal(r.stderr, '');
    const doc = JSON.parse(r.stdout);
    const findings = doc.findings as (JsonFinding & { explanation?: JsonExplanation })[];
    assert.equal(findings.length, plain.length);
    const lines = BAD_UTF8.split('\n');
    let located = 0;
    findings.forEach((f, i) => {
      const { explanation, ...rest } = f;
      assert.deepEqual(rest, plain[i]);
      // A rule the model cannot replay yet gets no explanation (the model's own tests name those).
      if (!scenarioRules().includes(f.rule)) {
        assert.equal(explanation, undefined);
        return;
      }
      assert.ok(explanation, `${f.rule} at ${f.line} has no explanation`);
      assertExplanation(explanation, `${f.rule}:${f.line}`, lines.length);
      for (const s of explanation.steps) {
        if (!s.location) continue;
        located++;
        // Byte columns, like the finding's: the line's prefix before the column, in UTF-8 bytes.
        const text = lines[s.location.line - 1];
        const prefix = Buffer.from(text, 'utf8').subarray(0, s.location.column - 1).toString('utf8');
        assert.equal(Buffer.byteLength(prefix, 'utf8'), s.location.column - 1, `${f.rule}: column ${s.location.column} splits a character`);
      }
    });
    assert.ok(located > 0, 'some steps come from the code');
  });

  test('text: the run under each finding, indented, ending in its outcome', (t) => {
    if (ruleCount === 0) {
      t.skip(NEEDS_RULES);
      return;
    }
    const json = JSON.parse(dmalens('check', '--format', 'json', 'bad.c').stdout).findings as JsonFinding[];
    const r = dmalens('check', '--explain', 'bad.c');
    assert.ok(r.code === 0 || r.code === 1, r.stderr);
    const out = r.stdout.split('\n').filter((l) => l.length > 0);
    const heads = out.filter((l) => !l.startsWith(' '));
    assert.deepEqual(
      heads,
      json.map((f) => `${f.file}:${f.line}:${f.column}: ${f.severity}: ${oneLine(f.message)} [${f.rule}]`),
    );
    const explained = json.filter((f) => scenarioRules().includes(f.rule)).length;
    assert.ok(explained > 0);
    assert.equal(out.filter((l) => /^ {4}=> [A-Z_]+: /.test(l)).length, explained);
    assert.equal(out.filter((l) => /^ {4}world: /.test(l)).length, explained);
    assert.ok(out.some((l) => /^ {4}\S+ +.*\[bad\.c:\d+\]$/.test(l)), 'steps name their line');
  });
});

describe('dmalens explain', () => {
  test('every rule\'s reference run: exit 0 and an outcome, in text and JSON', () => {
    assert.ok(ruleIds.length > 0);
    // Rules the model cannot replay yet, named together rather than one failure at a time.
    const missing = ruleIds.filter((id) => /no scenario/.test(dmalens('explain', id).stderr));
    assert.deepEqual(missing, [], 'rules without a model scenario');
    for (const id of ruleIds) {
      const text = dmalens('explain', id);
      assert.equal(text.code, 0, `${id}: ${text.stderr}`);
      assert.equal(text.stderr, '');
      assert.match(text.stdout, /^=> [A-Z_]+: \S/m, id);
      const json = dmalens('explain', id, '--format', 'json');
      assert.equal(json.code, 0, `${id}: ${json.stderr}`);
      const doc = JSON.parse(json.stdout);
      assert.equal(doc.rule, id);
      assertExplanation(doc.explanation, id);
      assert.ok(doc.explanation.steps.every((s: { location?: unknown }) => s.location === undefined), `${id}: a reference run has no file`);
    }
  });

  test('--format html: a document with the CSP', () => {
    const r = dmalens('explain', 'DMABUF-LOCKING', '--format', 'html');
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^<!DOCTYPE html>/);
    assert.match(r.stdout, /<meta http-equiv="Content-Security-Policy" content="default-src 'none';/);
    assert.match(r.stdout, /<script nonce="[A-Za-z0-9+/=]+">/);
  });

  test('the world options change the run', (t) => {
    if (!ruleIds.includes('P2P-DISTANCE-UNCHECKED')) {
      t.skip('needs P2P-DISTANCE-UNCHECKED');
      return;
    }
    const outcome = (...opts: string[]) => {
      const r = dmalens('explain', 'P2P-DISTANCE-UNCHECKED', '--format', 'json', ...opts);
      assert.equal(r.code, 0, r.stderr);
      return JSON.parse(r.stdout).explanation as JsonExplanation;
    };
    assert.equal(outcome('--world', 'switch').outcome, 'OK');
    assert.notEqual(outcome('--world', 'unsupported', '--iommu', 'off').outcome, 'OK');
    assert.match(outcome('--cpu', 'amd-zen', '--iommu', 'passthrough').world, /AMD Zen/);
    // Without options the run notes how other worlds end.
    assert.ok((outcome().worldNotes ?? []).length > 0);
  });

  test('--topology: the run on that machine (its IOMMU modes, its BARs), and where a run that works there fails', (t) => {
    if (!ruleIds.includes('P2P-BUS-ADDR-VS-IOMMU') || !ruleIds.includes('P2P-DISTANCE-UNCHECKED')) {
      t.skip('needs the p2pdma rules');
      return;
    }
    const repo = path.resolve(__dirname, '..', '..', '..');
    const handWritten = path.join(repo, 'server', 'test', 'fixtures', 'topology', 'hand-written.json');
    const lspci = path.join(repo, 'examples', 'topology', 'lspci-tvnn.txt');
    const doc = JSON.parse(fs.readFileSync(handWritten, 'utf8'));
    doc.iommu = 'off';
    fs.writeFileSync(path.join(tmp, 'iommu-off.json'), JSON.stringify(doc));
    const explanation = (rule: string, ...opts: string[]) => {
      const r = dmalens('explain', rule, '--format', 'json', ...opts);
      assert.equal(r.code, 0, r.stderr);
      const e = JSON.parse(r.stdout).explanation as JsonExplanation;
      assertExplanation(e, `${rule} ${opts.join(' ')}`);
      return e;
    };
    const off = explanation('P2P-BUS-ADDR-VS-IOMMU', '--topology', 'iommu-off.json');
    assert.notEqual(off.outcome, 'IOMMU_FAULT');
    assert.match(off.world, /^your topology .*IOMMU off/);
    assert.ok(off.steps.some((s) => /0x38bf00000000/.test(s.action)), 'the NVMe drive\'s BAR2 from the file');
    assert.equal(explanation('P2P-BUS-ADDR-VS-IOMMU', '--topology', handWritten).outcome, 'IOMMU_FAULT', 'the file says translated');
    assert.notEqual(explanation('P2P-BUS-ADDR-VS-IOMMU', '--topology', handWritten, '--iommu', 'off').outcome, 'IOMMU_FAULT', '--iommu sets the global mode');
    const works = explanation('P2P-DISTANCE-UNCHECKED', '--topology', lspci);
    assert.equal(works.outcome, 'OK');
    assert.match(works.worldNotes?.[0] ?? '', /^on your topology \(.*behind one PCIe switch/);
    assert.deepEqual(works.failsIn && { world: works.failsIn.world, outcome: works.failsIn.outcome }, { world: "the rule's default world", outcome: 'UR_AER' });
    const text = dmalens('explain', 'P2P-DISTANCE-UNCHECKED', '--topology', lspci);
    assert.match(text.stdout, /^ {3}fails in the rule's default world: UR_AER$/m);
    // check --explain --topology: the findings' runs on that machine.
    const example = path.join(repo, 'examples', 'drivers', 'pci', 'acme_p2p.c');
    const checked = dmalens('check', '--explain', '--format', 'json', '--topology', lspci, example);
    assert.equal(checked.stderr, '');
    const found = (JSON.parse(checked.stdout).findings as (JsonFinding & { explanation?: JsonExplanation })[]).find((f) => f.rule === 'P2P-DISTANCE-UNCHECKED');
    assert.equal(found?.explanation?.outcome, 'OK');
    assert.equal(found?.explanation?.failsIn?.outcome, 'UR_AER');
    assert.match(found!.explanation!.world, /^your topology/);
    fs.writeFileSync(path.join(tmp, 'broken.json'), '{"devices": 3}');
    for (const [args, pattern] of [
      [['explain', 'P2P-DISTANCE-UNCHECKED', '--topology', 'no-such.json'], /explain: cannot read topology no-such\.json: no such file/],
      [['explain', 'P2P-DISTANCE-UNCHECKED', '--topology', 'broken.json'], /explain: broken\.json: /],
      [['explain', 'P2P-DISTANCE-UNCHECKED', '--topology', lspci, '--world', 'switch'], /--world/],
      [['check', '--topology', lspci, 'bad.c'], /add --explain/],
      [['check', '--explain', '--topology', 'broken.json', 'bad.c'], /check: broken\.json: /],
    ] as const) {
      const r = dmalens(...args);
      assert.equal(r.code, 2, args.join(' '));
      assert.equal(r.stdout, '');
      assertOneLineError(r.stderr, pattern);
    }
  });

  test('an unknown rule or option value, or no rule: exit 2, one line', () => {
    for (const [args, pattern] of [
      [['explain', 'NO-SUCH-RULE'], /unknown rule 'NO-SUCH-RULE'/],
      [['explain'], /no rule/],
      [['explain', 'DMABUF-LOCKING', 'extra'], /unexpected argument 'extra'/],
      [['explain', 'DMABUF-LOCKING', '--world', 'mesh'], /--world: expected switch, allowlisted, unsupported/],
      [['explain', 'DMABUF-LOCKING', '--iommu', 'maybe'], /--iommu/],
      [['explain', 'DMABUF-LOCKING', '--cpu', 'm68k'], /--cpu/],
      [['explain', 'DMABUF-LOCKING', '--format', 'sarif'], /--format/],
      [['explain', 'DMABUF-LOCKING', '--frobnicate'], /unknown option '--frobnicate'/],
    ] as const) {
      const r = dmalens(...args);
      assert.equal(r.code, 2, args.join(' '));
      assert.equal(r.stdout, '');
      assertOneLineError(r.stderr, pattern);
    }
  });
});
