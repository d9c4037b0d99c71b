/**
 * Chains of the p2pdma family's further rules: each reference run reaches the
 * catalog's terminal outcome through the key steps, the other shapes of each
 * finding (by its events) reach theirs, and the world changes the outcome
 * where the kernel and the hardware behave differently.
 */
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Analyzer } from '../../src/core/analyzer';
import type { CodeEvent } from '../../src/core/types';
import { explain, referenceRun } from '../../src/model/explain';
import type { Run } from '../../src/model/types';
import type { WorldOptions } from '../../src/model/world';
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

const run = (rule: string, events: CodeEvent[], world?: WorldOptions) => explain({ rule, events, span: { start: 0, end: 0 } }, world)!;

const REFERENCE: Record<string, { outcome: string; keys: RegExp[] }> = {
  'P2P-BUS-ADDR-VS-IOMMU': {
    outcome: 'IOMMU_FAULT',
    keys: [/pci_p2pdma_add_resource\(\) creates/, /pci_alloc_p2pmem\(the NVMe drive/, /writes pci_p2pmem_virt_to_bus\(\) = 0xfb000000/, /writes a received packet to 0xfb000000/, /IOMMU has no mapping for 0xfb000000/],
  },
  'P2P-PUBLISH-CONTRACT': {
    outcome: 'IO_ERROR',
    keys: [/pci_p2pdma_setup\(\) creates pdev->p2pdma/, /devm_memremap_pages\(\) .* fails/, /logs the failure/, /publish\(the NVMe drive, true\)/, /pci_p2pmem_find\(\) picks the NVMe drive/, /returns NULL: the pool has 0 bytes free/, /pool is empty/],
  },
  'P2P-ALLOC-FREE-MISMATCH': {
    outcome: 'SILENT_CORRUPTION',
    keys: [/gives the driver 0x/, /gives nvmet request #2/, /clears 2 page bits .* including nvmet request #2's/, /drops one pgmap reference/, /gives nvmet request #3/, /includes the page request #2 is still using/],
  },
  'P2P-REF-ERRPATH': {
    outcome: 'HANG',
    keys: [/mmap\(\)s 8192 bytes/, /gen_pool_alloc_owner\(\) returns/, /takes a pgmap reference/, /vm_insert_page\(\) fails/, /returns -EBUSY without percpu_ref_put/, /is unbound/, /kills .*pgmap->ref/, /waits forever/],
  },
  'P2P-DMA-MAP-API': {
    outcome: 'UR_AER',
    keys: [/pci_alloc_p2pmem/, /dma_map_page\(\) sees a page at physical 0xfb000000 and maps it like RAM/, /maps IOVA/, /translates .* to 0xfb000000/, /root complex must forward/, /does not forward peer-to-peer/],
  },
  'P2P-ACS-TAMPER': {
    outcome: 'SILENT_CORRUPTION',
    keys: [/ACS request\/completion redirect on/, /VFIO maps the guest's DMA buffer at IOVA 0xfb001000/, /goes up to the IOMMU and lands in System RAM at 0x123456000/, /ACS_CTRL\): request\/completion redirect off/, /switch routes the TLP straight to the NVMe drive/, /isolation between IOMMU groups is gone/],
  },
};

for (const [rule, chain] of Object.entries(REFERENCE)) {
  test(`${rule}: the reference run reaches ${chain.outcome} through the catalog's chain`, () => {
    const r = referenceRun(rule);
    assert.ok(r, 'a run');
    assertChain(r!, chain.outcome, chain.keys);
  });
}

test('P2P-BUS-ADDR-VS-IOMMU: the world decides whether a bus address works', () => {
  const ev = [{ op: 'program_bus_address', args: { provider: 'p2p_dev' } }];
  assert.equal(run('P2P-BUS-ADDR-VS-IOMMU', ev, { p2pPath: 'switch' }).outcome.kind, 'OK', 'switch-local: the bus address is right');
  assert.equal(run('P2P-BUS-ADDR-VS-IOMMU', ev, { p2pPath: 'allowlisted' }).outcome.kind, 'IOMMU_FAULT', 'through the host bridge the translating IOMMU has no mapping');
  assert.equal(run('P2P-BUS-ADDR-VS-IOMMU', ev, { p2pPath: 'allowlisted', iommu: 'off' }).outcome.kind, 'OK', 'x86 without IOMMU: bus = CPU address');
  const arm = run('P2P-BUS-ADDR-VS-IOMMU', ev, { cpu: 'arm64', iommu: 'off' });
  assertChain(arm, 'SILENT_CORRUPTION', [/virt_to_bus\(\) = 0x40000000/, /lands in System RAM at 0x40000000/]);
  const ref = referenceRun('P2P-BUS-ADDR-VS-IOMMU')!;
  assert.ok(ref.worldNotes?.some((n) => /one PCIe switch: it works/.test(n)), String(ref.worldNotes));
  assert.ok(ref.topology && ref.topology.path.length >= 3);
});

test('P2P-BUS-ADDR-VS-IOMMU: a switch without NOT_SUPPORTED, and dma_map_resource() on a switch path', () => {
  const sw = run('P2P-BUS-ADDR-VS-IOMMU', [{ op: 'map_type_switch', args: { handles: 'PCI_P2PDMA_MAP_BUS_ADDR,PCI_P2PDMA_MAP_THRU_HOST_BRIDGE' } }]);
  assertChain(sw, 'UR_AER', [/PCI_P2PDMA_MAP_NOT_SUPPORTED/, /falls out of it/, /dma_map_resource\(the NIC/, /does not forward peer-to-peer/]);
  assert.equal(run('P2P-BUS-ADDR-VS-IOMMU', [{ op: 'map_type_switch' }], { p2pPath: 'switch' }).outcome.kind, 'OK', 'BUS_ADDR is handled');
  const res = run('P2P-BUS-ADDR-VS-IOMMU', [{ op: 'dma_map_resource', args: { bar: true } }], { p2pPath: 'switch' });
  assertChain(res, 'UR_AER', [/dma_map_resource\(the NIC, 0xfb001000\) computes phys .* maps IOVA/, /no map type was asked for: for this pair it is bus-address/, /translates/, /root complex must forward/]);
  assert.equal(run('P2P-BUS-ADDR-VS-IOMMU', [{ op: 'dma_map_resource' }], { p2pPath: 'allowlisted' }).outcome.kind, 'OK');
});

test('P2P-PUBLISH-CONTRACT: publishing before registering, and publishing a register BAR', () => {
  const early = run('P2P-PUBLISH-CONTRACT', [{ op: 'pci_p2pmem_publish' }, { op: 'pci_p2pdma_add_resource', args: { result: 'none' } }]);
  assertChain(early, 'IO_ERROR', [/finds no pdev->p2pdma and does nothing/, /pci_p2pdma_add_resource\(\) creates/, /finds no published provider/, /never published/]);
  const regs = run('P2P-PUBLISH-CONTRACT', [{ op: 'pci_p2pdma_add_resource', args: { whole: true } }, { op: 'register_bar_map' }, { op: 'pci_p2pmem_publish' }]);
  assertChain(regs, 'HANG', [/maps the first 16 KiB .* for its registers/, /pci_p2pdma_add_resource\(\) creates .* BAR0\+0x0/, /publish/, /pci_p2pmem_find\(\) picks/, /gives an orchestrator/, /PCI_P2PDMA_MAP_BUS_ADDR/, /lands in BAR0 of the NVMe drive .* offset 0x0/, /overwrites the NVMe drive's control registers/]);
});

test('P2P-ALLOC-FREE-MISMATCH: each mismatch reaches its own terminal state', () => {
  const alloc = { op: 'pci_alloc_p2pmem' };
  const smaller = run('P2P-ALLOC-FREE-MISMATCH', [alloc, { op: 'pci_free_p2pmem', args: { mismatch: 'size', bigger: false } }]);
  assertChain(smaller, 'CPU_FAULT', [/pci_alloc_p2pmem\(the NVMe drive, 8192\)/, /clears 1 page bit/, /is unbound/, /gen_pool_destroy\(\) finds 1 page .* still allocated \(the driver\)/]);
  const device = run('P2P-ALLOC-FREE-MISMATCH', [alloc, { op: 'pci_free_p2pmem', args: { mismatch: 'device' } }]);
  assertChain(device, 'CPU_FAULT', [/pci_free_p2pmem\(the NIC/, /pdev->p2pdma, which is NULL/]);
  const sgl = run('P2P-ALLOC-FREE-MISMATCH', [{ op: 'pci_p2pmem_alloc_sgl' }, { op: 'kfree', args: { mismatch: 'kfree-sgl' } }]);
  assertChain(sgl, 'HANG', [/kfree\(sgl\) frees the scatterlist itself/, /clears 1 page bit/, /is unbound/, /waits forever on the NVMe drive's pgmap->ref: 1 reference/]);
  const kfree = run('P2P-ALLOC-FREE-MISMATCH', [alloc, { op: 'kfree', args: { mismatch: 'kfree-mem' } }]);
  assertChain(kfree, 'WARN', [/kfree\(\) looks up the page .* MEMORY_DEVICE_P2PDMA page/, /free_large_kmalloc\(\) WARNs/]);
  const wrong = run('P2P-ALLOC-FREE-MISMATCH', [{ op: 'pci_p2pmem_alloc_sgl' }, { op: 'pci_free_p2pmem', args: { mismatch: 'wrong-free' } }]);
  assertChain(wrong, 'CPU_FAULT', [/kmalloc memory, not pool memory/, /finds 0x.* in no chunk/]);
});

test('P2P-REF-ERRPATH: a stale page refcount and a put_page() undo', () => {
  const count = run('P2P-REF-ERRPATH', [{ op: 'set_page_count' }, { op: 'return_error' }]);
  assertChain(count, 'WARN', [/set_page_count\(page, 1\)/, /vm_insert_page\(\) fails/, /drops the pgmap reference/, /without set_page_count\(page, 0\)/, /next mmap\(\)/, /VM_WARN_ON_ONCE_PAGE/]);
  const undo = run('P2P-REF-ERRPATH', [{ op: 'set_page_count' }, { op: 'put_page_undo' }, { op: 'gen_pool_free_again' }]);
  assertChain(undo, 'CPU_FAULT', [/set_page_count\(page, 1\)/, /put_page\(page\) drops the only reference/, /page_free callback/, /clears 1 page bit/, /gen_pool_free\(\)s the whole/, /already free \(BUG_ON\(remain\)\)/]);
  const dpm = run('P2P-REF-ERRPATH', [{ op: 'get_dev_pagemap' }, { op: 'return_error' }, { op: 'unbind_provider' }]);
  assertChain(dpm, 'HANG', [/get_dev_pagemap\(\) takes a pgmap reference/, /waits forever/]);
});

test('P2P-DMA-MAP-API: the removed API, dma_map_sg() < 0, RDMA without the capability check', () => {
  const legacy = run('P2P-DMA-MAP-API', [{ op: 'legacy_p2pdma_map_sg', args: { symbol: 'pci_p2pdma_map_sg_attrs', kernel: '6.12' } }]);
  assertChain(legacy, 'IO_ERROR', [/resolves pci_p2pdma_map_sg_attrs against a 6.12 kernel/, /6.12 has no pci_p2pdma_map_sg_attrs/]);
  assert.equal(run('P2P-DMA-MAP-API', [{ op: 'legacy_p2pdma_map_sg', args: { symbol: 'pci_p2pdma_map_sg_attrs', kernel: '5.19' } }]).outcome.kind, 'OK', 'still exported before 6.0');
  const neg = run('P2P-DMA-MAP-API', [{ op: 'dma_map_sg' }, { op: 'map_sg_negative_check' }]);
  assertChain(neg, 'IOMMU_FAULT', [/PCI_P2PDMA_MAP_NOT_SUPPORTED .* dma_map_sg\(\) returns 0/, /`< 0` test does not see the 0/, /writes a received packet to 0x0/, /no mapping for 0x0/]);
  assertChain(run('P2P-DMA-MAP-API', [{ op: 'dma_map_sg' }, { op: 'map_sg_negative_check' }], { iommu: 'off' }), 'SILENT_CORRUPTION', [/lands in System RAM at 0x0/]);
  assert.equal(run('P2P-DMA-MAP-API', [{ op: 'dma_map_sg' }, { op: 'map_sg_negative_check' }], { p2pPath: 'switch' }).outcome.kind, 'OK');
  const rdma = run('P2P-DMA-MAP-API', [{ op: 'pci_p2pmem_alloc_sgl' }, { op: 'rdma_map_p2p', args: { checked: false } }]);
  assertChain(rdma, 'CPU_FAULT', [/software RDMA device \(rxe\)/, /memcpy\(\) into 0x.* uncached/, /DC ZVA/]);
  assert.equal(run('P2P-DMA-MAP-API', [{ op: 'rdma_map_p2p' }], { cpu: 'intel' }).outcome.kind, 'OK', 'x86 survives the uncached copy');
  assert.equal(referenceRun('P2P-DMA-MAP-API', { p2pPath: 'allowlisted', cpu: 'intel' })!.outcome.kind, 'OK');
});

test('P2P-ACS-TAMPER: hiding the capability, and a private allowlist', () => {
  const hide = run('P2P-ACS-TAMPER', [{ op: 'acs_write', args: { clearsRedirect: true, hidesCap: true } }]);
  assertChain(hide, 'IOMMU_FAULT', [/zeroes acs_cap/, /kernel's \(wrong\) view: PCI_P2PDMA_MAP_BUS_ADDR/, /writes a received packet to 0xfb/, /no mapping for 0xfb/]);
  const list = run('P2P-ACS-TAMPER', [{ op: 'private_allowlist' }]);
  assertChain(list, 'UR_AER', [/own allowlist and skips pci_p2pdma_distance\(\), which would have said: not-supported/, /does not forward peer-to-peer/]);
  assert.equal(run('P2P-ACS-TAMPER', [{ op: 'private_allowlist' }], { cpu: 'amd-zen' }).outcome.kind, 'OK', 'where the kernel would agree');
  assert.equal(run('P2P-ACS-TAMPER', [{ op: 'acs_write' }], { iommu: 'off' }).outcome.kind, 'OK');
});

test('runs of real findings carry the user\'s code locations', async () => {
  const analyzer = await Analyzer.create(loadWasm());
  const root = path.resolve(__dirname, '../../../test/fixtures/rules');
  const cases: Array<[string, RegExp]> = [
    ['P2P-REF-ERRPATH/bad-mmap-ref-leak.c', /percpu_ref_tryget_live_rcu|return ret/],
    ['P2P-ALLOC-FREE-MISMATCH/bad-size.c', /pci_alloc_p2pmem|pci_free_p2pmem/],
    ['P2P-BUS-ADDR-VS-IOMMU/bad-descriptor-peer.c', /pci_p2pmem_virt_to_bus/],
    ['P2P-ACS-TAMPER/bad-clear-redirect.c', /pci_write_config_word/],
  ];
  for (const [file, re] of cases) {
    const text = fs.readFileSync(path.join(root, file), 'utf8');
    const f = analyzer.analyzeText(text).findings.find((x) => file.startsWith(x.rule));
    assert.ok(f, `a finding in ${file}`);
    const r = explain(f!)!;
    assert.notEqual(r.outcome.kind, 'OK', file);
    const located = r.steps.filter((s) => s.location);
    assert.ok(located.length >= 1, `${file}: located steps`);
    assert.ok(located.some((s) => re.test(text.slice(s.location!.start, s.location!.end))), `${file}: a step points at the code`);
  }
});
