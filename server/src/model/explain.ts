/**
 * From a finding to a run: each rule's scenario replays the events the rule
 * extracted from the user's code on the simulated machine, adding the
 * environment's part (another thread, memory pressure, the device's DMA),
 * until the machine reaches a terminal state. The outcome is whatever the
 * model computes; the scenarios only drive it.
 *
 * Every scenario runs in the default world first (chosen so the hazard can
 * show), then in the variants that matter for the rule; when a variant ends
 * differently, the run says so in its world notes.
 */
import type { CodeEvent, Finding, Span } from '../core/types';
import { DmaApi } from './dma';
import { type Attachment, DmaBuf, type SgTable } from './dmabuf';
import { AddressSpace } from './hmm';
import { memremapPages, MEMORY_TYPES, type MemoryType, Page, PAGE_SIZE } from './memory';
import { hex, Recorder, terminal } from './run';
import type { Run } from './types';
import { arg, ev, type Explainable, exportVramBuffer, loc, p2pTransfer, type RuleScenario } from './scenario';
import { dmabufScenarios } from './scenarios/dmabuf';
import { hmmScenarios } from './scenarios/hmm';
import { netmemScenarios } from './scenarios/netmem';
import { p2pdmaScenarios } from './scenarios/p2pdma';
import { pgmapScenarios } from './scenarios/pgmap';
import { buildWorld, type World, type WorldOptions } from './world';

export type { Explainable };

// ---------------------------------------------------------------- dma-buf

const core: Record<string, RuleScenario> = {
  'DMABUF-LOCKING': {
    world: { p2pPath: 'switch' },
    reference: [{ op: 'dma_buf_dynamic_attach' }, { op: 'dma_buf_map_attachment', args: { locked: false } }],
    run(r, w, f) {
      const dma = new DmaApi(r, w.phys, w.iommu, w.fabric);
      const buf = exportVramBuffer(r, w, dma);
      const locked = arg(f, 'locked') === true;
      const a = r.at(loc(f, 'dma_buf_attach', 'dma_buf_dynamic_attach'), () =>
        buf.attach('T1', w.nic, { dynamic: true, peer2peer: true, moveNotify: 'invalidates' }),
      );
      const call = f.events[f.events.length - 1];
      if (locked) {
        r.at(loc(f, 'dma_resv_lock'), () => buf.resv.lock(r, 'T1', 'the driver calls dma_resv_lock()'));
        r.at(call.span, () => {
          if (/unlocked|attach|detach/.test(call.op)) buf.resv.lock(r, 'T1', `${call.op}() calls dma_resv_lock() itself`);
          else buf.resv.lock(r, 'T1', `${call.op}() takes the lock`);
        });
        return;
      }
      // Not held: the exporter's eviction (under the lock) runs concurrently with the map.
      r.step('kernel', 'T2 (memory pressure) starts evicting the same buffer; T1 holds no lock, so nothing orders the two');
      const began = buf.evictBegin('T2') === 'started';
      let t: SgTable | undefined;
      r.at(call.span, () => {
        if (/pin/.test(call.op)) {
          buf.pin('T1', a);
          t = buf.map('T1', a, false);
        } else if (/move_notify/.test(call.op)) {
          buf.resv.assertHeld(r, 'T1', 'dma_buf_move_notify()');
          t = buf.map('T1', a, false);
        } else t = buf.map('T1', a, false);
      });
      if (/pin/.test(call.op)) {
        // The pin raced with the eviction that had already checked pin_count.
        r.step('driver', 'T2 checked pin_count before T1\'s unlocked pin landed, so it goes on moving the buffer', { pin_count: buf.pinCount });
      }
      if (began) buf.evictFinish('T2');
      if (t) buf.deviceAccess(a, t);
    },
  },

  'DMABUF-SG-PAGE': {
    world: { debug: false, p2pPath: 'switch' },
    variants: [
      { options: { debug: true }, label: 'CONFIG_DMABUF_DEBUG' },
      { options: { p2pPath: 'unsupported' }, label: 'no peer-to-peer path between the devices (the exporter falls back to system RAM pages)' },
    ],
    reference: [{ op: 'dma_buf_map_attachment_unlocked' }, { op: 'importer_cpu_access', args: { via: 'sg_page' } }],
    run(r, w, f) {
      const dma = new DmaApi(r, w.phys, w.iommu, w.fabric);
      const buf = exportVramBuffer(r, w, dma);
      const a = buf.attach('T1', w.nic, { dynamic: true, peer2peer: true, moveNotify: 'invalidates' });
      const t = r.at(loc(f, 'dma_buf_map_attachment', 'dma_buf_map_attachment_unlocked'), () => buf.mapUnlocked('T1', a));
      const e = t.entries[0];
      r.at(loc(f, 'importer_cpu_access'), () => {
        r.step('driver', `the importer reads sg_page() of the entry: ${e.page === 'NULL' ? 'NULL (a peer-to-peer entry has no struct page)' : e.page === 'mangled' ? 'a scrambled pointer' : `the exporter's page at pfn ${hex(e.pfn!)}`}`, { 'sg_page()': e.page });
        if (e.page === 'NULL') terminal('CPU_FAULT', 'the importer dereferences the page behind a NULL sg_page() (kmap/page_address/vmap): NULL pointer dereference, oops', 'the importing task');
        if (e.page === 'mangled') terminal('CPU_FAULT', 'the scrambled page pointer CONFIG_DMABUF_DEBUG put there is dereferenced: general protection fault', 'the importing task');
        r.step('driver', 'the importer keeps the exporter\'s page and maps it for the CPU (vmap or vm_insert_page), outside the exporter\'s knowledge');
      });
      buf.evict('T2');
      r.step('cpu', 'the importer reads the buffer through its own mapping of that page');
      if (buf.pagesFreed) terminal('UAF', `the page at ${hex(buf.spec.sysramPhys)} was freed by the exporter's swap-out; the importer's mapping now reads and writes memory that belongs to someone else`, 'the exporter\'s freed pages');
      if (buf.placement !== 'SYSRAM' || buf.reusedBy) terminal('SILENT_CORRUPTION', 'the exporter moved the buffer; the importer\'s page no longer holds its data', 'the importer\'s view of the buffer');
    },
  },

  'DMABUF-ERRPTR': {
    world: {},
    reference: [{ op: 'dma_buf_map_attachment_unlocked', args: { fails: true } }, { op: 'null_test' }, { op: 'use_errptr' }],
    run(r, w, f) {
      const src = ev(f, ...Object.keys(ERRPTR_ERRNO));
      const name = src?.op ?? 'dma_buf_map_attachment';
      const errno = ERRPTR_ERRNO[name] ?? -4;
      const value = BigInt.asUintN(64, BigInt(errno));
      r.at(src?.span, () => r.step('kernel', `${name}() fails (${errnoName(errno)}) and returns ERR_PTR(${errno}) = ${hex(value)}`, { value: hex(value) }));
      r.at(loc(f, 'null_test'), () => r.step('driver', `the NULL test sees a non-NULL pointer and goes on as if ${name}() had succeeded`));
      r.at(loc(f, 'use_errptr', 'teardown_with_errptr'), () => r.step('driver', `the driver dereferences ${hex(value)} (or hands it to the exporter, which walks it)`));
      terminal('CPU_FAULT', `${hex(value)} is not a valid kernel address: the dereference faults (general protection fault / oops)`, 'the calling task');
    },
  },

  'DMABUF-MOVE-NOTIFY': {
    world: { p2pPath: 'switch' },
    reference: [{ op: 'move_notify', args: { invalidates: false } }],
    run(r, w, f) {
      const dma = new DmaApi(r, w.phys, w.iommu, w.fabric);
      const buf = exportVramBuffer(r, w, dma);
      const attachEv = ev(f, 'dma_buf_dynamic_attach');
      if (attachEv && attachEv.args?.moveNotify === false) {
        r.at(attachEv.span, () => buf.attach('T1', w.nic, { dynamic: true, peer2peer: true, moveNotify: 'missing' }));
        return;
      }
      const callback = ev(f, 'move_notify');
      const inside = f.events.find((e) => e !== callback && e.op !== 'move_notify');
      const a = buf.attach('T1', w.nic, { dynamic: true, peer2peer: true, moveNotify: 'does nothing' });
      const t = buf.mapUnlocked('T1', a);
      if (inside && /put|wait|fence/.test(inside.op)) {
        buf.resv.lock(r, 'T2', 'T2 (memory pressure) takes the reservation lock to evict');
        r.at(callback?.span, () => r.step('kernel', `dma_buf_move_notify() calls the importer's move_notify with ${buf.resv.name} held`));
        r.at(inside.span, () => r.step('driver', `move_notify calls ${inside.op}()`));
        if (/wait/.test(inside.op)) terminal('HANG', `${inside.op}() waits without a bound for work that needs ${buf.resv.name}, which this thread holds: the eviction (and the shrinker behind it) stalls`, 'memory reclaim');
        terminal('DEADLOCK', `dropping the last reference from inside move_notify releases the buffer while the core still holds its reservation lock and walks its attachments`, 'T2');
      }
      r.at(callback?.span, () => buf.evict('T2'));
      buf.deviceAccess(a, t);
    },
  },

  'DMABUF-PIN-BALANCE': {
    world: { p2pPath: 'switch' },
    reference: [{ op: 'dma_buf_pin' }, { op: 'return_error' }],
    run(r, w, f) {
      const dma = new DmaApi(r, w.phys, w.iommu, w.fabric);
      const buf = exportVramBuffer(r, w, dma);
      const a = buf.attach('T1', w.nic, { dynamic: true, peer2peer: true, moveNotify: 'does nothing' });
      buf.resv.lock(r, 'T1');
      r.at(loc(f, 'dma_buf_pin'), () => buf.pin('T1', a));
      const twice = f.events.filter((e) => e.op === 'dma_buf_unpin').length > 1 || f.events.some((e) => e.op === 'release_unpins_again');
      if (twice) {
        const unpins = f.events.filter((e) => e.op === 'dma_buf_unpin');
        r.at(unpins[0]?.span, () => buf.unpin('T1', a));
        const again = f.events.find((e) => e.op === 'release_unpins_again') ?? unpins[1];
        r.at(again?.span, () => {
          r.step('driver', 'the release path unpins the same attachment again');
          buf.unpin('T1', a);
        });
        buf.resv.unlock(r, 'T1');
        const t = buf.mapUnlocked('T1', a);
        buf.evict('T2');
        buf.deviceAccess(a, t);
        return;
      }
      r.at(loc(f, 'return_error', 'never_unpinned'), () => r.step('driver', 'the function returns without dma_buf_unpin(); nothing else will unpin this attachment'));
      buf.resv.unlock(r, 'T1');
      r.step('driver', 'the importer detaches and forgets the buffer');
      for (let i = 0; i < 2; i++) if (buf.evict('T2', 'a new buffer object') === 'blocked') break;
      terminal('LEAK', `the buffer stays pinned in ${buf.placement} forever (pin_count ${buf.pinCount}): the exporter can never move or free it, and ${buf.placement === 'VRAM' ? 'VRAM' : 'memory'} fills up with unmovable buffers`, `${buf.placement} of ${w.gpu.name}`);
    },
  },

  // ------------------------------------------------------------ pgmap / hmm

  'PGMAP-PRIVATE-AS-P2P': {
    world: { p2pPath: 'unsupported', iommu: 'translated' },
    variants: [
      { options: { p2pPath: 'switch', iommu: 'off' }, label: 'GPU and NIC behind one PCIe switch, IOMMU off' },
      { options: { p2pPath: 'unsupported', iommu: 'off' }, label: 'IOMMU off' },
    ],
    reference: [{ op: 'pgmap_setup', args: { pgmapType: 'PRIVATE', rangeFrom: 'bar' } }, { op: 'memremap_pages' }, { op: 'dma_map_page', args: { by: 'peer' } }],
    run(r, w, f) {
      const dma = new DmaApi(r, w.phys, w.iommu, w.fabric);
      const pgmap = r.at(loc(f, 'pgmap_setup', 'memremap_pages'), () =>
        memremapPages(r, w.phys, {
          type: 'PRIVATE',
          rangeStart: w.gpuVram.start,
          rangeSize: w.gpuVram.size,
          nrRange: 1,
          ops: { migrateToRam: true, pageFree: true },
          owner: w.gpu.name,
        }),
      );
      const page = pgmap.pages[0];
      r.step('driver', `the driver hands ${page.describe()} to ${w.nic.name} (page_pool / an sg list) as if it were peer memory`);
      const addr = dma.mapPage(w.nic, page);
      r.step('kernel', 'no peer-to-peer check runs: to the DMA API this is an ordinary page at page_to_phys()');
      dma.deviceWrite(w.nic, addr, 'a received packet');
      if (w.gpuVram.bar!.busAddress !== w.gpuVram.start && w.nic.iommu !== 'translated')
        terminal('SILENT_CORRUPTION', `the NIC used the CPU physical address ${hex(page.phys)}, but on this bus the BAR answers at ${hex(w.gpuVram.bar!.busAddress)}: the packet lands wherever ${hex(page.phys)} decodes`, 'whatever decodes that bus address');
      r.step('cpu', 'later the CPU touches the user mapping of that page: the core sees a DEVICE_PRIVATE swap entry and calls migrate_to_ram() for memory that was never migrated');
      terminal('SILENT_CORRUPTION', 'the driver\'s migrate_to_ram() copies "device memory" that peers wrote behind its back into a fresh page: the process sees data no one migrated', 'the process\'s memory');
    },
  },

  'PGMAP-INIT-FIELDS': {
    world: {},
    reference: [{ op: 'pgmap_setup', args: { pgmapType: 'PRIVATE', missing: 'owner' } }, { op: 'memremap_pages' }],
    run(r, w, f) {
      const type = String(arg(f, 'pgmapType') ?? 'PRIVATE');
      const missing = String(arg(f, 'missing') ?? '').split(',').filter(Boolean);
      const has = (m: string) => !missing.some((x) => x.startsWith(m));
      const region = w.phys.requestFree(64 << 20, 'the driver\'s device memory');
      r.at(loc(f, 'pgmap_setup'), () => r.step('driver', `the driver fills a dev_pagemap: type ${type === 'NONE' ? '0 (unset)' : 'MEMORY_DEVICE_' + type}${missing.length ? `, without ${missing.join(', ')}` : ''}`));
      r.at(loc(f, 'memremap_pages'), () =>
        memremapPages(r, w.phys, {
          type: type === 'NONE' ? undefined : (type as MemoryType),
          rangeStart: region.start,
          rangeSize: region.size,
          nrRange: has('nr_range') ? 1 : 0,
          ops: has('ops') ? { migrateToRam: !missing.some((m) => /migrate_to_ram/.test(m)), pageFree: !missing.some((m) => /page_free/.test(m)) } : undefined,
          owner: has('owner') ? 'drv' : undefined,
        }),
      );
    },
  },

  'PGMAP-PRIVATE-DMA-MAP': {
    world: { iommu: 'translated' },
    variants: [{ options: { iommu: 'off' }, label: 'IOMMU off' }],
    reference: [{ op: 'device_private_page', args: { source: 'a source page of a migration to RAM' } }, { op: 'dma_map_page' }],
    run(r, w, f) {
      const dma = new DmaApi(r, w.phys, w.iommu, w.fabric);
      const region = w.phys.requestFree(256 << 20, `${w.gpu.name}'s device-private VRAM`);
      r.step('driver', `the driver got ${hex(region.start)}+${hex(region.size)} from request_free_mem_region(): physical addresses nothing decodes, to name its VRAM pages`);
      const pgmap = memremapPages(r, w.phys, { type: 'PRIVATE', rangeStart: region.start, rangeSize: region.size, nrRange: 1, ops: { migrateToRam: true, pageFree: true }, owner: w.gpu.name });
      const page = pgmap.pages[1];
      r.at(loc(f, 'device_private_page'), () => r.step('driver', `the code holds ${page.describe()} (${String(arg(f, 'source') ?? 'a device-private page')})`));
      const addr = r.at(loc(f, 'dma_map_page'), () => dma.mapPage(w.gpu, page));
      dma.deviceWrite(w.gpu, addr, 'the page\'s contents');
    },
  },

  'MIG-FAULT-PAGE': {
    world: {},
    reference: [{ op: 'cpu_fault_device_private' }, { op: 'migrate_to_ram' }, { op: 'migrate_vma_setup', args: { faultPage: false } }],
    run(r, w, f) {
      const region = w.phys.requestFree(64 << 20, `${w.gpu.name}'s device-private VRAM`);
      const pgmap = memremapPages(r, w.phys, { type: 'PRIVATE', rangeStart: region.start, rangeSize: region.size, nrRange: 1, ops: { migrateToRam: true, pageFree: true }, owner: 'drv' });
      const mm = new AddressSpace(r);
      const va = 0x7f00_1234_5000;
      const page = pgmap.pages[0];
      mm.ptes.set(va, { kind: 'device-private', page });
      r.step('driver', `earlier the driver migrated the page at ${hex(va)} to VRAM: the CPU PTE is now a device-private swap entry`, { pte: 'DEVICE_PRIVATE_SWP' });
      const withFaultPage = arg(f, 'faultPage') === true;
      mm.cpuAccess(va, (vmfPage: Page) => {
        r.at(loc(f, 'migrate_to_ram'), () => r.step('driver', 'the driver\'s migrate_to_ram() sets up struct migrate_vma for the faulting address'));
        r.at(loc(f, 'migrate_vma_setup'), () => {
          const res = mm.migrateVmaSetup({ start: va, end: va + PAGE_SIZE, selectDevicePrivate: true, pgmapOwner: 'drv', faultPage: withFaultPage ? vmfPage : undefined });
          if (res.cpages) {
            const dst = new Page(0x1_0000);
            r.step('driver', 'the driver copies the page back to system RAM and finalizes the migration');
            mm.ptes.set(va, { kind: 'present', page: dst });
          } else {
            r.step('driver', 'cpages is 0: nothing to copy; migrate_vma_pages()/finalize() do nothing and the handler returns 0');
          }
        });
      });
    },
  },

  // ------------------------------------------------------------ p2pdma

  'P2P-DISTANCE-UNCHECKED': {
    world: { p2pPath: 'unsupported', iommu: 'off' },
    variants: [
      { options: { p2pPath: 'switch' }, label: 'provider and client behind one PCIe switch' },
      { options: { p2pPath: 'allowlisted' }, label: 'a host bridge on the kernel\'s allowlist' },
      { options: { cpu: 'amd-zen' }, label: 'an AMD Zen CPU' },
      { options: { iommu: 'translated' }, label: 'the IOMMU translating for the client' },
    ],
    reference: [{ op: 'pci_alloc_p2pmem' }, { op: 'hand_to_client', args: { checked: false } }, { op: 'client_dma_to_provider' }],
    run(r, w, f) {
      p2pTransfer(r, w, f, { checked: false });
    },
  },

  'P2P-DISTANCE-BOOL': {
    world: { p2pPath: 'unsupported', iommu: 'off' },
    variants: [{ options: { p2pPath: 'switch' }, label: 'provider and client behind one PCIe switch' }],
    reference: [{ op: 'pci_p2pdma_distance' }, { op: 'distance_as_bool' }],
    run(r, w, f) {
      const route = w.fabric.route(w.nic.bdf, w.nvme.bdf);
      const d = route.mapType === 'not-supported' ? -1 : w.fabric.distance(w.nic.bdf, w.nvme.bdf);
      r.at(loc(f, 'pci_p2pdma_distance', 'pci_p2pdma_distance_many'), () =>
        r.step('kernel', `pci_p2pdma_distance(${w.nvme.name}, ${w.nic.name}) returns ${d} (${route.reason})`, { distance: d }),
      );
      r.at(loc(f, 'distance_as_bool'), () =>
        r.step('driver', d === -1 ? 'the boolean test reads -1 as "true": the unsupported path is accepted' : d === 0 ? 'the boolean test reads 0 as "false": the best path is rejected' : `the boolean test reads ${d} as "true" and happens to be right on this machine`),
      );
      if (d === -1) p2pTransfer(r, w, f, { checked: true });
    },
  },

  'P2P-SECOND-ALLOCATOR': {
    world: {},
    reference: [{ op: 'pci_p2pdma_add_resource' }, { op: 'driver_allocator_init' }],
    run(r, w, f) {
      const bar = w.gpuVram;
      const b = `BAR${bar.bar!.index}`;
      const off = 0;
      r.at(loc(f, 'driver_allocator_init'), () => r.step('driver', `the GPU driver manages ${b} (${hex(bar.start)}+${hex(bar.size)}) with its own allocator`, { 'driver allocator': `${b}, all free` }));
      r.at(loc(f, 'pci_p2pdma_add_resource'), () => r.step('kernel', 'pci_p2pdma_add_resource() puts the same BAR into the p2pdma gen_pool for pci_alloc_p2pmem() and the sysfs allocator', { 'p2pdma gen_pool': `${b}, all free` }));
      r.step('driver', `the GPU driver allocates a buffer object at ${b}+${hex(off)} for a render target`, { 'driver allocator': `${b}+${hex(off)} used by a BO` });
      r.step('kernel', `a p2pmem user (nvmet) calls pci_alloc_p2pmem(): the gen_pool, which knows nothing of the driver's allocator, also returns ${b}+${hex(off)}`, { 'p2pdma gen_pool': `${b}+${hex(off)} used by nvmet` });
      const dma = new DmaApi(r, w.phys, w.iommu, w.fabric);
      r.topology = w.fabric.picture(w.nvme.bdf, w.gpu.bdf);
      const addr = dma.mapPeer(w.nvme, bar, off, 'nvmet maps the p2p buffer for the NVMe drive');
      const landed = dma.deviceWrite(w.nvme, addr, 'a 4 KiB read from disk');
      terminal('SILENT_CORRUPTION', `the disk data lands in ${landed}, inside the GPU's render target: two allocators handed out the same memory`, 'the GPU buffer object');
    },
  },

  'P2P-CPU-MEMCPY': {
    world: { cpu: 'arm64' },
    variants: [{ options: { cpu: 'intel' }, label: 'x86' }],
    reference: [{ op: 'pci_alloc_p2pmem' }, { op: 'cpu_memop', args: { op: 'memcpy' } }],
    run(r, w, f) {
      const kind = MEMORY_TYPES.P2PDMA.kernelMapping;
      r.at(loc(f, 'pci_alloc_p2pmem'), () => r.step('kernel', `pci_alloc_p2pmem() returns a kernel address inside ${w.nvme.name}'s CMB BAR, mapped ${kind === 'UC_MMIO' ? 'uncached as device memory' : kind}`, { kva: 'MMIO (uncached)' }));
      const op = String(arg(f, 'op') ?? 'memcpy');
      r.at(loc(f, 'cpu_memop'), () => {
        if (w.cpu === 'arm64') {
          r.step('cpu', `${op}() uses unaligned loads/stores and DC ZVA (cache-line zeroing), which Device memory does not allow`);
          terminal('CPU_FAULT', `the CPU raises an alignment fault (or an SError from the bus) on the MMIO mapping: kernel oops in ${op}()`, 'the calling task');
        }
        r.step('cpu', `${op}() on x86 issues wide stores to an uncached mapping: it works, slowly, as long as the BAR accepts every access size`);
      });
    },
  },
};

const ERRPTR_ERRNO: Record<string, number> = {
  dma_buf_get: -9,
  dma_buf_export: -12,
  dma_buf_attach: -12,
  dma_buf_dynamic_attach: -22,
  dma_buf_map_attachment: -4,
  dma_buf_map_attachment_unlocked: -4,
};

function errnoName(n: number): string {
  return ({ [-4]: '-EINTR', [-9]: '-EBADF', [-12]: '-ENOMEM', [-22]: '-EINVAL' } as Record<number, string>)[n] ?? String(n);
}

// ---------------------------------------------------------------- entry points

/** The first thirteen rules' scenarios above, and each family's further ones. */
const scenarios: Record<string, RuleScenario> = {
  ...core,
  ...pgmapScenarios,
  ...hmmScenarios,
  ...p2pdmaScenarios,
  ...dmabufScenarios,
  ...netmemScenarios,
};

export function hasScenario(rule: string): boolean {
  return rule in scenarios;
}

export function scenarioRules(): string[] {
  return Object.keys(scenarios);
}

/** Runs a scenario in one world. The world's sentence is read after the run: it places the devices the run routed between. */
function runIn(s: RuleScenario, options: WorldOptions, f: Explainable): { run: Run; world: World } {
  const world = buildWorld(options);
  const run = Recorder.run(f.rule, '', (r) => s.run(r, world, f));
  run.world = world.summary;
  return { run, world };
}

/**
 * Runs a finding's scenario in the default world (or `override`) and its
 * variants. With a user's topology in `override`, the run happens there, and
 * the notes say how it ends in the rule's own worlds when that differs.
 */
export function explain(f: Explainable, override?: WorldOptions): Run | undefined {
  const s = scenarios[f.rule];
  if (!s) return undefined;
  const { run, world } = runIn(s, { ...s.world, ...override }, f);
  if (!override) {
    for (const v of s.variants ?? []) {
      const other = runIn(s, { ...s.world, ...v.options }, f).run;
      if (other.outcome.kind !== run.outcome.kind) {
        (run.worldNotes ??= []).push(`with ${v.label}: ${other.outcome.kind === 'OK' ? 'it works' : other.outcome.kind}${other.outcome.kind === 'OK' ? '' : ` (${other.outcome.summary})`}`);
      }
    }
  } else if (override.topology) {
    noteTheRuleWorlds(s, f, run, world);
  }
  return run;
}

/**
 * A run on the user's topology, compared with the rule's default world and
 * its variants (the model's own machine): where they end differently, the
 * notes say what on the user's machine decides it and what the others give.
 * A run that ends OK there keeps its outcome (that is what this machine
 * does), and `failsIn` names a world where the same code fails.
 */
function noteTheRuleWorlds(s: RuleScenario, f: Explainable, run: Run, world: World): void {
  const others = [
    { label: "the rule's default world", run: runIn(s, s.world, f).run, describe: true },
    ...(s.variants ?? []).map((v) => ({ label: `the rule's default world with ${v.label}`, run: runIn(s, { ...s.world, ...v.options }, f).run, describe: false })),
  ];
  if (run.outcome.kind === 'OK') run.outcome = { ...run.outcome, summary: 'the run finished without reaching a failure on your topology' };
  // One world per outcome the user's run does not reach: the default world first, then the variants in order.
  const differ = others.filter((o, i) => o.run.outcome.kind !== run.outcome.kind && others.findIndex((x) => x.run.outcome.kind === o.run.outcome.kind) === i);
  if (differ.length === 0) return;
  const why = world.where ? `${world.where}; ${world.settings}` : world.settings;
  const notes = [`on your topology (${why}), this run ${run.outcome.kind === 'OK' ? 'does not fail' : `ends in ${run.outcome.kind}`}`];
  for (const d of differ) {
    const o = d.run.outcome;
    notes.push(`in ${d.label}${d.describe ? ` (${d.run.world})` : ''}: ${o.kind === 'OK' ? 'it works' : `${o.kind} (${o.summary})`}`);
  }
  run.worldNotes = [...notes, ...(run.worldNotes ?? [])];
  const failing = run.outcome.kind === 'OK' ? differ.find((d) => d.run.outcome.kind !== 'OK') : undefined;
  if (failing) run.failsIn = { world: failing.label, outcome: { ...failing.run.outcome } };
}

/** A finding of the rule's reference scenario, for `dmalens explain RULE`. */
export function referenceRun(rule: string, override?: WorldOptions): Run | undefined {
  const s = scenarios[rule];
  if (!s) return undefined;
  return explain({ rule, events: s.reference, span: { start: 0, end: 0 } }, override);
}

export type { Attachment, Finding };
