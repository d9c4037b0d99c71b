#!/usr/bin/env node
'use strict';
/**
 * Times the patch review over a synthetic 50-patch series (an mbox with a
 * cover letter, as b4 writes it): hunk mode, and whole-file mode with the
 * tree in memory. Prints the times; asserts nothing (the tests check the
 * findings). Needs the tsc output: run `npx tsc -b server` first.
 *
 *   node scripts/bench-patch.js [patches=50] [runs=5] [--cold]
 */
const path = require('node:path');
const fs = require('node:fs');

const OUT = path.resolve(__dirname, '..', 'server', 'out');
if (!fs.existsSync(path.join(OUT, 'src', 'patch', 'review.js'))) {
  process.stderr.write('bench-patch: no build under server/out; run `npx tsc -b server` first\n');
  process.exit(1);
}
const { Analyzer } = require(path.join(OUT, 'src', 'core', 'analyzer'));
const { loadWasm } = require(path.join(OUT, 'src', 'node', 'assets'));
const { reviewPatchText } = require(path.join(OUT, 'src', 'patch', 'review'));
const { syntheticSeries } = require(path.join(OUT, 'test', 'helpers', 'patchSeries'));

const args = process.argv.slice(2).filter((a) => !a.startsWith('--'));
const n = Number(args[0] ?? 50);
const runs = Number(args[1] ?? 5);

function time(f) {
  const t0 = process.hrtime.bigint();
  const r = f();
  return { ms: Number(process.hrtime.bigint() - t0) / 1e6, r };
}

(async () => {
  const t0 = process.hrtime.bigint();
  const analyzer = await Analyzer.create(loadWasm());
  const load = Number(process.hrtime.bigint() - t0) / 1e6;
  // The analyzer's own first call (JIT, wasm) is paid once per process, by whatever comes first.
  const warm = process.argv.includes('--cold') ? undefined : time(() => analyzer.analyzeText('int f(void)\n{\n\tdma_buf_map_attachment(a, b);\n}\n')).ms;
  const series = syntheticSeries(n);
  const bytes = Buffer.byteLength(series.mbox);
  process.stdout.write(
    `synthetic series: ${n} patches + cover letter, ${(bytes / 1024).toFixed(1)} KiB; analyzer load ${load.toFixed(0)} ms` +
      (warm !== undefined ? `, its first analysis ${warm.toFixed(0)} ms (before the timings; --cold to include it)` : '') +
      '\n',
  );
  const modes = [
    ['hunk mode', {}],
    ['whole-file mode', { readTarget: (p) => series.tree.get(p) }],
  ];
  for (const [label, opts] of modes) {
    const times = [];
    let findings = 0;
    for (let i = 0; i < runs; i++) {
      const { ms, r } = time(() => reviewPatchText(series.mbox, analyzer, opts));
      times.push(ms);
      findings = r.patches.reduce((s, p) => s + p.findings.length, 0);
    }
    const warm = times.slice(1);
    const median = warm.length ? [...warm].sort((a, b) => a - b)[Math.floor(warm.length / 2)] : times[0];
    process.stdout.write(
      `${label.padEnd(16)} first ${times[0].toFixed(1)} ms, then median ${median.toFixed(1)} ms over ${warm.length} runs ` +
        `(${(median / n).toFixed(2)} ms/patch); ${findings} findings (expected ${series.expected.length})\n`,
    );
  }
})().catch((e) => {
  process.stderr.write(`bench-patch: ${e.stack || e}\n`);
  process.exit(1);
});
