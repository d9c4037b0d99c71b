/** .dmalens.json: validation with spans, and its effect on analysis. */
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { Analyzer } from '../../src/core/analyzer';
import { isExcluded, kernelVersionFromMakefile, parseProjectConfig } from '../../src/core/config';
import { loadWasm } from '../../src/node/assets';
import { RULES } from '../../src/rules/registry';

const KNOWN = new Set(RULES.map((r) => r.id));

test('a valid project file', () => {
  const text = `{
  // comments are allowed
  "kernelVersion": "6.1",
  "rules": { "disabled": ["P2P-CPU-MEMCPY"], "severity": { "DMABUF-LOCKING": "warning" } },
  "exclude": ["drivers/staging/**", "tools"],
  "lockWrappers": [{ "name": "acme_bo_lock", "kind": "acquire", "arg": 0, "suffix": ".base.resv" }],
  "helpers": { "acme_vram_page": { "returns": "device-private-page" } },
}`;
  const { config, problems } = parseProjectConfig(text, KNOWN);
  assert.deepEqual(problems, []);
  assert.deepEqual(config.kernelVersion, { major: 6, minor: 1 });
  assert.deepEqual(config.disabledRules, ['P2P-CPU-MEMCPY']);
  assert.deepEqual(config.severity, { 'DMABUF-LOCKING': 'warning' });
  assert.deepEqual(config.lockWrappers, [{ name: 'acme_bo_lock', kind: 'acquire', arg: 0, conditional: false, suffix: '.base.resv' }]);
  assert.deepEqual(config.helpers, { acme_vram_page: { returns: 'device-private-page' } });
  assert.ok(isExcluded('drivers/staging/foo/bar.c', config.exclude));
  assert.ok(isExcluded('tools/x.c', config.exclude));
  assert.ok(!isExcluded('drivers/gpu/x.c', config.exclude));
});

test('every problem is reported at its own span, and the rest still applies', () => {
  const text = '{ "kernelVersion": 6, "rules": { "disabled": ["NO-SUCH-RULE", "DMABUF-ERRPTR"] }, "lockWrappers": [{ "name": "1bad", "kind": "acquire" }], "exclude": ["../etc"], "bogus": true, }';
  const { config, problems } = parseProjectConfig(text, KNOWN);
  const at = (p: { span: { start: number; end: number } }) => text.slice(p.span.start, p.span.end);
  const msgs = problems.map((p) => `${at(p)} => ${p.message}`);
  assert.ok(msgs.some((m) => m.startsWith('6 => kernelVersion')), msgs.join('\n'));
  assert.ok(msgs.some((m) => m.startsWith('"NO-SUCH-RULE" => unknown rule id')));
  assert.ok(msgs.some((m) => m.startsWith('"1bad" => name must be a C identifier')));
  assert.ok(msgs.some((m) => m.startsWith('"../etc" => exclude patterns')));
  assert.ok(msgs.some((m) => m.startsWith('"bogus" => unknown key')));
  assert.deepEqual(config.disabledRules, ['DMABUF-ERRPTR']);
  const broken = parseProjectConfig('{ "rules": [ }', KNOWN);
  assert.ok(broken.problems.some((p) => p.message.startsWith('JSON:')));
});

test('kernel version from a tree Makefile', () => {
  assert.deepEqual(kernelVersionFromMakefile('# SPDX\nVERSION = 6\nPATCHLEVEL = 12\nSUBLEVEL = 117\n'), { major: 6, minor: 12 });
  assert.equal(kernelVersionFromMakefile('all:\n\techo'), undefined);
});

test('project lock wrappers and helpers change what the rules see', async () => {
  const analyzer = await Analyzer.create(loadWasm());
  const src = `struct acme_bo { struct drm_gem_object base; struct dma_buf_attachment *attach; };
void acme_bo_lock(struct acme_bo *bo);
void acme_bo_unlock(struct acme_bo *bo);
static int acme_map(struct acme_bo *bo)
{
	struct sg_table *sgt;

	acme_bo_lock(bo);
	sgt = dma_buf_map_attachment(bo->attach, DMA_TO_DEVICE);
	acme_bo_unlock(bo);
	return PTR_ERR_OR_ZERO(sgt);
}
`;
  const without = analyzer.analyzeText(src).findings.filter((f) => f.rule === 'DMABUF-LOCKING');
  assert.equal(without.length, 1, 'the wrapper lives in another file: unknown');
  const withWrappers = analyzer.analyzeText(src, {
    lockWrappers: [
      { name: 'acme_bo_lock', kind: 'acquire', arg: 0, suffix: '.base.resv' },
      { name: 'acme_bo_unlock', kind: 'release', arg: 0, suffix: '.base.resv' },
    ],
  }).findings.filter((f) => f.rule === 'DMABUF-LOCKING');
  assert.deepEqual(withWrappers, []);

  const priv = `int acme_copy(struct device *dev, struct acme *a)
{
	struct page *p = acme_vram_page(a, 0);
	dma_addr_t d = dma_map_page(dev, p, 0, PAGE_SIZE, DMA_TO_DEVICE);
	return dma_mapping_error(dev, d);
}
/* MEMORY_DEVICE_PRIVATE */
`;
  assert.equal(analyzer.analyzeText(priv).findings.length, 0);
  const hit = analyzer.analyzeText(priv, { helpers: { acme_vram_page: { returns: 'device-private-page' } } }).findings;
  assert.deepEqual(hit.map((f) => f.rule), ['PGMAP-PRIVATE-DMA-MAP']);
});
