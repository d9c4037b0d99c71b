/**
 * Scenarios of the hmm family's rules beyond the first thirteen (see explain.ts
 * for those). Each replays a finding's events on the simulated machine.
 */
import { DmaApi } from '../dma';
import {
  AddressSpace,
  BarAllocator,
  EBUSY,
  type Foll,
  type HmmRange,
  IntervalNotifier,
  type Migration,
  Mm,
  pageData,
  pageOwner,
  setPageData,
  setPageOwner,
  type Vma,
} from '../hmm';
import { memremapPages, type Page, PAGE_SIZE } from '../memory';
import { hex, type Recorder, terminal } from '../run';
import { arg, ev, loc, type RuleScenario } from '../scenario';
import type { World } from '../world';

const VA = 0x7f12_3400_0000;

/** A process with one anonymous VMA of `pages` pages filled with its data, and the driver's device-private VRAM. */
function setup(r: Recorder, w: World, pages = 2, withVram = true): { mm: Mm; vram: Page[] } {
  const as = new AddressSpace(r);
  const mm = new Mm(r, as);
  mm.vmas.push({ start: VA, end: VA + 16 * PAGE_SIZE });
  for (let i = 0; i < pages; i++) {
    const p = mm.allocPage('the process', `the process's data #${i}`);
    as.ptes.set(VA + i * PAGE_SIZE, { kind: 'present', page: p });
  }
  if (!withVram) return { mm, vram: [] };
  const region = w.phys.requestFree(64 << 20, `${w.gpu.name}'s device-private VRAM`);
  const pgmap = memremapPages(r, w.phys, { type: 'PRIVATE', rangeStart: region.start, rangeSize: region.size, nrRange: 1, ops: { migrateToRam: true, pageFree: true }, owner: 'drv' });
  for (const p of pgmap.pages) setPageData(p, 'stale VRAM contents of a freed buffer');
  return { mm, vram: pgmap.pages };
}

/** The driver's migrate_to_ram(): copies a device-private page into a fresh RAM page. */
function copyBack(r: Recorder, mm: Mm, counter?: { n: number }) {
  return (page: Page, va: number): Page => {
    const np = mm.allocPage('the process', pageData(page));
    if (counter) counter.n++;
    r.step('driver', `migrate_to_ram() copies the page at ${hex(va)} from VRAM into system RAM (pfn ${hex(np.pfn)})`, { [`pte ${hex(va)}`]: 'present (RAM)' });
    return np;
  };
}

/** A device write through its page table: who owns the page it lands in. */
function deviceWrite(r: Recorder, mm: Mm, va: number, what: string): void {
  const p = mm.devPt.get(va);
  if (!p) {
    r.step('device', `the device faults on ${hex(va)} (not mapped) and asks the driver again`);
    return;
  }
  r.step('device', `the device writes ${what} through its page table to pfn ${hex(p.pfn)}`, { [`pfn ${hex(p.pfn)}`]: pageOwner(p) });
  if (pageOwner(p) !== 'the process') terminal('SILENT_CORRUPTION', `the write lands in pfn ${hex(p.pfn)}, which now belongs to ${pageOwner(p)}`, `${pageOwner(p)}'s memory`);
}

// ---------------------------------------------------------------- MIG-SELECT-OWNER

const migSelectOwner: RuleScenario = {
  world: {},
  reference: [{ op: 'migrate_vma_setup', args: { flags: 'NONE', direction: 'to-device' } }],
  run(r, w, f) {
    const flags = String(arg(f, 'flags') ?? 'NONE');
    const owner = String(arg(f, 'owner') ?? 'ok');
    const dir = String(arg(f, 'direction') ?? 'to-device');
    const at = loc(f, 'migrate_vma_setup');
    const { mm, vram } = setup(r, w);
    if (flags === 'NONE' && dir === 'to-device') {
      mm.lock.readLock(r, 'T1');
      const m = r.at(at, () => {
        r.step('driver', `the driver asks migrate_vma_setup() to move ${hex(VA)}-${hex(VA + 2 * PAGE_SIZE)} to VRAM with args->flags = 0`);
        return mm.migrateSetup('T1', VA, VA + 2 * PAGE_SIZE, {});
      });
      r.step('driver', `migrate_vma_setup() returned 0, so the driver takes the range as migrated and points the GPU page table at the VRAM pages it allocated for it (nothing was copied into them: cpages = ${m.collected.length})`);
      for (let i = 0; i < 2; i++) mm.devPt.set(VA + i * PAGE_SIZE, vram[i]);
      mm.lock.readUnlock(r, 'T1');
      const cpu = mm.as.ptes.get(VA);
      const gpu = mm.devPt.get(VA)!;
      r.step('device', `the GPU reads ${hex(VA)}: "${pageData(gpu)}"; the CPU sees "${cpu?.kind === 'present' ? pageData(cpu.page) : '?'}" at the same address`);
      if (cpu?.kind === 'present' && pageData(cpu.page) !== pageData(gpu)) terminal('SILENT_CORRUPTION', 'the GPU computes on stale VRAM while the process\'s data stays in system RAM: the two views of the buffer disagree, silently', 'the process\'s buffer as the GPU sees it');
      return;
    }
    // Device pages that the walk should select: one migrated to VRAM earlier.
    const page = vram[0];
    page.refcount = 1;
    mm.as.ptes.set(VA, { kind: 'device-private', page });
    r.step('driver', `earlier the driver migrated ${hex(VA)} to VRAM: the CPU PTE is a device-private entry (pgmap owner "drv")`, { pte: 'DEVICE_PRIVATE_SWP' });
    const ownerArg = owner === 'missing' ? 'NULL' : owner === 'mismatch' ? 'another pointer' : 'drv';
    if (dir === 'to-ram' || flags === 'NONE') {
      mm.as.cpuAccess(VA, (vmfPage) => {
        r.at(at, () => {
          r.step('driver', `migrate_to_ram() sets up the migration with ${flags === 'NONE' ? 'flags = 0' : `MIGRATE_VMA_SELECT_${flags}`} and pgmap_owner = ${ownerArg}`);
          const res = mm.as.migrateVmaSetup({ start: VA, end: VA + PAGE_SIZE, selectDevicePrivate: flags !== 'NONE', pgmapOwner: ownerArg, faultPage: vmfPage });
          if (res.cpages) mm.as.ptes.set(VA, { kind: 'present', page: mm.allocPage('the process', pageData(vmfPage)) });
          else r.step('driver', 'cpages is 0: nothing to copy, and the handler returns 0');
        });
      });
      return;
    }
    // Eviction at unbind: the driver must get every device page back before memunmap_pages().
    r.step('driver', 'the driver unbinds and evicts its VRAM: for each process range it migrates device-private pages back to RAM');
    const m = r.at(at, () => mm.migrateSetup('T1', VA, VA + PAGE_SIZE, { devicePrivate: true, owner: ownerArg }));
    if (!m.collected.length) r.step('driver', 'nothing was collected, so nothing is copied; the device page stays in use by the process');
    const live = vram.filter((p) => p.refcount > 0).length;
    r.step('kernel', `memunmap_pages() drops the pgmap's base reference and waits for the ${live} page reference(s) still held`, { 'pgmap pages in use': live });
    if (live) terminal('HANG', 'memunmap_pages() waits in wait_for_completion(&pgmap->done) for pages that eviction never selected: unbind hangs', 'the unbinding task');
  },
};

// ---------------------------------------------------------------- MIG-SEQUENCE

const migSequence: RuleScenario = {
  world: {},
  reference: [{ op: 'migrate_vma_setup' }, { op: 'return_without_finalize' }],
  run(r, w, f) {
    const { mm, vram } = setup(r, w);
    if (ev(f, 'dst_store')) {
      const page = vram[0];
      mm.as.ptes.set(VA, { kind: 'device-private', page });
      r.step('driver', `the data at ${hex(VA)} lives in VRAM (device-private entry)`, { pte: 'DEVICE_PRIVATE_SWP' });
      mm.lock.readLock(r, 'T1');
      const m = mm.migrateSetup('T1', VA, VA + PAGE_SIZE, { devicePrivate: true, owner: 'drv', faultPage: undefined });
      const dst = r.at(loc(f, 'dst_page_alloc'), () => {
        const p = mm.allocPage('the process', pageData(page));
        r.step('driver', `the driver allocates a system page (pfn ${hex(p.pfn)}) and copies the data in; nothing locks it`, { [`pfn ${hex(p.pfn)}`]: 'unlocked' });
        return p;
      });
      r.at(loc(f, 'dst_store'), () => r.step('driver', 'dst[0] = migrate_pfn(page_to_pfn(dpage)), with dpage unlocked'));
      r.at(loc(f, 'migrate_vma_finalize'), () => mm.migrateFinish(m, new Map([[VA, dst]])));
      mm.lock.readUnlock(r, 'T1');
      mm.touch('kswapd', VA);
      return;
    }
    if (arg(f, 'mmapLocked') === false) {
      const vma = mm.vmaAt(VA)!;
      r.step('driver', `T1 looked up the VMA ${hex(vma.start)}-${hex(vma.end)} and holds no mmap lock now`);
      mm.munmap('T2', vma.start, vma.end);
      r.at(loc(f, 'migrate_vma_setup'), () => mm.migrateSetup('T1', VA, VA + 2 * PAGE_SIZE, { system: true }));
      return;
    }
    mm.lock.readLock(r, 'T1');
    const m: Migration = r.at(loc(f, 'migrate_vma_setup', 'migrate_device_range'), () => mm.migrateSetup('T1', VA, VA + 2 * PAGE_SIZE, { system: true }));
    r.at(loc(f, 'return_without_finalize'), () => r.step('driver', `an error path returns without migrate_vma_pages()/migrate_vma_finalize() (${m.collected.length} page(s) still collected)`, { migration: 'abandoned' }));
    mm.lock.readUnlock(r, 'T1');
    r.note('the collected pages also stay isolated from the LRU and hold an extra reference: a leak on top of the hang');
    mm.touch('T2', VA, m);
  },
};

// ---------------------------------------------------------------- HMM-FAULT-PROTOCOL

/** The device driver's fault: a range of one page at VA, mirrored into the device page table. */
function faultRange(n: IntervalNotifier | undefined, reqFault = true): HmmRange {
  return { start: VA, end: VA + PAGE_SIZE, notifier: n, notifierSeq: 0, reqFault, pfns: [] };
}

const hmmFaultProtocol: RuleScenario = {
  world: {},
  reference: [{ op: 'no_read_retry' }, { op: 'hmm_range_fault', args: { missing: 'retry' } }],
  run(r, w, f) {
    const missing = String(arg(f, 'missing') ?? 'retry');
    const at = loc(f, 'hmm_range_fault');
    const { mm } = setup(r, w, 1, false);
    const n = new IntervalNotifier(r);
    const range = faultRange(missing === 'notifier' ? undefined : n, missing !== 'valid-check');
    const fault = () => r.at(at, () => mm.hmmRangeFault('T1', range));
    switch (missing) {
      case 'notifier':
        fault();
        return;
      case 'seq': {
        const loops = arg(f, 'loop') !== false;
        r.step('driver', 'range.notifier_seq was never read from mmu_interval_read_begin(): it is 0');
        for (let i = 0; i < 4; i++) {
          mm.lock.readLock(r, 'T1');
          const ret = fault();
          mm.lock.readUnlock(r, 'T1');
          if (ret !== EBUSY) return;
          if (!loops) terminal('IO_ERROR', 'every call returns -EBUSY: the device can never mirror this range', 'the device fault');
          r.step('driver', 'the driver sees -EBUSY and tries again');
        }
        terminal('LIVELOCK', 'the sequence is never refreshed, so hmm_range_fault() returns -EBUSY on every attempt and the loop spins for ever', 'the faulting thread');
        return;
      }
      case 'stale-seq': {
        range.notifierSeq = n.readBegin();
        n.invalidate('meanwhile reclaim unmaps a page of the range', () => undefined);
        for (let i = 0; i < 4; i++) {
          mm.lock.readLock(r, 'T1');
          const ret = fault();
          mm.lock.readUnlock(r, 'T1');
          if (ret !== EBUSY) return;
          r.step('driver', 'on -EBUSY the driver jumps back to the fault without reading the sequence again');
        }
        terminal('LIVELOCK', `the range keeps the stale sequence ${range.notifierSeq} while the notifier is at ${n.seq}: every retry returns -EBUSY at once, for ever`, 'the faulting thread');
        return;
      }
      case 'mmap-lock': {
        range.notifierSeq = n.readBegin();
        r.step('driver', 'T1 calls hmm_range_fault() without holding the mmap lock');
        r.at(at, () => mm.hmmRangeFault('T1', range, undefined, () => {
          r.step('kernel', 'the walk has started when T2 calls munmap() on the same range');
          mm.munmap('T2', VA, VA + 16 * PAGE_SIZE, n);
        }));
        return;
      }
      case 'busy-swallowed': {
        range.notifierSeq = n.readBegin();
        n.invalidate('a concurrent, harmless change (NUMA balancing, an mprotect of a neighbouring page)', () => undefined);
        mm.lock.readLock(r, 'T1');
        const ret = fault();
        mm.lock.readUnlock(r, 'T1');
        if (ret === EBUSY) terminal('IO_ERROR', 'the driver turns -EBUSY into a hard error: the device fault fails (the GPU job is killed) although a retry would have succeeded', 'the device job');
        return;
      }
      case 'valid-check': {
        range.notifierSeq = n.readBegin();
        mm.as.ptes.delete(VA);
        mm.lock.readLock(r, 'T1');
        fault();
        mm.lock.readUnlock(r, 'T1');
        const e = range.pfns[0];
        if (!e.valid) {
          const zero = mm.allocPage('the kernel (pfn 0, firmware-reserved low memory)');
          r.at(loc(f, 'unchecked_pfn'), () => r.step('driver', `hmm_pfn_to_page(0) is the struct page of pfn 0; the driver uses it as the range's page (pfn ${hex(zero.pfn)} stands for it here)`));
          mm.devPt.set(VA, zero);
          deviceWrite(r, mm, VA, 'the job\'s output');
        }
        return;
      }
      case 'result': {
        const stale = mm.allocPage('the process');
        range.pfns = [{ valid: true, page: stale }];
        r.step('driver', `the pfns array still holds pfn ${hex(stale.pfn)} from an earlier fault`);
        mm.munmap('T2', VA, VA + PAGE_SIZE, n);
        // The page that earlier fault returned was freed with the rest and went to someone else.
        setPageOwner(stale, 'another process');
        range.notifierSeq = n.readBegin() - 2;
        mm.lock.readLock(r, 'T1');
        const ret = fault();
        mm.lock.readUnlock(r, 'T1');
        r.step('driver', `the driver ignores the result (${ret === EBUSY ? '-EBUSY' : ret}) and programs the device with the pfns array as it is`);
        mm.devPt.set(VA, range.pfns[0].page!);
        deviceWrite(r, mm, VA, 'the job\'s output');
        return;
      }
      default: {
        // 'retry' and 'update-lock': an invalidation after the walk.
        range.notifierSeq = n.readBegin();
        mm.lock.readLock(r, 'T1');
        fault();
        mm.lock.readUnlock(r, 'T1');
        const page = range.pfns[0].page!;
        if (missing === 'update-lock') {
          n.readRetry(range.notifierSeq);
          r.step('driver', 'the retry check passes, but the driver does not hold the lock invalidate() takes');
        } else r.at(at, () => r.step('driver', 'the driver does not call mmu_interval_read_retry(): it goes straight to the device page table'));
        mm.munmap('T2', VA, VA + PAGE_SIZE, n);
        setPageOwner(page, 'another process');
        r.step('kernel', `the page allocator hands pfn ${hex(page.pfn)} to another process`, { [`pfn ${hex(page.pfn)}`]: 'another process' });
        mm.devPt.set(VA, page);
        r.step('driver', `T1 writes pfn ${hex(page.pfn)} into the device page table for ${hex(VA)} (the zap already happened, so nothing will remove it)`);
        deviceWrite(r, mm, VA, 'the job\'s output');
      }
    }
  },
};

// ---------------------------------------------------------------- HMM-DEV-PRIVATE-OWNER

const hmmDevPrivateOwner: RuleScenario = {
  world: {},
  reference: [{ op: 'hmm_range_fault', args: { owner: 'missing' } }],
  run(r, w, f) {
    const owner = String(arg(f, 'owner') ?? 'missing');
    const { mm, vram } = setup(r, w, 0);
    const n = new IntervalNotifier(r);
    const page = vram[0];
    setPageData(page, 'the process\'s hot data');
    mm.as.ptes.set(VA, { kind: 'device-private', page });
    r.step('driver', `the driver migrated the hot page at ${hex(VA)} into its VRAM (pgmap owner "drv")`, { pte: 'DEVICE_PRIVATE_SWP' });
    const migrations = { n: 0 };
    for (let round = 1; round <= 3; round++) {
      const range = faultRange(n);
      range.owner = owner === 'mismatch' ? 'another pointer' : undefined;
      range.notifierSeq = n.readBegin();
      mm.lock.readLock(r, 'T1');
      r.at(loc(f, 'hmm_range_fault'), () => mm.hmmRangeFault('T1', range, copyBack(r, mm, migrations)));
      mm.lock.readUnlock(r, 'T1');
      const e = range.pfns[0];
      r.step('device', e.device ? 'the GPU maps its own VRAM page' : `the GPU maps the system RAM copy over PCIe (pfn ${hex(e.page!.pfn)})`);
      if (e.device) return;
      r.step('driver', 'the page is hot on the GPU, so the driver migrates it to VRAM again', { migrations: migrations.n });
      mm.as.ptes.set(VA, { kind: 'device-private', page });
      migrations.n++;
    }
    terminal('LIVELOCK', `every GPU fault copies the driver's own page out of VRAM and the placement policy copies it back: ${migrations.n} migrations for one page and counting, the GPU never runs from VRAM`, 'the range\'s placement');
  },
};

// ---------------------------------------------------------------- GUP-DEVICE-MEMORY

const gupDeviceMemory: RuleScenario = {
  world: {},
  reference: [{ op: 'gup', args: { flags: 'FOLL_LONGTERM|FOLL_PCI_P2PDMA' } }],
  run(r, w, f) {
    const flags = new Set(String(arg(f, 'flags') ?? 'FOLL_LONGTERM').split('|') as Foll[]);
    const { mm } = setup(r, w, 1, false);
    const at = loc(f, 'gup');
    if (String(arg(f, 'target') ?? '') === 'bar') {
      const bar = { start: 0x7f20_0000_0000, end: 0x7f20_0010_0000, pfnmap: true, physStart: w.gpuVram.start };
      mm.vmas.push(bar);
      r.step('user', `the application mmap()s ${w.gpu.name}'s VRAM BAR at ${hex(bar.start)} (io_remap_pfn_range: VM_IO|VM_PFNMAP) and passes that address as its "VRAM" buffer`);
      const res = r.at(at, () => mm.gup('T1', bar.start, flags));
      if (res.ret < 0) terminal('IO_ERROR', `the pin fails with ${res.ret === -14 ? '-EFAULT' : res.ret}: GUP has no struct page to pin in a PFN mapping of device memory, so the registration never works`, 'the registration ioctl');
      return;
    }
    r.at(at, () => mm.gup('T1', VA, flags));
  },
};

// ---------------------------------------------------------------- GUP-P2PDMA-CPU-ACCESS

const gupP2pdmaCpuAccess: RuleScenario = {
  world: { cpu: 'arm64' },
  variants: [{ options: { cpu: 'intel' }, label: 'x86' }],
  reference: [{ op: 'gup', args: { flags: 'FOLL_PCI_P2PDMA' } }, { op: 'cpu_access', args: { via: 'kmap_local_page' } }],
  run(r, w, f) {
    const as = new AddressSpace(r);
    const mm = new Mm(r, as);
    const pgmap = memremapPages(r, w.phys, { type: 'P2PDMA', rangeStart: w.gpuVram.start, rangeSize: 64 << 20, nrRange: 1 });
    const page = pgmap.pages[0];
    mm.vmas.push({ start: VA, end: VA + PAGE_SIZE });
    as.ptes.set(VA, { kind: 'present', page });
    r.step('user', `the application mmap()s /sys/bus/pci/devices/${w.gpu.bdf}/p2pmem/allocate and hands that buffer to the driver for I/O`, { [`pte ${hex(VA)}`]: page.describe() });
    const flag = String(arg(f, 'flags') ?? 'FOLL_PCI_P2PDMA');
    const got = r.at(loc(f, 'gup'), () => mm.gup('T1', VA, new Set<Foll>(['FOLL_PCI_P2PDMA'])));
    if (!got.page) return;
    r.step('kernel', `with ${flag} the pin returns the P2PDMA page itself`);
    const bio = ev(f, 'submit_bio');
    if (bio) {
      const dma = new DmaApi(r, w.phys, w.iommu, w.fabric);
      r.topology = w.fabric.picture(w.nvme.bdf, w.gpu.bdf);
      const addr = r.at(bio.span, () => {
        r.step('driver', `the page goes into a bio for ${w.nvme.name}'s queue, which never said it can reach peer memory; its driver maps the bvec with dma_map_page()`);
        return dma.mapPage(w.nvme, page);
      });
      dma.deviceWrite(w.nvme, addr, 'the data read from disk');
      return;
    }
    const via = String(arg(f, 'via') ?? 'kmap_local_page');
    r.at(loc(f, 'cpu_access'), () => {
      r.step('cpu', `${via}() gives the CPU the page's kernel mapping: ${page.kva === 'UC_MMIO' ? 'uncached MMIO (the GPU BAR)' : page.kva}`, { kva: page.kva });
      if (page.kva === 'UC_MMIO' && w.cpu === 'arm64') {
        r.step('cpu', 'memcpy() on arm64 uses unaligned accesses and DC ZVA, which Device memory does not allow');
        terminal('CPU_FAULT', 'alignment fault (or an SError from the bus) on the BAR mapping: kernel oops in the CPU copy', 'the I/O task');
      }
      r.step('cpu', 'x86 does the copy with uncached loads over PCIe: it works, slowly');
    });
  },
};

// ---------------------------------------------------------------- GUP-FOLLOW-PFN

const gupFollowPfn: RuleScenario = {
  world: { iommu: 'off', p2pPath: 'switch' },
  variants: [{ options: { iommu: 'translated', p2pPath: 'unsupported' }, label: 'the NIC under another root port, behind a translating IOMMU' }],
  reference: [{ op: 'follow_pfn', args: { api: 'follow_pfnmap_start' } }, { op: 'device_program', args: { sink: 'register' } }],
  run(r, w, f) {
    const as = new AddressSpace(r);
    const mm = new Mm(r, as);
    const dma = new DmaApi(r, w.phys, w.iommu, w.fabric);
    const bar = `BAR${w.gpuVram.bar!.index}`;
    const vram = new BarAllocator(r, `${bar} of ${w.gpu.name}`);
    const off = 0x40_0000;
    vram.give(off, 'the application\'s buffer object', `the GPU driver places the application's buffer object at ${bar}+${hex(off)}`);
    const vma: Vma = { start: 0x7f30_0000_0000, end: 0x7f30_0000_0000 + 0x10_0000, pfnmap: true, physStart: w.gpuVram.start + off };
    mm.vmas.push(vma);
    r.step('user', `the application mmap()s that buffer through the GPU driver (VM_IO|VM_PFNMAP at ${hex(vma.start)}) and passes the address to the NIC driver`);
    const phys = vma.physStart!;
    const api = String(arg(f, 'api') ?? 'follow_pfnmap_start');
    r.at(loc(f, 'follow_pfn'), () => r.step('driver', `${api}() resolves ${hex(vma.start)} to pfn ${hex(phys / PAGE_SIZE)} (physical ${hex(phys)}), takes no reference, and the lookup ends`, { phys: hex(phys) }));
    const sink = String(arg(f, 'sink') ?? 'register');
    r.topology = w.fabric.picture(w.nic.bdf, w.gpu.bdf);
    const addr = r.at(loc(f, 'device_program'), () => {
      if (sink === 'dma_map_resource') return dma.mapPhys(w.nic, phys, PAGE_SIZE, `dma_map_resource(${w.nic.name}, ${hex(phys)})`);
      r.step('driver', `the driver ${sink === 'escape' ? 'keeps the address and later programs' : 'programs'} ${w.nic.name}'s DMA engine with ${hex(phys)}`, { 'NIC target': hex(phys) });
      return phys;
    });
    r.step('user', 'the application munmap()s the buffer and frees the buffer object; the NIC driver is not told');
    vma.freed = true;
    vram.give(off, 'another process\'s buffer object', `the GPU driver gives ${bar}+${hex(off)} to another process's new buffer object`);
    const landed = dma.deviceWrite(w.nic, addr, 'a received packet');
    const owner = vram.ownerAt(off);
    r.step('device', `the packet lands in ${landed}`);
    if (owner && owner !== 'the application\'s buffer object') terminal('SILENT_CORRUPTION', `the NIC overwrites ${owner} in VRAM: nothing revoked the address when its owner moved on`, owner);
  },
};

export const hmmScenarios: Record<string, RuleScenario> = {
  'MIG-SELECT-OWNER': migSelectOwner,
  'MIG-SEQUENCE': migSequence,
  'HMM-FAULT-PROTOCOL': hmmFaultProtocol,
  'HMM-DEV-PRIVATE-OWNER': hmmDevPrivateOwner,
  'GUP-DEVICE-MEMORY': gupDeviceMemory,
  'GUP-P2PDMA-CPU-ACCESS': gupP2pdmaCpuAccess,
  'GUP-FOLLOW-PFN': gupFollowPfn,
};

