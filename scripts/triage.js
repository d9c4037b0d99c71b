#!/usr/bin/env node
'use strict';
/**
 * Runs every rule over the whole Debian linux-source-6.12 tree (the same
 * prefilter and cross-file lock pass as the CLI) and writes
 * docs/triage-6.12.md: every finding with its verdict. Verdicts come from the
 * per-family triage tables in docs/triage/*.md (rows `| file:line | RULE | ...
 * | verdict | reason |`); a finding without one is listed as untriaged and
 * makes the script exit 1.
 *
 *   npm run build && node scripts/triage.js [6.12|6.1]
 */
const fs = require('node:fs');
const path = require('node:path');
const { ensureKernelTree, kernelVersion } = require('./kernel-tree');

const ROOT = path.resolve(__dirname, '..');
const OUT = path.join(ROOT, 'server', 'out', 'src');
const { Analyzer } = require(path.join(OUT, 'core', 'analyzer.js'));
const { loadWasm } = require(path.join(OUT, 'node', 'assets.js'));
const { LineIndex } = require(path.join(OUT, 'core', 'positions.js'));
const { decodeBytes } = require(path.join(OUT, 'core', 'text.js'));
const { mayMatter } = require(path.join(OUT, 'rules', 'registry.js'));
const { collectWorkspaceFacts } = require(path.join(OUT, 'node', 'workspace.js'));

function walk(dir, out) {
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    if (e.name.startsWith('.')) continue;
    const p = path.join(dir, e.name);
    if (e.isDirectory()) {
      if (dir === walk.root && (e.name === 'tools' || e.name === 'Documentation' || e.name === 'samples' || e.name === 'scripts')) continue;
      walk(p, out);
    } else if (e.isFile() && /\.[ch]$/.test(e.name)) out.push(p);
  }
  return out;
}

/** Verdict rows of docs/triage/*.md: key "file:line RULE" -> {verdict, reason}. */
function verdicts(series) {
  const map = new Map();
  const dir = path.join(ROOT, 'docs', 'triage');
  for (const f of fs.existsSync(dir) ? fs.readdirSync(dir) : []) {
    if (!f.endsWith('.md')) continue;
    let section = '';
    for (const line of fs.readFileSync(path.join(dir, f), 'utf8').split('\n')) {
      if (/^#+ /.test(line)) section = line;
      const cells = line.split('|').map((c) => c.trim()).slice(1, -1);
      const m = cells.length >= 4 && /^`?([\w./-]+:\d+)/.exec(cells[0]);
      if (!m) continue;
      const loc = m[1];
      const ruleCell = cells.find((c) => /\b[A-Z0-9]+(?:-[A-Z0-9]+)+\b/.test(c));
      if (!ruleCell) continue;
      const rule = ruleCell.match(/[A-Z0-9]+(?:-[A-Z0-9]+)+/)[0];
      // A tree column ("6.1", "6.12", "both"), else the section heading, else 6.12.
      const treeCell = cells.find((c) => /^(6\.1|6\.12|both)$/.test(c));
      const tree = treeCell ? treeCell : /\b6\.1\b(?!\d)/.test(section) && !/6\.12/.test(section) ? '6.1' : '6.12';
      if (tree !== series && tree !== 'both') continue;
      const named = cells.find((c) => /^(real|false positive|true|expected|intended|plausible|likely|by design|known)/i.test(c));
      // A row without a verdict (a table of fixed messages, say) never replaces one with a verdict.
      if (!named && map.has(`${loc} ${rule}`)) continue;
      const verdict = named || cells[cells.length - 2];
      const reason = cells[cells.length - 1] || '';
      map.set(`${loc} ${rule}`, { verdict, reason, from: f });
    }
  }
  return map;
}

async function main() {
  const series = process.argv[2] || '6.12';
  const tree = ensureKernelTree(series);
  const v = kernelVersion(tree);
  const kv = { major: v.major, minor: v.minor };
  walk.root = tree;
  const files = walk(tree, []).sort();
  const analyzer = await Analyzer.create(loadWasm());
  const t0 = Date.now();
  const ws = collectWorkspaceFacts(analyzer, files, { kernelVersion: kv });
  const hits = [];
  let analysed = 0;
  for (const file of files) {
    const raw = fs.readFileSync(file);
    if (raw.length > 4_000_000 || !mayMatter(raw.toString('latin1'))) continue;
    const d = decodeBytes(raw);
    if ('binary' in d) continue;
    analysed++;
    const rel = path.relative(tree, file).split(path.sep).join('/');
    const r = analyzer.analyzeText(d.text, { kernelVersion: kv, path: rel, workspace: ws.facts });
    const idx = new LineIndex(d.text);
    for (const f of r.findings) hits.push({ file: rel, line: idx.lineOf(f.span.start) + 1, rule: f.rule, severity: f.severity, message: f.message });
  }
  const seconds = (Date.now() - t0) / 1000;
  const known = verdicts(series);
  const rows = hits.map((h) => ({ ...h, v: known.get(`${h.file}:${h.line} ${h.rule}`) }));
  const untriaged = rows.filter((r) => !r.v);
  const byRule = new Map();
  for (const h of hits) {
    const c = byRule.get(h.rule) || { error: 0, warning: 0, info: 0 };
    c[h.severity]++;
    byRule.set(h.rule, c);
  }
  const esc = (s) => String(s).replace(/\|/g, '\\|').replace(/\n/g, ' ');
  const lines = [
    `# Triage: every finding on Debian linux-source-${v.major}.${v.minor}.${v.sublevel}`,
    '',
    `Produced by \`node scripts/triage.js ${series}\` (all ${analyzer.rules().length} rules, the tree's own version,`,
    'the cross-file lock pass, every `.c`/`.h` file outside tools/, Documentation/, samples/ and scripts/).',
    `${files.length} files scanned, ${analysed} analysed after the prefilter, ${hits.length} findings, ${seconds.toFixed(0)} s on this machine.`,
    'Verdicts come from the per-family triage pages in [docs/triage/](triage/), which give the full reasoning.',
    '',
    '## Findings per rule',
    '',
    '| rule | error | warning | info |',
    '|---|---|---|---|',
    ...[...byRule.keys()].sort().map((k) => `| ${k} | ${byRule.get(k).error} | ${byRule.get(k).warning} | ${byRule.get(k).info} |`),
    '',
    '## Every finding',
    '',
    '| file:line | rule | severity | verdict | reason |',
    '|---|---|---|---|---|',
    ...rows.map((r) => `| ${r.file}:${r.line} | ${r.rule} | ${r.severity} | ${esc(r.v ? r.v.verdict : 'UNTRIAGED')} | ${esc(r.v ? r.v.reason : r.message)} |`),
    '',
  ];
  const out = path.join(ROOT, 'docs', series === '6.12' ? 'triage-6.12.md' : `triage-${series}.md`);
  fs.writeFileSync(out, lines.join('\n'));
  process.stdout.write(`${out}: ${hits.length} findings, ${untriaged.length} untriaged\n`);
  for (const u of untriaged) process.stdout.write(`  UNTRIAGED ${u.file}:${u.line} ${u.rule} ${u.severity} ${u.message.slice(0, 120)}\n`);
  process.exit(untriaged.length ? 1 : 0);
}

main().catch((e) => {
  process.stderr.write(`triage: ${e.stack || e}\n`);
  process.exit(2);
});
