/**
 * The hmm family's model runs: each rule's reference scenario reaches the
 * catalog's terminal through the key steps, the findings of the rule
 * fixtures replay to the outcome their events describe, and the world (or
 * the finding's events) changes the run where the kernel behaves
 * differently.
 */
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Analyzer } from '../../src/core/analyzer';
import { explain, referenceRun } from '../../src/model/explain';
import type { Run } from '../../src/model/types';
import { loadWasm } from '../../src/node/assets';

const steps = (run: Run) => run.steps.map((s) => `[${s.actor}] ${s.action}`).join('\n');

function assertChain(run: Run | undefined, outcome: string, keys: RegExp[]): void {
  assert.ok(run, 'a run');
  assert.equal(run.outcome.kind, outcome, `${run.outcome.summary}\n${steps(run)}`);
  let at = 0;
  for (const k of keys) {
    const idx = run.steps.findIndex((s, i) => i >= at && k.test(s.action));
    assert.ok(idx >= 0, `step ${k} (after step ${at}) missing from\n${steps(run)}`);
    at = idx + 1;
  }
}

const CHAINS: Record<string, { outcome: string; keys: RegExp[] }> = {
  'MIG-SELECT-OWNER': { outcome: 'SILENT_CORRUPTION', keys: [/args->flags = 0/, /skips the system page .* MIGRATE_VMA_SELECT_SYSTEM is not in args->flags/, /returns 0 with cpages = 0/, /points the GPU page table at the VRAM pages/, /GPU reads .*stale VRAM/] },
  'MIG-SEQUENCE': { outcome: 'HANG', keys: [/locks the page .* migration entry/, /cpages = 2/, /returns without migrate_vma_pages\(\)\/migrate_vma_finalize\(\)/, /sleeps in migration_entry_wait/, /sleeps forever/] },
  'HMM-FAULT-PROTOCOL': { outcome: 'SILENT_CORRUPTION', keys: [/mmu_interval_read_begin\(\) returns sequence 2/, /maps pfn 0x\w+: HMM_PFN_VALID/, /does not call mmu_interval_read_retry/, /munmap\(\) invalidates/, /frees pfn/, /hands pfn .* to another process/, /writes pfn .* into the device page table/, /belongs to another process/] },
  'HMM-DEV-PRIVATE-OWNER': { outcome: 'LIVELOCK', keys: [/migrated the hot page .* into its VRAM/, /is not range->dev_private_owner \(NULL\)/, /migrate_to_ram\(\) copies/, /GPU maps the system RAM copy/, /migrates it to VRAM again/, /is not range->dev_private_owner/, /migrations for one page/] },
  'GUP-DEVICE-MEMORY': { outcome: 'WARN', keys: [/is_valid_gup_args\(\): FOLL_LONGTERM with FOLL_PCI_P2PDMA trips WARN_ON_ONCE/] },
  'GUP-P2PDMA-CPU-ACCESS': { outcome: 'CPU_FAULT', keys: [/MEMORY_DEVICE_P2PDMA mapped uncached/, /p2pmem\/allocate/, /pins a MEMORY_DEVICE_P2PDMA page/, /uncached MMIO/, /DC ZVA/] },
  'GUP-FOLLOW-PFN': { outcome: 'SILENT_CORRUPTION', keys: [/places the application's buffer object at BAR2/, /VM_IO\|VM_PFNMAP/, /follow_pfnmap_start\(\) resolves .* takes no reference/, /programs the NIC's DMA engine/, /munmap\(\)s the buffer/, /gives BAR2\+0x400000 to another process/, /switch routes the TLP straight to the GPU/] },
};

for (const [rule, chain] of Object.entries(CHAINS)) {
  test(`${rule}: the reference run reaches ${chain.outcome} through the catalog's chain`, () => {
    assertChain(referenceRun(rule), chain.outcome, chain.keys);
  });
}

const ex = (rule: string, events: Array<{ op: string; args?: Record<string, string | number | boolean> }>) => explain({ rule, events, span: { start: 0, end: 0 } });

test('MIG-SELECT-OWNER: a missing owner livelocks the fault path and hangs eviction', () => {
  assertChain(ex('MIG-SELECT-OWNER', [{ op: 'migrate_vma_setup', args: { flags: 'DEVICE_PRIVATE', owner: 'missing', direction: 'to-ram' } }]), 'LIVELOCK', [
    /pgmap_owner = NULL/,
    /returns 0 with cpages = 0/,
    /CPU retries/,
  ]);
  assertChain(ex('MIG-SELECT-OWNER', [{ op: 'migrate_vma_setup', args: { flags: 'DEVICE_PRIVATE', owner: 'mismatch', direction: 'evict' } }]), 'HANG', [
    /unbinds and evicts/,
    /cpages = 0/,
    /nothing was collected/,
    /memunmap_pages\(\) drops the pgmap's base reference and waits for the 1 page/,
  ]);
});

test('MIG-SEQUENCE: no mmap lock is a use-after-free; an unlocked destination page stays locked for good', () => {
  assertChain(ex('MIG-SEQUENCE', [{ op: 'migrate_vma_setup', args: { mmapLocked: false } }]), 'UAF', [/holds no mmap lock/, /T2 calls munmap.*gets it for write at once/, /frees the VMA/, /walks the VMA and page tables .* which munmap\(\) freed/]);
  assertChain(ex('MIG-SEQUENCE', [{ op: 'dst_page_alloc' }, { op: 'dst_store', args: { locked: false } }, { op: 'migrate_vma_finalize' }]), 'HANG', [
    /allocates a system page .* nothing locks it/,
    /folio_unlock\(\) on the destination page .* sets the lock bit instead/,
    /kswapd needs the page .* locked/,
    /PG_locked .* waits forever/,
  ]);
});

test('HMM-FAULT-PROTOCOL: each missing piece of the protocol has its own outcome', () => {
  const run = (missing: string, extra: Record<string, boolean> = {}) => ex('HMM-FAULT-PROTOCOL', [{ op: 'hmm_range_fault', args: { missing, ...extra } }]);
  assertChain(run('notifier'), 'CPU_FAULT', [/range->notifier is NULL/]);
  assertChain(run('seq'), 'LIVELOCK', [/never read from mmu_interval_read_begin/, /check_retry\(notifier, 0\) is true/, /tries again/, /returns -EBUSY on every attempt/]);
  assert.equal(ex('HMM-FAULT-PROTOCOL', [{ op: 'no_read_begin', args: { loop: false } }, { op: 'hmm_range_fault', args: { missing: 'seq' } }])!.outcome.kind, 'IO_ERROR');
  assertChain(run('stale-seq'), 'LIVELOCK', [/returns sequence 2/, /sets the sequence to 4/, /check_retry\(notifier, 2\) is true/, /without reading the sequence again/, /stale sequence 2/]);
  assertChain(run('mmap-lock'), 'UAF', [/without holding the mmap lock/, /mmap_assert_locked\(\) fails/, /walk has started when T2 calls munmap/, /gets it for write at once/, /freed under it/, /use-after-free/]);
  assertChain(run('result'), 'SILENT_CORRUPTION', [/still holds pfn/, /returns -EBUSY/, /ignores the result/, /belongs to another process/]);
  assertChain(run('update-lock'), 'SILENT_CORRUPTION', [/read_retry\(notifier, 2\) returns false/, /does not hold the lock invalidate\(\) takes/, /to another process/]);
  assertChain(run('busy-swallowed'), 'IO_ERROR', [/harmless change/, /returns -EBUSY/, /hard error/]);
  assertChain(run('valid-check'), 'SILENT_CORRUPTION', [/its entry is 0 \(not HMM_PFN_VALID\)/, /hmm_pfn_to_page\(0\)/, /belongs to the kernel/]);
});

test('HMM-DEV-PRIVATE-OWNER: with the right owner the GPU maps its own VRAM', () => {
  const r = referenceRun('HMM-DEV-PRIVATE-OWNER')!;
  assert.ok(r.steps.filter((s) => /migrate_to_ram\(\) copies/.test(s.action)).length >= 3, steps(r));
  assertChain(ex('HMM-DEV-PRIVATE-OWNER', [{ op: 'hmm_range_fault', args: { owner: 'mismatch' } }]), 'LIVELOCK', [/is not range->dev_private_owner \(another pointer\)/]);
});

test('GUP-DEVICE-MEMORY: a long-term pin of a BAR mapping fails with -EFAULT', () => {
  assertChain(ex('GUP-DEVICE-MEMORY', [{ op: 'gup', args: { flags: 'FOLL_LONGTERM', target: 'bar' } }]), 'IO_ERROR', [/VM_IO\|VM_PFNMAP/, /check_vma_flags\(\).*-EFAULT/, /never works/]);
});

test('GUP-P2PDMA-CPU-ACCESS: arm64 faults, x86 copies slowly; an unchecked queue DMAs to an unroutable BAR', () => {
  const ref = referenceRun('GUP-P2PDMA-CPU-ACCESS')!;
  assert.ok(ref.worldNotes?.some((n) => /x86: it works/.test(n)), String(ref.worldNotes));
  assert.equal(referenceRun('GUP-P2PDMA-CPU-ACCESS', { cpu: 'intel' })!.outcome.kind, 'OK');
  const bio = ex('GUP-P2PDMA-CPU-ACCESS', [{ op: 'gup', args: { flags: 'ITER_ALLOW_P2PDMA' } }, { op: 'submit_bio', args: { queueChecked: false } }]);
  assertChain(bio, 'UR_AER', [/pins a MEMORY_DEVICE_P2PDMA page/, /never said it can reach peer memory/, /dma_map_page\(the NVMe drive/, /does not forward peer-to-peer/]);
  assert.ok(bio!.topology);
});

test('GUP-FOLLOW-PFN: behind a translating IOMMU the raw address faults instead', () => {
  const ref = referenceRun('GUP-FOLLOW-PFN')!;
  assert.ok(ref.worldNotes?.some((n) => /translating IOMMU: IOMMU_FAULT/.test(n)), String(ref.worldNotes));
  const mapped = ex('GUP-FOLLOW-PFN', [{ op: 'follow_pfn' }, { op: 'device_program', args: { sink: 'dma_map_resource' } }]);
  assert.equal(mapped!.outcome.kind, 'SILENT_CORRUPTION');
  assert.equal(explain({ rule: 'GUP-FOLLOW-PFN', events: [{ op: 'follow_pfn' }, { op: 'device_program', args: { sink: 'dma_map_resource' } }], span: { start: 0, end: 0 } }, { iommu: 'translated', p2pPath: 'unsupported' })!.outcome.kind, 'UR_AER');
});

test('every hmm-family finding of the fixtures replays, located in the user\'s code, to a failure', async () => {
  const analyzer = await Analyzer.create(loadWasm());
  const root = path.resolve(__dirname, '../../../test/fixtures/rules');
  const rules = ['MIG-SELECT-OWNER', 'MIG-SEQUENCE', 'HMM-FAULT-PROTOCOL', 'HMM-DEV-PRIVATE-OWNER', 'GUP-DEVICE-MEMORY', 'GUP-P2PDMA-CPU-ACCESS', 'GUP-FOLLOW-PFN'];
  let runs = 0;
  for (const rule of rules) {
    for (const name of fs.readdirSync(path.join(root, rule)).filter((n) => n.startsWith('bad') && n.endsWith('.c'))) {
      const text = fs.readFileSync(path.join(root, rule, name), 'utf8');
      for (const f of analyzer.analyzeText(text).findings.filter((x) => x.rule === rule)) {
        const run = explain(f)!;
        assert.ok(run, `${rule}/${name}: no run`);
        assert.notEqual(run.outcome.kind, 'OK', `${rule}/${name} ran to OK\n${steps(run)}`);
        assert.ok(run.steps.some((s) => s.location && s.location.start >= f.span.start - 2000 && s.location.end <= f.span.end + 2000), `${rule}/${name}: no step points into the user's code\n${steps(run)}`);
        runs++;
      }
    }
  }
  assert.ok(runs >= 21, `${runs} runs`);
});
