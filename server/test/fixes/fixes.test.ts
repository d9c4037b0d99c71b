/**
 * The fix engine on realistic bad code: every fix is applied to a rule
 * fixture (server/test/fixtures/rules/<RULE>/bad-*.c) or to a fix fixture
 * (server/test/fixtures/fixes/<RULE>/*.c), the result is analysed again, and
 *
 * - the finding is gone (no finding of the rule with the same message),
 * - no new finding appeared (unless the case names the one it expects),
 * - the text parses with no more ERROR/MISSING nodes than before,
 * - the lines the fix adds are kernel style (tabs, under 100 columns),
 * - the text is exactly the golden file server/test/fixtures/fixes/<RULE>/<name>.c.golden
 *   (DMALENS_UPDATE_GOLDEN=1 rewrites them).
 */
import { before, describe, test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Analyzer } from '../../src/core/analyzer';
import { LineIndex } from '../../src/core/positions';
import type { Finding, KernelVersion } from '../../src/core/types';
import { applyEdits, FixSession, rulesWithFixes, unifiedDiff } from '../../src/fixes';
import { width } from '../../src/fixes/text';
import { loadWasm } from '../../src/node/assets';

const FIXTURES = path.resolve(__dirname, '../../../test/fixtures');
const UPDATE = process.env.DMALENS_UPDATE_GOLDEN === '1';

interface Case {
  rule: string;
  /** Relative to server/test/fixtures. */
  file: string;
  /** Text on the line the finding starts on. */
  at: string;
  /** The fix: its title matches this. */
  title: RegExp;
  preferred: boolean;
  golden: string;
  /** Messages of findings the fix is expected to leave or add (a stub to fill in, a finding with fewer missing fields). */
  expectNew?: RegExp;
  /** The finding stays (with another message): the fix handles part of it. */
  partial?: boolean;
}

const CASES: Case[] = [
  // DMABUF-ERRPTR
  { rule: 'DMABUF-ERRPTR', file: 'rules/DMABUF-ERRPTR/bad-export-null.c', at: 'if (!dmabuf)', title: /IS_ERR\(dmabuf\) and return PTR_ERR\(dmabuf\)/, preferred: true, golden: 'export-null' },
  { rule: 'DMABUF-ERRPTR', file: 'rules/DMABUF-ERRPTR/bad-null-checks.c', at: 'dmabuf == NULL', title: /IS_ERR\(dmabuf\)/, preferred: true, golden: 'null-checks-eq-null' },
  { rule: 'DMABUF-ERRPTR', file: 'rules/DMABUF-ERRPTR/bad-null-checks.c', at: 'unlikely(!attach)', title: /IS_ERR\(attach\) and return PTR_ERR/, preferred: true, golden: 'null-checks-unlikely' },
  { rule: 'DMABUF-ERRPTR', file: 'rules/DMABUF-ERRPTR/bad-null-checks.c', at: 'if (!sgt)', title: /IS_ERR\(sgt\)/, preferred: true, golden: 'null-checks-sgt' },
  { rule: 'DMABUF-ERRPTR', file: 'rules/DMABUF-ERRPTR/bad-field-stale-errptr.c', at: 'if (map->table)', title: /IS_ERR_OR_NULL\(map->table\)/, preferred: true, golden: 'field-stale' },
  // DMABUF-LOCKING
  { rule: 'DMABUF-LOCKING', file: 'rules/DMABUF-LOCKING/bad-static-map-no-lock.c', at: 'sgt = dma_buf_map_attachment(', title: /_unlocked\(\)/, preferred: true, golden: 'static-map-unlocked' },
  { rule: 'DMABUF-LOCKING', file: 'rules/DMABUF-LOCKING/bad-static-map-no-lock.c', at: 'sgt = dma_buf_map_attachment(', title: /Take dma_resv_lock\(attach->dmabuf->resv, NULL\)/, preferred: false, golden: 'static-map-wrap' },
  { rule: 'DMABUF-LOCKING', file: 'rules/DMABUF-LOCKING/bad-static-map-no-lock.c', at: 'dma_buf_unmap_attachment(attach', title: /_unlocked\(\)/, preferred: true, golden: 'static-unmap-unlocked' },
  { rule: 'DMABUF-LOCKING', file: 'rules/DMABUF-LOCKING/bad-dynamic-map-no-lock.c', at: 'dma_buf_map_attachment(imp->attach', title: /Take dma_resv_lock\(imp->attach->dmabuf->resv, NULL\)/, preferred: false, golden: 'dynamic-map-wrap' },
  { rule: 'DMABUF-LOCKING', file: 'rules/DMABUF-LOCKING/bad-pin-no-lock.c', at: 'ret = dma_buf_pin(', title: /Take dma_resv_lock/, preferred: false, golden: 'pin-wrap' },
  { rule: 'DMABUF-LOCKING', file: 'rules/DMABUF-LOCKING/bad-unlocked-in-region.c', at: 'sgt = dma_buf_map_attachment_unlocked(', title: /Use dma_buf_map_attachment\(\)/, preferred: true, golden: 'unlocked-in-region-map' },
  { rule: 'DMABUF-LOCKING', file: 'rules/DMABUF-LOCKING/bad-unlocked-in-region.c', at: 'dma_buf_unmap_attachment_unlocked(vb->attach', title: /Use dma_buf_unmap_attachment\(\)/, preferred: true, golden: 'unlocked-in-region-unmap' },
  { rule: 'DMABUF-LOCKING', file: 'rules/DMABUF-LOCKING/bad-move-notify-unlocked.c', at: 'dma_buf_unmap_attachment_unlocked(attach', title: /Use dma_buf_unmap_attachment\(\)/, preferred: true, golden: 'move-notify-unlocked' },
  { rule: 'DMABUF-LOCKING', file: 'rules/DMABUF-LOCKING/bad-move-notify-unlocked.c', at: 'dma_resv_lock(attach->dmabuf->resv', title: /Assert the reservation lock/, preferred: false, golden: 'move-notify-relock' },
  { rule: 'DMABUF-LOCKING', file: 'rules/DMABUF-LOCKING/bad-exporter-relock.c', at: 'dma_resv_lock(obj->resv', title: /Assert the reservation lock acme_dmabuf_pin/, preferred: false, golden: 'exporter-relock-pin' },
  { rule: 'DMABUF-LOCKING', file: 'rules/DMABUF-LOCKING/bad-exporter-relock.c', at: 'dma_resv_lock_interruptible(obj->resv', title: /Assert the reservation lock acme_dmabuf_map/, preferred: false, golden: 'exporter-relock-map' },
  { rule: 'DMABUF-LOCKING', file: 'rules/DMABUF-LOCKING/v6.1/bad-dynamic-map-no-lock.c', at: 'dma_buf_map_attachment(imp->attach', title: /Take dma_resv_lock/, preferred: false, golden: 'v6.1-dynamic-map-wrap' },
  { rule: 'DMABUF-LOCKING', file: 'fixes/DMABUF-LOCKING/unbraced-if-else.c', at: 'dma_buf_unmap_attachment(eb->attach', title: /Take dma_resv_lock/, preferred: false, golden: 'unbraced-if-else-wrap' },
  { rule: 'DMABUF-LOCKING', file: 'fixes/DMABUF-LOCKING/declaration.c', at: 'dma_buf_map_attachment(attach', title: /Take dma_resv_lock/, preferred: false, golden: 'declaration-wrap' },
  { rule: 'DMABUF-LOCKING', file: 'fixes/DMABUF-LOCKING/long-rename.c', at: 'sgt = dma_buf_map_attachment(', title: /_unlocked\(\)/, preferred: true, golden: 'long-rename-unlocked' },
  // DMABUF-MOVE-NOTIFY
  { rule: 'DMABUF-MOVE-NOTIFY', file: 'rules/DMABUF-MOVE-NOTIFY/bad-empty-callback.c', at: 'acme_dsp_move_notify(struct', title: /Unmap di->sgt/, preferred: false, golden: 'empty-callback' },
  { rule: 'DMABUF-MOVE-NOTIFY', file: 'fixes/DMABUF-MOVE-NOTIFY/ops-with-mapping.c', at: 'dma_buf_dynamic_attach(', title: /unmaps and invalidates/, preferred: false, golden: 'ops-with-mapping' },
  {
    rule: 'DMABUF-MOVE-NOTIFY', file: 'rules/DMABUF-MOVE-NOTIFY/bad-ops-without-move-notify.c', at: 'dma_buf_dynamic_attach(', title: /stub acme_mr_move_notify/, preferred: false, golden: 'ops-without-move-notify-stub',
    expectNew: /^acme_mr_move_notify\(\) is the importer's move_notify but invalidates nothing/,
  },
  {
    rule: 'DMABUF-MOVE-NOTIFY', file: 'rules/DMABUF-MOVE-NOTIFY/bad-null-move-notify.c', at: 'dma_buf_dynamic_attach(', title: /stub acme_vpu_move_notify/, preferred: false, golden: 'null-move-notify-stub',
    expectNew: /^acme_vpu_move_notify\(\) is the importer's move_notify but invalidates nothing/,
  },
  // MIG-FAULT-PAGE
  { rule: 'MIG-FAULT-PAGE', file: 'rules/MIG-FAULT-PAGE/bad-designated.c', at: 'migrate_vma_setup(&args)', title: /args\.fault_page = vmf->page/, preferred: true, golden: 'designated' },
  { rule: 'MIG-FAULT-PAGE', file: 'rules/MIG-FAULT-PAGE/v6.1/bad-designated.c', at: 'migrate_vma_setup(&args)', title: /fault_page/, preferred: true, golden: 'v6.1-designated' },
  { rule: 'MIG-FAULT-PAGE', file: 'rules/MIG-FAULT-PAGE/bad-null-fault-page.c', at: 'migrate_vma_setup(&mig)', title: /mig\.fault_page = vmf->page/, preferred: true, golden: 'null-fault-page' },
  { rule: 'MIG-FAULT-PAGE', file: 'fixes/MIG-FAULT-PAGE/assignments.c', at: 'migrate_vma_setup(&mig)', title: /mig\.fault_page/, preferred: true, golden: 'assignments' },
  // P2P-DISTANCE-BOOL
  { rule: 'P2P-DISTANCE-BOOL', file: 'rules/P2P-DISTANCE-BOOL/bad-negated-call.c', at: '!pci_p2pdma_distance(', title: /< 0/, preferred: true, golden: 'negated-call' },
  { rule: 'P2P-DISTANCE-BOOL', file: 'rules/P2P-DISTANCE-BOOL/bad-truthy-variable.c', at: 'if (dist)', title: /dist >= 0/, preferred: true, golden: 'truthy-variable' },
  { rule: 'P2P-DISTANCE-BOOL', file: 'rules/P2P-DISTANCE-BOOL/bad-bool-return-and-gt-zero.c', at: 'return pci_p2pdma_distance(', title: />= 0/, preferred: true, golden: 'bool-return' },
  { rule: 'P2P-DISTANCE-BOOL', file: 'rules/P2P-DISTANCE-BOOL/bad-bool-return-and-gt-zero.c', at: ') > 0)', title: />= 0/, preferred: true, golden: 'gt-zero' },
  { rule: 'P2P-DISTANCE-BOOL', file: 'fixes/P2P-DISTANCE-BOOL/variants.c', at: 'd == 0 ?', title: /d < 0/, preferred: true, golden: 'variants-eq-zero' },
  { rule: 'P2P-DISTANCE-BOOL', file: 'fixes/P2P-DISTANCE-BOOL/variants.c', at: 'p->direct && d)', title: /d >= 0/, preferred: true, golden: 'variants-logical' },
  { rule: 'P2P-DISTANCE-BOOL', file: 'fixes/P2P-DISTANCE-BOOL/variants.c', at: 'if (d != 0)', title: /d >= 0/, preferred: true, golden: 'variants-ne-zero' },
  // P2P-CPU-MEMCPY
  { rule: 'P2P-CPU-MEMCPY', file: 'rules/P2P-CPU-MEMCPY/bad-memset-memcpy.c', at: 'memset(buf', title: /memset_io\(\)/, preferred: true, golden: 'memset' },
  { rule: 'P2P-CPU-MEMCPY', file: 'rules/P2P-CPU-MEMCPY/bad-memset-memcpy.c', at: 'memcpy(buf', title: /memcpy_toio\(\)/, preferred: true, golden: 'memcpy-toio' },
  { rule: 'P2P-CPU-MEMCPY', file: 'rules/P2P-CPU-MEMCPY/v6.12/bad-memset-memcpy.c', at: 'memcpy(buf', title: /memcpy_toio\(\)/, preferred: true, golden: 'v6.12-memcpy-toio' },
  { rule: 'P2P-CPU-MEMCPY', file: 'rules/P2P-CPU-MEMCPY/bad-field-deref.c', at: 'memcpy(cmd->payload', title: /memcpy_toio\(\)/, preferred: true, golden: 'field-memcpy' },
  { rule: 'P2P-CPU-MEMCPY', file: 'rules/P2P-CPU-MEMCPY/bad-field-deref.c', at: 'cmd->opcode = ', title: /writel\(\)/, preferred: false, golden: 'field-store-writel' },
  { rule: 'P2P-CPU-MEMCPY', file: 'rules/P2P-CPU-MEMCPY/bad-field-deref.c', at: 'cmd->addr = ', title: /writeq\(\)/, preferred: false, golden: 'field-store-writeq' },
  { rule: 'P2P-CPU-MEMCPY', file: 'fixes/P2P-CPU-MEMCPY/fromio-and-long.c', at: 'memcpy(cmb->status_area + 64', title: /memcpy_toio\(\)/, preferred: true, golden: 'long-toio' },
  { rule: 'P2P-CPU-MEMCPY', file: 'fixes/P2P-CPU-MEMCPY/fromio-and-long.c', at: 'memcpy(reply_buffer', title: /memcpy_fromio\(\)/, preferred: true, golden: 'fromio' },
  // PGMAP-INIT-FIELDS
  {
    rule: 'PGMAP-INIT-FIELDS', file: 'rules/PGMAP-INIT-FIELDS/bad-chunk-missing-nr-range.c', at: 'memremap_pages(', title: /^Set nr_range = 1/, preferred: true, golden: 'chunk-nr-range',
    partial: true, expectNew: /without ops->migrate_to_ram \(in acme_vram_pagemap_ops\)/,
  },
  { rule: 'PGMAP-INIT-FIELDS', file: 'rules/PGMAP-INIT-FIELDS/bad-chunk-missing-nr-range.c', at: 'memremap_pages(', title: /^Add the missing nr_range, migrate_to_ram stub/, preferred: false, golden: 'chunk-complete' },
  { rule: 'PGMAP-INIT-FIELDS', file: 'rules/PGMAP-INIT-FIELDS/bad-coherent-no-ops.c', at: 'devm_memremap_pages(', title: /owner \(xpu\), ops/, preferred: false, golden: 'coherent-owner-ops' },
  { rule: 'PGMAP-INIT-FIELDS', file: 'rules/PGMAP-INIT-FIELDS/bad-private-no-owner.c', at: 'devm_memremap_pages(', title: /owner \(dmem\)/, preferred: false, golden: 'private-owner' },
  // DMABUF-PIN-BALANCE
  { rule: 'DMABUF-PIN-BALANCE', file: 'rules/DMABUF-PIN-BALANCE/bad-errpath-leak.c', at: 'err = dma_buf_pin(', title: /label err_unpin/, preferred: true, golden: 'errpath-leak-label' },
  { rule: 'DMABUF-PIN-BALANCE', file: 'rules/DMABUF-PIN-BALANCE/bad-field-errpath-leak.c', at: 'ret = dma_buf_pin(', title: /dma_buf_unpin\(so->attach\) on the error path/, preferred: true, golden: 'field-errpath-leak' },
  { rule: 'DMABUF-PIN-BALANCE', file: 'rules/DMABUF-PIN-BALANCE/bad-double-unpin.c', at: 'dma_buf_unpin(mreg->attach); /*', title: /Clear mreg->pinned/, preferred: true, golden: 'double-unpin' },
  { rule: 'DMABUF-PIN-BALANCE', file: 'fixes/DMABUF-PIN-BALANCE/unbraced-goto.c', at: 'ret = dma_buf_pin(', title: /dma_buf_unpin\(ovl->attach\)/, preferred: true, golden: 'unbraced-goto' },
];

/** Findings with no fix, on purpose (documented in docs/rules). */
const NO_FIX: Array<{ rule: string; file: string; at: string }> = [
  { rule: 'MIG-FAULT-PAGE', file: 'rules/MIG-FAULT-PAGE/bad-helper.c', at: 'migrate_vma_setup(&mig)' },
  { rule: 'PGMAP-INIT-FIELDS', file: 'rules/PGMAP-INIT-FIELDS/bad-no-type.c', at: 'devm_memremap_pages(' },
  { rule: 'DMABUF-PIN-BALANCE', file: 'rules/DMABUF-PIN-BALANCE/bad-never-unpinned.c', at: 'dma_buf_pin(' },
  { rule: 'P2P-CPU-MEMCPY', file: 'rules/P2P-CPU-MEMCPY/bad-sgl-user-copy.c', at: 'copy_from_user(' },
];

let analyzer: Analyzer;
before(async () => {
  analyzer = await Analyzer.create(loadWasm());
});

function versionOf(file: string): KernelVersion | undefined {
  const m = /\/v(\d+)\.(\d+)\//.exec(file);
  return m ? { major: Number(m[1]), minor: Number(m[2]) } : undefined;
}

function lineOf(text: string, offset: number): string {
  const idx = new LineIndex(text);
  const l = idx.lineOf(offset);
  return text.slice(idx.lineStart(l), idx.lineEnd(l));
}

function findingAt(text: string, findings: readonly Finding[], rule: string, at: string): Finding {
  const hits = findings.filter((f) => f.rule === rule && lineOf(text, f.span.start).includes(at));
  assert.equal(hits.length, 1, `expected one ${rule} finding on a line with ${JSON.stringify(at)}, got ${hits.length}`);
  return hits[0];
}

function multiset(findings: readonly Finding[]): Map<string, number> {
  const m = new Map<string, number>();
  for (const f of findings) m.set(`${f.rule}\u0000${f.message}`, (m.get(`${f.rule}\u0000${f.message}`) ?? 0) + 1);
  return m;
}

/** Added lines of a diff: tabs for indentation, spaces only to align after them, under 100 columns (a trailing comment of the fixture aside). */
function assertKernelStyle(diff: string): void {
  for (const l of diff.split('\n')) {
    if (!l.startsWith('+') || l.startsWith('+++')) continue;
    const line = l.slice(1);
    assert.doesNotMatch(line, /^\t* {8}/, `indentation with spaces: ${JSON.stringify(line)}`);
    assert.doesNotMatch(line, /[ \t]+$/, `trailing whitespace: ${JSON.stringify(line)}`);
    const code = line.replace(/\s*\/\*\s*expect:.*\*\/\s*$/, '');
    assert.ok(width(code) < 100, `line of ${width(code)} columns: ${JSON.stringify(line)}`);
  }
}

describe('fixes on bad code', () => {
  for (const c of CASES) {
    test(`${c.rule} ${c.file} "${c.at}" -> ${c.golden}`, () => {
      const text = fs.readFileSync(path.join(FIXTURES, c.file), 'utf8');
      const options = { kernelVersion: versionOf(c.file) };
      const doc = analyzer.parse(text);
      try {
        const before = analyzer.analyze(doc, options);
        const finding = findingAt(text, before.findings, c.rule, c.at);
        const fixes = new FixSession(doc, options).fixesFor(finding);
        assert.ok(fixes.filter((f) => f.preferred).length <= 1, 'at most one preferred fix');
        const fix = fixes.find((f) => c.title.test(f.title));
        assert.ok(fix, `no fix titled ${c.title}; got ${JSON.stringify(fixes.map((f) => f.title))}`);
        assert.equal(fix.preferred, c.preferred, `preferred for ${fix.title}`);
        assert.equal(fix.ruleId, c.rule);
        assert.equal(fix.kind, 'quickfix');
        const fixed = applyEdits(text, fix.edits);
        const after = analyzer.analyzeText(fixed, options);
        // The finding is gone.
        if (!c.partial) assert.ok(!after.findings.some((f) => f.rule === c.rule && f.message === finding.message), `the finding is still there:\n${unifiedDiff(c.file, text, fixed)}`);
        // Nothing new (but what the case expects).
        const old = multiset(before.findings);
        const added = after.findings.filter((f) => {
          const k = `${f.rule}\u0000${f.message}`;
          const n = old.get(k) ?? 0;
          if (n > 0) {
            old.set(k, n - 1);
            return false;
          }
          return true;
        });
        const unexpected = added.filter((f) => !(c.expectNew && c.expectNew.test(f.message)));
        assert.deepEqual(unexpected.map((f) => `${f.rule}: ${f.message}`), [], 'new findings');
        if (c.expectNew) assert.ok(added.some((f) => c.expectNew!.test(f.message)), 'the expected remaining finding');
        // Parses as well as before.
        assert.ok(after.errorNodes <= before.errorNodes, `ERROR nodes ${before.errorNodes} -> ${after.errorNodes}`);
        assertKernelStyle(unifiedDiff(c.file, text, fixed));
        const golden = path.join(FIXTURES, 'fixes', c.rule, `${c.golden}.c.golden`);
        if (UPDATE || !fs.existsSync(golden)) {
          fs.mkdirSync(path.dirname(golden), { recursive: true });
          fs.writeFileSync(golden, fixed);
        }
        assert.equal(fixed, fs.readFileSync(golden, 'utf8'), `golden ${path.relative(FIXTURES, golden)}`);
      } finally {
        doc.delete();
      }
    });
  }

  for (const c of NO_FIX) {
    test(`${c.rule} ${c.file}: no fix (the engine cannot know enough)`, () => {
      const text = fs.readFileSync(path.join(FIXTURES, c.file), 'utf8');
      const doc = analyzer.parse(text);
      try {
        const finding = findingAt(text, analyzer.analyze(doc).findings, c.rule, c.at);
        assert.deepEqual(new FixSession(doc).fixesFor(finding), []);
      } finally {
        doc.delete();
      }
    });
  }
});

describe('fix engine', () => {
  test('every rule with fixes has at least one case', () => {
    const covered = new Set(CASES.map((c) => c.rule));
    for (const r of rulesWithFixes()) assert.ok(covered.has(r), `no test case for ${r}`);
  });

  test('the _unlocked variants are not offered before 6.2', () => {
    const text = fs.readFileSync(path.join(FIXTURES, 'rules/DMABUF-LOCKING/v6.1/bad-dynamic-map-no-lock.c'), 'utf8');
    const options = { kernelVersion: { major: 6, minor: 1 } };
    const doc = analyzer.parse(text);
    try {
      const f = analyzer.analyze(doc, options).findings.find((x) => x.rule === 'DMABUF-LOCKING')!;
      const titles = new FixSession(doc, options).fixesFor(f).map((x) => x.title);
      assert.ok(titles.length > 0 && titles.every((t) => !/_unlocked/.test(t)), JSON.stringify(titles));
    } finally {
      doc.delete();
    }
  });

  test('fix all: the preferred fixes of every bad fixture together, no collisions, nothing new, parses as well', () => {
    const dir = path.join(FIXTURES, 'rules');
    const rules = new Set(rulesWithFixes());
    for (const rule of fs.readdirSync(dir).filter((r) => rules.has(r))) {
      const files: string[] = [];
      const walk = (d: string) => {
        for (const e of fs.readdirSync(d, { withFileTypes: true })) {
          if (e.isDirectory()) walk(path.join(d, e.name));
          else if (e.name.startsWith('bad-') && e.name.endsWith('.c')) files.push(path.join(d, e.name));
        }
      };
      walk(path.join(dir, rule));
      for (const file of files) {
        const text = fs.readFileSync(file, 'utf8');
        const options = { kernelVersion: versionOf(file.split(path.sep).join('/')) };
        const doc = analyzer.parse(text);
        try {
          const before = analyzer.analyze(doc, options);
          const { edits, fixes } = new FixSession(doc, options).preferredEdits(before.findings);
          const sorted = [...edits].sort((a, b) => a.start - b.start);
          for (let i = 1; i < sorted.length; i++) assert.ok(sorted[i].start >= sorted[i - 1].end, `overlapping edits in ${file}`);
          const fixed = applyEdits(text, edits);
          const after = analyzer.analyzeText(fixed, options);
          assert.ok(after.errorNodes <= before.errorNodes, file);
          const old = new Set(before.findings.map((f) => `${f.rule}\u0000${f.message}`));
          const added = after.findings.filter((f) => !old.has(`${f.rule}\u0000${f.message}`) && !/^(PGMAP-INIT-FIELDS)$/.test(f.rule));
          assert.deepEqual(added.map((f) => f.message), [], file);
          assert.ok(after.findings.length <= before.findings.length - fixes.filter((f) => f.ruleId !== 'PGMAP-INIT-FIELDS').length, file);
        } finally {
          doc.delete();
        }
      }
    }
  });

  test('a finding of another text or a deleted tree gives no fix, and nothing throws', () => {
    const text = fs.readFileSync(path.join(FIXTURES, 'rules/DMABUF-ERRPTR/bad-export-null.c'), 'utf8');
    const doc = analyzer.parse(text);
    const f = analyzer.analyze(doc).findings[0];
    const session = new FixSession(doc);
    assert.deepEqual(session.fixesFor({ ...f, span: { start: text.length + 10, end: text.length + 20 } }), []);
    assert.deepEqual(session.fixesFor({ ...f, rule: 'NO-SUCH-RULE' }), []);
    assert.deepEqual(session.fixesFor({ ...f, span: { start: 0, end: 5 } }), []);
    doc.delete();
    assert.deepEqual(session.fixesFor(f), []);
  });

  test('CRLF files get CRLF lines', () => {
    const text = fs.readFileSync(path.join(FIXTURES, 'rules/DMABUF-PIN-BALANCE/bad-errpath-leak.c'), 'utf8').replace(/\n/g, '\r\n');
    const doc = analyzer.parse(text);
    try {
      const f = analyzer.analyze(doc).findings.find((x) => x.rule === 'DMABUF-PIN-BALANCE')!;
      const fix = new FixSession(doc).fixesFor(f)[0];
      const fixed = applyEdits(text, fix.edits);
      assert.ok(!/[^\r]\n/.test(fixed), 'a bare \\n was written');
      assert.match(fixed, /err_unpin:\r\n\tdma_buf_unpin\(attach\);\r\nerr_unlock:/);
    } finally {
      doc.delete();
    }
  });
});
