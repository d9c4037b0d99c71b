/**
 * Scenarios of the pgmap family's rules beyond the first thirteen (see explain.ts
 * for those). Each replays a finding's events on the simulated machine.
 */
import type { KernelVersion } from '../../core/types';
import { DRIFT } from '../apiHistory';
import { DmaApi } from '../dma';
import {
  Allocations,
  cpuAccessPage,
  getPage,
  invalidatePgmapStorage,
  memremapPages,
  type MemoryType,
  memunmapPages,
  PAGE_SIZE,
  pageLife,
  type PgMap,
  pgmapLife,
  PgmapTable,
  putPage,
  readZoneDeviceData,
  setZoneDeviceData,
  SUBSECTION_SIZE,
  tryMemremapPages,
  useDevicePfn,
  zoneDevicePageInit,
} from '../memory';
import { hex, type Recorder, terminal } from '../run';
import { arg, ev, loc, type RuleScenario } from '../scenario';
import type { World } from '../world';

/** A device-private pgmap over a free range, as a GPU driver registers its VRAM. */
function privateVram(r: Recorder, w: World, table: PgmapTable, owner = 'the GPU driver'): PgMap {
  const region = w.phys.requestFree(256 << 20, `${w.gpu.name}'s device-private VRAM`);
  const p = memremapPages(r, w.phys, { type: 'PRIVATE', rangeStart: region.start, rangeSize: region.size, nrRange: 1, ops: { migrateToRam: true, pageFree: true }, owner });
  table.register(r, p);
  return p;
}

function typeOf(v: unknown, fallback: MemoryType): MemoryType {
  const s = String(v ?? '').replace('MEMORY_DEVICE_', '').replace('PCI_', '');
  return (['PRIVATE', 'COHERENT', 'FS_DAX', 'GENERIC', 'P2PDMA'] as const).find((t) => t === s) ?? fallback;
}

function cmp(a: KernelVersion, b: KernelVersion): number {
  return a.major !== b.major ? a.major - b.major : a.minor - b.minor;
}

export const pgmapScenarios: Record<string, RuleScenario> = {
  'PGMAP-RANGE-SOURCE': {
    world: { iommu: 'translated' },
    variants: [{ options: { iommu: 'off' }, label: 'IOMMU off' }],
    reference: [{ op: 'pgmap_setup', args: { pgmapType: 'P2PDMA', rangeFrom: 'free' } }, { op: 'memremap_pages' }, { op: 'dma_map_page', args: { by: 'peer' } }],
    run(r, w, f) {
      const type = typeOf(arg(f, 'pgmapType'), 'P2PDMA');
      const from = String(arg(f, 'rangeFrom') ?? 'free');
      const table = new PgmapTable();
      const size = 64 << 20;
      let start: number;
      if (from === 'free') {
        start = w.phys.requestFree(size, 'the hand-built pgmap').start;
        r.step('driver', `the driver takes ${hex(start)}+${hex(size)} from request_free_mem_region(): addresses reserved because nothing decodes them`);
      } else if (from === 'bar') {
        start = w.gpuVram.start;
        r.step('driver', `the driver takes BAR${w.gpuVram.bar!.index} of ${w.gpu.name} (${hex(start)}), device MMIO`);
      } else if (from === 'platform') {
        start = 0x1_8000_0000;
        r.step('driver', `the driver takes a firmware-described carve-out at ${hex(start)}, which is ${w.phys.describe(start)}`);
      } else {
        start = 0x8_8010_0000;
        const neighbour = memremapPages(r, w.phys, { type: 'GENERIC', rangeStart: 0x8_8000_0000, rangeSize: 1 << 20, nrRange: 1 });
        table.register(r, neighbour);
        r.step('kernel', `another device already registered ${hex(0x8_8000_0000)}+1 MiB, the first half of the subsection [${hex(0x8_8000_0000)}, ${hex(0x8_8000_0000 + SUBSECTION_SIZE)})`);
      }
      const spec = { type, rangeStart: start, rangeSize: size, nrRange: 1, ops: { migrateToRam: true, pageFree: true }, owner: 'drv' };
      const pgmap = r.at(loc(f, 'pgmap_setup', 'memremap_pages'), () => {
        r.step('driver', `the pgmap is MEMORY_DEVICE_${type} over ${hex(start)}+${hex(size)}`, { pgmap: `MEMORY_DEVICE_${type}` });
        const p = memremapPages(r, w.phys, spec);
        table.register(r, p);
        return p;
      });
      const page = pgmap.pages[0];
      if (type === 'P2PDMA') {
        const dma = new DmaApi(r, w.phys, w.iommu, w.fabric);
        r.step('kernel', `${w.nic.name} is handed ${page.describe()} as peer memory and maps it: page_to_phys() is ${hex(page.phys)}`);
        const addr = dma.mapPage(w.nic, page);
        dma.deviceWrite(w.nic, addr, 'a received packet');
        return;
      }
      cpuAccessPage(r, w.phys, page, 'the first CPU access to a page of the pgmap');
    },
  },

  'PGMAP-LIFETIME': {
    world: {},
    reference: [{ op: 'pgmap_storage', args: { storage: 'stack' } }, { op: 'memremap_pages', args: { storage: 'stack' } }, { op: 'function_return' }],
    run(r, w, f) {
      const table = new PgmapTable();
      const storage = arg(f, 'storage');
      if (arg(f, 'interior') === true) {
        const heap = new Allocations();
        const fn = String(arg(f, 'fn') ?? 'devm_kfree') === 'devm_kfree' ? 'devm_kfree' : 'kfree';
        const base = heap.alloc(0x400, 'the p2p_pgmap allocation', fn === 'devm_kfree');
        const member = base + 0x40;
        r.step('driver', `the driver allocates a structure at ${hex(base)} whose dev_pagemap member sits at ${hex(member)}`, { allocation: hex(base), '&x->pgmap': hex(member) });
        r.at(loc(f, 'free_pgmap'), () => heap.free(r, member, fn));
        return;
      }
      if (arg(f, 'checked') === false) {
        // Another device already owns a subsection of this range: the remap fails.
        const other = memremapPages(r, w.phys, { type: 'GENERIC', rangeStart: 0x9_0000_0000, rangeSize: 1 << 20, nrRange: 1 });
        table.register(r, other);
        r.step('kernel', `another device registered ${hex(0x9_0000_0000)}+1 MiB earlier`);
        const res = r.at(loc(f, 'memremap_pages'), () => tryMemremapPages(r, w.phys, { type: 'GENERIC', rangeStart: 0x9_0010_0000, rangeSize: 64 << 20, nrRange: 1 }, table));
        if (!('error' in res)) return;
        r.step('driver', 'the driver does not test the result with IS_ERR() and goes on as if the pages existed');
        r.at(loc(f, 'use_pages'), () => useDevicePfn(r, table, 0x9_0010_0000 / PAGE_SIZE, 'the driver hands out its first page'));
        return;
      }
      if (storage === 'stack') {
        const pgmap = r.at(loc(f, 'pgmap_storage', 'memremap_pages'), () => {
          const p = privateVram(r, w, table);
          pgmapLife(p).storage = 'stack';
          return p;
        });
        const page = pgmap.pages[0];
        zoneDevicePageInit(r, page);
        pageLife(page).mappedInProcess = true;
        r.step('driver', 'the page is migrated into a process');
        r.at(loc(f, 'function_return'), () => invalidatePgmapStorage(r, pgmap, 'the function returns: its stack frame, the dev_pagemap in it included, is reused by the next calls'));
        r.step('user', 'the process exits and unmaps the page');
        putPage(r, page, 'the last put_page()');
        return;
      }
      if (ev(f, 'driver_unbind')) {
        const region = w.phys.requestFree(64 << 20, 'the on-package memory');
        const pgmap = r.at(loc(f, 'memremap_pages'), () => {
          const p = memremapPages(r, w.phys, { type: 'GENERIC', rangeStart: region.start, rangeSize: region.size, nrRange: 1 });
          table.register(r, p);
          return p;
        });
        r.at(loc(f, 'driver_unbind'), () => invalidatePgmapStorage(r, pgmap, 'the driver is unbound: its remove callback returns without memunmap_pages(), and devm frees the structure holding the dev_pagemap'));
        r.step('kernel', 'later memory_failure() (or GUP of a stale DAX mapping) asks which pgmap covers a pfn of the range');
        table.lookup(r, pgmap.spec.rangeStart / PAGE_SIZE);
        return;
      }
      // Freed while remapped.
      const pgmap = r.at(loc(f, 'memremap_pages'), () => privateVram(r, w, table));
      const page = pgmap.pages[0];
      zoneDevicePageInit(r, page);
      pageLife(page).mappedInProcess = true;
      r.step('driver', 'a page of the chunk is migrated into a process');
      r.at(loc(f, 'free_pgmap'), () => invalidatePgmapStorage(r, pgmap, 'an error path frees the chunk that holds the dev_pagemap, without memunmap_pages()'));
      r.step('user', 'the process exits and unmaps the page');
      putPage(r, page, 'the last put_page()');
    },
  },

  'PGMAP-PRIVATE-CPU-ACCESS': {
    world: {},
    reference: [{ op: 'device_private_page', args: { source: 'vmf->page in migrate_to_ram' } }, { op: 'cpu_access_page', args: { via: 'kmap_local_page' } }],
    run(r, w, f) {
      const table = new PgmapTable();
      const pgmap = privateVram(r, w, table);
      const page = pgmap.pages[2];
      r.at(loc(f, 'device_private_page'), () => r.step('driver', `the code holds ${page.describe()} (${String(arg(f, 'source') ?? 'a device-private page')})`));
      r.at(loc(f, 'cpu_access_page'), () => cpuAccessPage(r, w.phys, page, `${String(arg(f, 'via') ?? 'kmap_local_page')}()`));
    },
  },

  'PGMAP-FOREIGN-OWNER': {
    world: { iommu: 'off' },
    variants: [{ options: { iommu: 'translated' }, label: 'the IOMMU translating for the device' }],
    reference: [{ op: 'gup_page', args: { owner: 'other' } }, { op: 'interpret_zone_device_page', args: { via: 'page->zone_device_data' } }],
    run(r, w, f) {
      const table = new PgmapTable();
      // Another driver (the GPU's) registers CPU-coherent device memory and tags its pages.
      const other = memremapPages(r, w.phys, { type: 'COHERENT', rangeStart: 0x40_0000_0000, rangeSize: 64 << 20, nrRange: 1, ops: { pageFree: true }, owner: 'the GPU driver' });
      table.register(r, other);
      const page = other.pages[1];
      setZoneDeviceData(page, { owner: 'the GPU driver', type: 'struct gpu_svm_bo', fields: { 'vram offset': 0x1_2345_6000 } });
      r.step('driver', `the GPU driver migrates a process page into its coherent memory and stores a struct gpu_svm_bo in zone_device_data (its VRAM offset ${hex(0x1_2345_6000)})`, { 'page owner': 'the GPU driver' });
      const how = ev(f, 'hmm_page') ? 'hmm_range_fault()' : 'pin_user_pages_fast()';
      r.at(loc(f, 'gup_page', 'hmm_page'), () => r.step('kernel', `${how} for ${w.nic.name}'s driver returns that page: a coherent page is an ordinary present PTE, whoever owns it`, { page: 'ZONE_DEVICE (coherent)' }));
      const devAddr = r.at(loc(f, 'interpret_zone_device_page'), () =>
        readZoneDeviceData(r, page, { owner: `${w.nic.name}'s driver`, type: 'struct acme_page_ctx', field: 'dev_addr' }),
      );
      const dma = new DmaApi(r, w.phys, w.iommu, w.fabric);
      r.step('driver', `${w.nic.name}'s driver programs its device with dev_addr ${hex(devAddr)}`);
      const landed = dma.deviceWrite(w.nic, devAddr, 'the user\'s data');
      terminal('SILENT_CORRUPTION', `the write lands in ${landed}: memory neither driver meant, picked from another driver's private structure`, landed);
    },
  },

  'PGMAP-REFCOUNT-INIT': {
    world: {},
    reference: [{ op: 'device_page_alloc', args: { init: false } }, { op: 'get_page' }],
    run(r, w, f) {
      const table = new PgmapTable();
      const pgmap = privateVram(r, w, table);
      const page = pgmap.pages[0];
      if (ev(f, 'page_free_callback')) {
        zoneDevicePageInit(r, page);
        r.step('driver', 'the page is handed out, migrated into a process and later unmapped');
        page.locked = false;
        r.at(loc(f, 'page_free_callback'), () => putPage(r, page, 'the process\'s last put_page()'));
        r.step('driver', 'the core calls the driver\'s page_free(): it puts the page back on its free list');
        const res = r.at(loc(f, 'put_page'), () => putPage(r, page, 'page_free()\'s put_page()'));
        if (res === 'underflow') terminal('CPU_FAULT', 'put_page_testzero() hits VM_BUG_ON_PAGE on the zero refcount (CONFIG_DEBUG_VM): BUG; without it the refcount stays negative until the page is reused, and page refcount tracking for it is meaningless', 'the freeing task');
        return;
      }
      r.at(loc(f, 'device_page_alloc'), () => r.step('driver', `the driver takes ${page.describe()} off its free list: refcount ${page.refcount}, no pgmap reference`, { 'page refcount': page.refcount, 'pgmap refs': pgmapLife(pgmap).refs }));
      const taker = f.events.find((e) => e.op !== 'device_page_alloc');
      r.at(taker?.span, () => {
        if (taker && /lock/.test(taker.op)) {
          page.locked = true;
          r.step('driver', `${taker.op}() locks the page; its refcount stays ${page.refcount}`, { 'page refcount': page.refcount });
        } else getPage(r, page, `${taker?.op ?? 'get_page'}()`);
      });
      pageLife(page).mappedInProcess = true;
      r.step('driver', 'the page becomes the destination of a migration to the device: the process now maps it through a device-private entry');
      r.step('user', 'the driver is unbound (or the module unloaded) while the process still maps the page');
      memunmapPages(r, pgmap, table);
      r.step('user', 'the process touches the address: do_swap_page() looks up the struct page of the device-private entry');
      cpuAccessPage(r, w.phys, page, 'do_swap_page()');
    },
  },

  'PGMAP-API-DRIFT': {
    world: {},
    reference: [{ op: 'api_drift', args: { name: 'MIGRATE_PFN_LOCKED', how: 'removed', target: '6.12' } }],
    run(r, _w, f) {
      const name = String(arg(f, 'name') ?? 'MIGRATE_PFN_LOCKED');
      const target = String(arg(f, 'target') ?? '6.19').split('.').map(Number);
      const v: KernelVersion = { major: target[0], minor: target[1] };
      const d = DRIFT.find((x) => x.name === name);
      const declared = !d || ((!d.addedIn || cmp(v, d.addedIn) >= 0) && (!d.removedIn || cmp(v, d.removedIn) < 0));
      r.at(loc(f, 'api_drift'), () => r.step('kernel', `the compiler looks ${name} up in the ${v.major}.${v.minor} headers: ${declared ? 'it is there' : d!.removedIn && cmp(v, d!.removedIn) >= 0 ? `gone since ${d!.removedIn.major}.${d!.removedIn.minor}` : `not there before ${d!.addedIn!.major}.${d!.addedIn!.minor}`}`, { [name]: declared ? 'declared' : 'undeclared' }));
      if (!declared) terminal('IO_ERROR', `the module does not build against ${v.major}.${v.minor}: ${name} is not declared (or struct page/dev_pagemap_ops has no such member)`, 'the build');
    },
  },
};
