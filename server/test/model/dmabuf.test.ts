/**
 * Chain tests for the dmabuf family's rules beyond the first thirteen: each
 * reference run reaches the catalog's outcome through its key steps, the
 * findings of the rule fixtures replay to the outcome their hazard has, the
 * steps point back at the user's code, and the world changes the outcome
 * where the machine does.
 */
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Analyzer } from '../../src/core/analyzer';
import type { Finding } from '../../src/core/types';
import { explain, referenceRun } from '../../src/model/explain';
import type { Run } from '../../src/model/types';
import { loadWasm } from '../../src/node/assets';

const steps = (run: Run) => run.steps.map((s) => `[${s.actor}] ${s.action}`).join('\n');

function assertChain(run: Run, outcome: string, keys: RegExp[]): void {
  assert.equal(run.outcome.kind, outcome, `${run.outcome.summary}\n${steps(run)}`);
  let at = 0;
  for (const k of keys) {
    const idx = run.steps.findIndex((s, i) => i >= at && k.test(s.action));
    assert.ok(idx >= 0, `step ${k} (after step ${at}) missing from\n${steps(run)}`);
    at = idx + 1;
  }
}

const CHAINS: Record<string, { outcome: string; keys: RegExp[] }> = {
  'DMABUF-P2P-GATE': {
    outcome: 'UR_AER',
    keys: [/on-board memory/, /attach->peer2peer = false/, /never looks at attach->peer2peer/, /dma_map_resource\(the NIC/, /sg_page\(\) = NULL/, /writes a received packet/, /root complex must forward/, /does not forward peer-to-peer/],
  },
  'DMABUF-LIFECYCLE': {
    outcome: 'UAF',
    keys: [/export reference/, /dma_buf_fd\(\) installs fd 5/, /dma_buf_put\(\) after dma_buf_fd\(\)\) drops a reference/, /\.release frees/, /mmap\(5\)/, /after dma_buf_release\(\) freed it/],
  },
  'DMABUF-VMAP-IOMEM': {
    outcome: 'CPU_FAULT',
    keys: [/VRAM through the BAR, write-combined: I\/O memory/, /DC ZVA on a Device-nGnRE/, /alignment fault/],
  },
  'DMABUF-CPU-ACCESS-SYNC': {
    outcome: 'SILENT_CORRUPTION',
    keys: [/not cache coherent/, /dma_buf_vmap/, /writes version 2, which sits in its cache/, /reads the buffer from memory: version 0/],
  },
  'DMABUF-RESV-FAULT': {
    outcome: 'DEADLOCK',
    keys: [/T1: the ioctl reserves the buffer.*takes bo->resv/, /T2: .*takes mmap_lock/, /T2: .*dma_resv_lock\(\); bo->resv is held by T1, so it waits/, /copy_to_user\(\) faults/, /mmap_lock\(mm\) is held by T2, so it waits/, /T1 waits for T2 waits for T1/],
  },
  'DMABUF-EXPORT-OPS': {
    outcome: 'WARN',
    keys: [/the exporter's ops: \.map_dma_buf, \.unmap_dma_buf$/, /WARN_ON\(!ops->release\) fires/],
  },
};

for (const [rule, chain] of Object.entries(CHAINS)) {
  test(`${rule}: the reference run reaches ${chain.outcome} through the catalog's chain`, () => {
    const run = referenceRun(rule);
    assert.ok(run, 'a run');
    assertChain(run, chain.outcome, chain.keys);
  });
}

test('the world changes the outcome where the machine does', () => {
  assert.equal(referenceRun('DMABUF-P2P-GATE', { p2pPath: 'allowlisted' })!.outcome.kind, 'OK', 'an allowlisted host bridge forwards the peer write');
  assert.ok(referenceRun('DMABUF-P2P-GATE')!.worldNotes?.some((n) => /allowlist: it works/.test(n)));
  assert.equal(referenceRun('DMABUF-VMAP-IOMEM', { cpu: 'intel' })!.outcome.kind, 'OK', 'x86 tolerates memcpy() on a WC BAR');
  assert.equal(referenceRun('DMABUF-CPU-ACCESS-SYNC', { cpu: 'intel' })!.outcome.kind, 'OK', 'a coherent machine needs no cache maintenance');
  assert.equal(referenceRun('DMABUF-EXPORT-OPS', { iommu: 'off' })!.outcome.kind, 'WARN', 'the export check does not depend on the machine');
});

// ---------------------------------------------------------------- from the fixtures

const FIXTURES = path.resolve(__dirname, '../../../test/fixtures/rules');
const analyzerP = Analyzer.create(loadWasm());

async function findingAt(rel: string, rule: string, marker: RegExp): Promise<{ f: Finding; text: string }> {
  const analyzer = await analyzerP;
  const text = fs.readFileSync(path.join(FIXTURES, rel), 'utf8');
  const lines = text.split('\n');
  const line = lines.findIndex((l) => marker.test(l));
  assert.ok(line >= 0, `marker ${marker} in ${rel}`);
  const start = lines.slice(0, line).reduce((n, l) => n + l.length + 1, 0);
  const end = start + lines[line].length;
  const f = analyzer.analyzeText(text).findings.find((x) => x.rule === rule && x.span.start >= start && x.span.start <= end);
  assert.ok(f, `${rule} finding on line ${line + 1} of ${rel}`);
  return { f, text };
}

const located = (run: Run, text: string) => run.steps.filter((s) => s.location).map((s) => text.slice(s.location!.start, s.location!.end));

const CASES: Array<{ rule: string; file: string; at: RegExp; outcome: string; keys: RegExp[]; code?: RegExp }> = [
  { rule: 'DMABUF-P2P-GATE', file: 'DMABUF-P2P-GATE/bad-no-distance-check.c', at: /acme_vram_dmabuf_attach\(struct dma_buf/, outcome: 'UR_AER', keys: [/does not call pci_p2pdma_distance/, /peer2peer allowed/, /dma_map_resource/, /does not forward peer-to-peer/], code: /attach->peer2peer/ },
  { rule: 'DMABUF-P2P-GATE', file: 'DMABUF-P2P-GATE/bad-forced-peer2peer.c', at: /attach->peer2peer = true;/, outcome: 'UR_AER', keys: [/peer2peer = false/, /sets attach->peer2peer = true/, /dma_map_resource/], code: /attach->peer2peer = true/ },
  { rule: 'DMABUF-P2P-GATE', file: 'DMABUF-P2P-GATE/bad-static-attach-with-p2p.c', at: /dma_buf_attach\(dmabuf, dev\)/, outcome: 'IO_ERROR', keys: [/never carries peer2peer/, /-EPERM/], code: /dma_buf_attach/ },
  { rule: 'DMABUF-LIFECYCLE', file: 'DMABUF-LIFECYCLE/bad-attach-leak.c', at: /attach = dma_buf_attach/, outcome: 'WARN', keys: [/attaches to the dma-buf/, /returns without dma_buf_detach/, /closes the last fd/, /WARN_ON\(!list_empty/], code: /return PTR_ERR\(sgt\)/ },
  { rule: 'DMABUF-LIFECYCLE', file: 'DMABUF-LIFECYCLE/bad-detach-live-mapping.c', at: /dma_buf_detach\(dmabuf, attach\); \/\*/, outcome: 'UAF', keys: [/sg_table #1/, /was never unmapped and stays programmed/, /\.release frees/, /still DMAs to/, /pages behind sg_table #1 were freed/] },
  { rule: 'DMABUF-LIFECYCLE', file: 'DMABUF-LIFECYCLE/bad-detach-live-mapping.c', at: /DMA_BIDIRECTIONAL\);/, outcome: 'WARN', keys: [/mapped DMA_FROM_DEVICE/, /dma_unmap_sgtable\(DMA_BIDIRECTIONAL\)/, /check_unmap\(\)/] },
  { rule: 'DMABUF-LIFECYCLE', file: 'DMABUF-LIFECYCLE/bad-get-leak.c', at: /dmabuf = dma_buf_get\(fd\); \/\*/, outcome: 'LEAK', keys: [/returns without dma_buf_put/, /takes a reference/, /refcount/] },
  { rule: 'DMABUF-LIFECYCLE', file: 'DMABUF-LIFECYCLE/bad-get-leak.c', at: /dma_buf_put\(dmabuf\); \/\*/, outcome: 'UAF', keys: [/importer \(dma_buf_put\(\) before dma_buf_detach\(\)\) drops a reference/, /\.release frees/, /dma_buf_detach\(\) on the buffer it no longer holds/] },
  { rule: 'DMABUF-LIFECYCLE', file: 'DMABUF-LIFECYCLE/bad-put-after-fd.c', at: /buf->size, fd\)/, outcome: 'UAF', keys: [/installs fd 5/, /close\(5\)/, /\.release frees/, /read of the buffer after dma_buf_fd\(\)/] },
  { rule: 'DMABUF-LIFECYCLE', file: 'DMABUF-LIFECYCLE/bad-put-after-fd.c', at: /dma_buf_fd\(buf, 0\)/, outcome: 'LEAK', keys: [/installs fd 5/, /inherits the fd/, /close\(5\)/] },
  { rule: 'DMABUF-VMAP-IOMEM', file: 'DMABUF-VMAP-IOMEM/bad-forged-vunmap.c', at: /dma_buf_vunmap_unlocked\(obj->import/, outcome: 'CPU_FAULT', keys: [/I\/O memory/, /IOSYS_MAP_INIT_VADDR\(\) says is_iomem = false/, /compares the map with dmabuf->vmap_ptr: is_iomem false vs true/, /BUG_ON\(!iosys_map_is_equal/] },
  { rule: 'DMABUF-VMAP-IOMEM', file: 'DMABUF-VMAP-IOMEM/bad-vmap-api.c', at: /dma_buf_vmap_unlocked\(ovl->dmabuf, &ovl->map\)/, outcome: 'CPU_FAULT', keys: [/returns -EINVAL/, /ignores the return value/, /dereferences NULL/] },
  { rule: 'DMABUF-CPU-ACCESS-SYNC', file: 'DMABUF-CPU-ACCESS-SYNC/bad-exporter-sync.c', at: /sgt->nents, dir\)/, outcome: 'SILENT_CORRUPTION', keys: [/4 CPU entries \(orig_nents\).*1 DMA segment/, /first 1 of 4 entries/, /stale data in 3 of 4 parts/] },
  { rule: 'DMABUF-CPU-ACCESS-SYNC', file: 'DMABUF-CPU-ACCESS-SYNC/bad-exporter-sync.c', at: /dma_sync_sgtable_for_cpu\(buffer->dev/, outcome: 'SILENT_CORRUPTION', keys: [/writes version 2, which sits in its cache/, /should be _for_device\) invalidates/, /version 0/] },
  { rule: 'DMABUF-CPU-ACCESS-SYNC', file: 'DMABUF-CPU-ACCESS-SYNC/bad-sync-wrong-device.c', at: /dma_sync_sgtable_for_cpu\(dev, a->table/, outcome: 'WARN', keys: [/attach->dev = the NIC/, /misc device/, /there is none/] },
  { rule: 'DMABUF-CPU-ACCESS-SYNC', file: 'DMABUF-CPU-ACCESS-SYNC/bad-bracket-mismatch.c', at: /DMA_FROM_DEVICE\); \/\*/, outcome: 'SILENT_CORRUPTION', keys: [/begin_cpu_access\(DMA_TO_DEVICE\).*does nothing for/, /stale cache lines/] },
  { rule: 'DMABUF-RESV-FAULT', file: 'DMABUF-RESV-FAULT/bad-add-fence-unreserved.c', at: /dma_resv_add_fence\(bo->resv/, outcome: 'CPU_FAULT', keys: [/4 fences/, /takes bo->resv/, /no dma_resv_reserve_fences/, /looks for a slot/, /BUG_ON\(fobj->num_fences >= fobj->max_fences\)/], code: /dma_resv_add_fence/ },
  { rule: 'DMABUF-RESV-FAULT', file: 'DMABUF-RESV-FAULT/bad-ww-unchecked.c', at: /dma_resv_lock\(cp->dst, &ctx\);/, outcome: 'SILENT_CORRUPTION', keys: [/older ww ticket/, /-EDEADLK/, /ignores the return value/, /handed to a newly allocated buffer object/] },
  { rule: 'DMABUF-RESV-FAULT', file: 'DMABUF-RESV-FAULT/bad-signalling-alloc.c', at: /kzalloc/, outcome: 'DEADLOCK', keys: [/dma_fence_begin_signalling\(\)/, /direct reclaim/, /waits for fence F/, /T1 waits for T1/] },
  { rule: 'DMABUF-RESV-FAULT', file: 'DMABUF-RESV-FAULT/bad-user-copy-under-lock.c', at: /pin_user_pages_fast/, outcome: 'DEADLOCK', keys: [/acme_bo_reserve\(\); takes bo->resv/, /pin_user_pages_fast\(\) faults/, /cycle/] },
  { rule: 'DMABUF-EXPORT-OPS', file: 'DMABUF-EXPORT-OPS/bad-map-wrong-device.c', at: /dma_map_sgtable\(buf->dev/, outcome: 'IOMMU_FAULT', keys: [/exporter's own device the GPU/, /address of the GPU's IOMMU domain/, /has no mapping/], code: /dma_map_sgtable/ },
  { rule: 'DMABUF-EXPORT-OPS', file: 'DMABUF-EXPORT-OPS/bad-map-wrong-device.c', at: /return buf->sgt;/, outcome: 'UAF', keys: [/sg_table #1 .* to the NIC and, again, to the GPU/, /the NIC is done/, /the GPU is done/, /a second time/] },
  { rule: 'DMABUF-EXPORT-OPS', file: 'DMABUF-EXPORT-OPS/bad-export-info-garbage.c', at: /struct dma_buf_export_info exp_info;/, outcome: 'CPU_FAULT', keys: [/uninitialised/, /stack garbage/, /general protection fault/] },
  { rule: 'DMABUF-EXPORT-OPS', file: 'DMABUF-EXPORT-OPS/bad-pin-without-unpin.c', at: /&acme_bo_dmabuf_ops;/, outcome: 'WARN', keys: [/\.pin/, /!exp_info->ops->pin != !exp_info->ops->unpin/] },
];

for (const c of CASES) {
  test(`${c.rule}: ${c.file} at ${c.at.source.slice(0, 40)} replays to ${c.outcome}`, async () => {
    const { f, text } = await findingAt(c.file, c.rule, c.at);
    const run = explain(f)!;
    assert.ok(run, 'a run');
    assertChain(run, c.outcome, c.keys);
    if (c.code) assert.ok(located(run, text).some((t) => c.code!.test(t)), `a step located at ${c.code} in\n${located(run, text).join('\n')}`);
  });
}

test('the default world of every reference run shows the hazard, and the runs say where in the code they are', async () => {
  for (const rule of Object.keys(CHAINS)) assert.notEqual(referenceRun(rule)!.outcome.kind, 'OK', rule);
  const { f, text } = await findingAt('DMABUF-RESV-FAULT/bad-user-copy-under-lock.c', 'DMABUF-RESV-FAULT', /copy_to_user/);
  const codes = located(explain(f)!, text);
  assert.ok(codes.some((t) => /dma_resv_lock_interruptible/.test(t)), codes.join('\n'));
  assert.ok(codes.some((t) => /copy_to_user/.test(t)), codes.join('\n'));
});
