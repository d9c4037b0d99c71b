/**
 * The model's runs: every implemented rule's reference scenario reaches the
 * outcome of its causal chain through the key steps, findings from the rule
 * fixtures all get a run, and changing the world changes the run where the
 * kernel's behaviour changes.
 */
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Analyzer } from '../../src/core/analyzer';
import { explain, referenceRun, scenarioRules } from '../../src/model/explain';
import type { Run } from '../../src/model/types';
import { loadWasm } from '../../src/node/assets';
import { RULES } from '../../src/rules/registry';

const steps = (run: Run) => run.steps.map((s) => `[${s.actor}] ${s.action}`).join('\n');

/** Expected outcome, and steps (as regular expressions, in order) that must appear. */
const CHAINS: Record<string, { outcome: string; keys: RegExp[] }> = {
  'DMABUF-LOCKING': { outcome: 'SILENT_CORRUPTION', keys: [/starts evicting/, /dma_resv_assert_held\(\): the lock is not held/, /sg_table #1/, /copies the data out/, /handed to another buffer object/, /writes a frame/] },
  'DMABUF-SG-PAGE': { outcome: 'CPU_FAULT', keys: [/peer2peer allowed/, /sg_page\(\) = NULL/, /reads sg_page\(\) of the entry: NULL/] },
  'DMABUF-ERRPTR': { outcome: 'CPU_FAULT', keys: [/fails \(-EINTR\) and returns ERR_PTR\(-4\) = 0xfffffffffffffffc/, /NULL test sees a non-NULL pointer/, /dereferences 0xfffffffffffffffc/] },
  'DMABUF-MOVE-NOTIFY': { outcome: 'SILENT_CORRUPTION', keys: [/move_notify with the lock held/, /returns without invalidating/, /copies the data out/, /handed to another buffer object/] },
  'DMABUF-PIN-BALANCE': { outcome: 'LEAK', keys: [/pins the buffer in VRAM/, /returns without dma_buf_unpin/, /pin_count is 1: it stays/] },
  'PGMAP-PRIVATE-AS-P2P': { outcome: 'UR_AER', keys: [/MEMORY_DEVICE_PRIVATE with add_pages\(\): no kernel mapping/, /dma_map_page\(the NIC/, /no peer-to-peer check runs/, /translates/, /does not forward peer-to-peer/] },
  'PGMAP-INIT-FIELDS': { outcome: 'WARN', keys: [/without owner/, /WARNs "Missing owner"/] },
  'PGMAP-PRIVATE-DMA-MAP': { outcome: 'UR_AER', keys: [/request_free_mem_region/, /MEMORY_DEVICE_PRIVATE/, /dma_map_page\(the GPU, a MEMORY_DEVICE_PRIVATE page/, /translates/] },
  'MIG-FAULT-PAGE': { outcome: 'LIVELOCK', keys: [/device-private swap entry, so it faults/, /takes a reference .* and locks it/, /it is locked \(by the fault path itself\), so the page is skipped/, /cpages = 0/, /CPU retries/] },
  'P2P-DISTANCE-UNCHECKED': { outcome: 'UR_AER', keys: [/pci_alloc_p2pmem/, /no pci_p2pdma_distance\(\) runs/, /pci_p2pmem_virt_to_bus/, /writes a received packet/, /root complex must forward/, /does not forward peer-to-peer/] },
  'P2P-DISTANCE-BOOL': { outcome: 'UR_AER', keys: [/returns -1/, /reads -1 as "true"/, /does not forward peer-to-peer/] },
  'P2P-SECOND-ALLOCATOR': { outcome: 'SILENT_CORRUPTION', keys: [/own allocator/, /p2pdma gen_pool/, /allocates a buffer object at BAR2\+0x0/, /also returns BAR2\+0x0/, /PCI_P2PDMA_MAP_BUS_ADDR/, /writes a 4 KiB read from disk/, /switch routes the TLP straight/] },
  'P2P-CPU-MEMCPY': { outcome: 'CPU_FAULT', keys: [/mapped uncached/, /DC ZVA/] },
};

test('every rule the analyzer implements has a scenario', () => {
  const missing = RULES.map((r) => r.id).filter((id) => !scenarioRules().includes(id));
  assert.deepEqual(missing, []);
});

for (const [rule, chain] of Object.entries(CHAINS)) {
  test(`${rule}: the reference run reaches ${chain.outcome} through the catalog's chain`, () => {
    const run = referenceRun(rule)!;
    assert.ok(run, 'a run');
    assert.equal(run.outcome.kind, chain.outcome, `${run.outcome.summary}\n${steps(run)}`);
    const text = steps(run);
    let at = 0;
    for (const k of chain.keys) {
      const idx = run.steps.findIndex((s, i) => i >= at && k.test(s.action));
      assert.ok(idx >= 0, `step ${k} (after step ${at}) missing from\n${text}`);
      at = idx + 1;
    }
  });
}

test('the world changes the outcome where the kernel behaves differently', () => {
  const unchecked = { rule: 'P2P-DISTANCE-UNCHECKED', events: [], span: { start: 0, end: 0 } };
  assert.equal(explain(unchecked, { p2pPath: 'unsupported', iommu: 'off' })!.outcome.kind, 'UR_AER');
  assert.equal(explain(unchecked, { p2pPath: 'unsupported', iommu: 'translated' })!.outcome.kind, 'IOMMU_FAULT', 'a bus address through a translating IOMMU');
  const mapped = { ...unchecked, events: [{ op: 'dma_map_p2p' }] };
  assert.equal(explain(mapped, { p2pPath: 'unsupported' })!.outcome.kind, 'IO_ERROR', 'dma_map_sg() refuses an unsupported path');
  assert.equal(explain(unchecked, { p2pPath: 'switch' })!.outcome.kind, 'OK');
  assert.equal(explain(unchecked, { p2pPath: 'allowlisted' })!.outcome.kind, 'OK');
  assert.equal(explain(unchecked, { p2pPath: 'unsupported', cpu: 'amd-zen' })!.outcome.kind, 'OK');
  const run = referenceRun('P2P-DISTANCE-UNCHECKED')!;
  assert.ok(run.worldNotes?.some((n) => /one PCIe switch: it works/.test(n)), String(run.worldNotes));
  assert.equal(referenceRun('P2P-CPU-MEMCPY', { cpu: 'intel' })!.outcome.kind, 'OK');
  const sg = referenceRun('DMABUF-SG-PAGE', { p2pPath: 'unsupported' })!;
  assert.equal(sg.outcome.kind, 'UAF', 'without a p2p path the exporter hands out system RAM pages, freed later');
  assert.ok(sg.steps.some((s) => /clears attach->peer2peer/.test(s.action)));
});

test('runs carry the user\'s code locations, and the topology when a path matters', async () => {
  const analyzer = await Analyzer.create(loadWasm());
  const file = path.resolve(__dirname, '../../../test/fixtures/rules/P2P-DISTANCE-UNCHECKED/bad-sgl-for-client.c');
  const text = fs.readFileSync(file, 'utf8');
  const f = analyzer.analyzeText(text).findings[0];
  const run = explain(f)!;
  const located = run.steps.filter((s) => s.location);
  assert.ok(located.length >= 2);
  assert.match(text.slice(located[0].location!.start, located[0].location!.end), /pci_p2pmem_alloc_sgl/);
  assert.ok(run.topology && run.topology.path.length >= 3 && run.topology.breakAt);
});

test('every finding of every bad fixture gets a run with a failure outcome', async () => {
  const analyzer = await Analyzer.create(loadWasm());
  const root = path.resolve(__dirname, '../../../test/fixtures/rules');
  let runs = 0;
  for (const rule of fs.readdirSync(root).filter((d) => fs.statSync(path.join(root, d)).isDirectory())) {
    for (const name of fs.readdirSync(path.join(root, rule)).filter((n) => n.startsWith('bad') && n.endsWith('.c'))) {
      const text = fs.readFileSync(path.join(root, rule, name), 'utf8');
      for (const f of analyzer.analyzeText(text).findings) {
        const run = explain(f);
        assert.ok(run, `${rule}/${name}: no run for ${f.rule}`);
        assert.notEqual(run.outcome.kind, 'OK', `${rule}/${name}: ${f.rule} ran to OK in its default world\n${steps(run)}`);
        runs++;
      }
    }
  }
  assert.ok(runs > 40, `${runs} runs`);
});
