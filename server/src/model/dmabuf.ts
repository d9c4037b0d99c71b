/**
 * dma-buf as drivers/dma-buf/dma-buf.c (6.12) runs it: the reservation lock
 * (a ww_mutex), static and dynamic attachments, pin counts, map/unmap through
 * the exporter, eviction with move_notify, and the sg_tables importers get.
 *
 * The exporter here is a GPU driver with a buffer object in VRAM (a BAR of the
 * GPU) that it can move to system RAM under the reservation lock.
 */
import type { DeviceInfo, DmaApi } from './dma';
import { hex, type Recorder, terminal } from './run';

/** A ww_mutex without an acquire context, the way drivers lock dma_resv with NULL. */
export class WwMutex {
  holder?: string;
  constructor(readonly name: string) {}

  lock(r: Recorder, thread: string, how = 'dma_resv_lock()'): void {
    if (this.holder === thread) {
      r.step('kernel', `${how} on ${this.name}: ${thread} already holds it`, { [this.name]: `held by ${thread}` });
      terminal('DEADLOCK', `${thread} waits forever for ${this.name}, which it holds itself (a ww_mutex taken twice without an acquire context)`, thread);
    }
    if (this.holder) {
      r.step('kernel', `${how} on ${this.name}: ${thread} sleeps until ${this.holder} unlocks`, { [this.name]: `held by ${this.holder}` });
      return;
    }
    this.holder = thread;
    r.step('kernel', `${thread} takes ${this.name}`, { [this.name]: `held by ${thread}` });
  }

  unlock(r: Recorder, thread: string): void {
    if (this.holder !== thread) r.step('kernel', `${thread} unlocks ${this.name} it does not hold`, { [this.name]: this.holder ? `held by ${this.holder}` : 'free' });
    this.holder = undefined;
    r.step('kernel', `${thread} releases ${this.name}`, { [this.name]: 'free' });
  }

  /** dma_resv_assert_held(): a lockdep splat when not held (with CONFIG_LOCKDEP). */
  assertHeld(r: Recorder, thread: string, by: string): boolean {
    if (this.holder === thread) return true;
    r.step('kernel', `${by} runs dma_resv_assert_held(): the lock is not held, lockdep WARNs (with CONFIG_PROVE_LOCKING) and the call goes on unprotected`, {
      [this.name]: this.holder ? `held by ${this.holder}` : 'free',
      lockdep: 'WARN',
    });
    return false;
  }
}

export interface SgEntry {
  /** What sg_page() returns: a page, NULL (peer-to-peer MMIO entries), or a scrambled pointer (CONFIG_DMABUF_DEBUG). */
  page: 'page' | 'NULL' | 'mangled';
  pfn?: number;
  dmaAddr: number;
  len: number;
}

export interface SgTable {
  id: number;
  entries: SgEntry[];
  /** The device it was mapped for. */
  dev: string;
  /** Where the data was when it was mapped. */
  placement: string;
}

export interface Attachment {
  dev: DeviceInfo;
  dynamic: boolean;
  peer2peer: boolean;
  moveNotify?: 'invalidates' | 'does nothing' | 'missing';
  pinned: number;
  mappings: SgTable[];
}

export interface BufferSpec {
  size: number;
  /** Backing at export. */
  placement: 'VRAM' | 'SYSRAM';
  vramPhys: number;
  vramBus: number;
  sysramPhys: number;
  exporter: DeviceInfo;
  debug: boolean;
}

export class DmaBuf {
  readonly resv: WwMutex;
  placement: 'VRAM' | 'SYSRAM';
  pinCount = 0;
  readonly attachments: Attachment[] = [];
  /** VRAM ranges handed to other buffer objects after this one moved out. */
  reusedBy?: string;
  private tables = 0;
  refcount = 1;
  freed = false;
  /** The exporter freed the pages that backed the buffer (swap-out). */
  pagesFreed = false;

  constructor(
    readonly r: Recorder,
    readonly dma: DmaApi,
    readonly spec: BufferSpec,
    readonly name = 'buf',
  ) {
    this.resv = new WwMutex(`${name}->resv`);
    this.placement = spec.placement;
  }

  private where(): string {
    return this.placement === 'VRAM'
      ? `VRAM at ${hex(this.spec.vramPhys)} (bus ${hex(this.spec.vramBus)})`
      : `system RAM at ${hex(this.spec.sysramPhys)}`;
  }

  /** dma_buf_attach()/dma_buf_dynamic_attach(): the core refuses dynamic importers without move_notify. */
  attach(thread: string, dev: DeviceInfo, opts: { dynamic: boolean; peer2peer?: boolean; moveNotify?: Attachment['moveNotify']; exporterChecksDistance?: boolean }): Attachment {
    if (this.resv.holder === thread) {
      this.r.step('kernel', `dma_buf_${opts.dynamic ? 'dynamic_' : ''}attach() takes the reservation lock to set up the attachment`);
      this.resv.lock(this.r, thread);
    }
    if (opts.dynamic && opts.moveNotify === 'missing') {
      this.r.step('kernel', 'dma_buf_dynamic_attach() checks importer_ops->move_notify: missing, WARN_ON fires', { attachment: 'refused' });
      terminal('WARN', 'dma_buf_dynamic_attach() WARNs and returns ERR_PTR(-EINVAL): a dynamic importer must be told when the exporter moves the buffer', 'the import');
    }
    let peer2peer = !!(opts.dynamic && opts.peer2peer);
    if (peer2peer && opts.exporterChecksDistance !== false && this.dma.fabric.route(dev.bdf, this.spec.exporter.bdf).mapType === 'not-supported') {
      // What amdgpu and xe do in their .attach: no peer-to-peer over a path that cannot carry it.
      peer2peer = false;
      this.r.step('driver', `the exporter's .attach finds pci_p2pdma_distance(${this.spec.exporter.name}, ${dev.name}) < 0 and clears attach->peer2peer`, { peer2peer: false });
    }
    const a: Attachment = {
      dev,
      dynamic: opts.dynamic,
      peer2peer,
      moveNotify: opts.moveNotify,
      pinned: 0,
      mappings: [],
    };
    this.attachments.push(a);
    this.r.step('kernel', `${dev.name} attaches to the dma-buf (${opts.dynamic ? 'dynamic' : 'static'}${a.peer2peer ? ', peer2peer allowed' : ''})`, {
      attachments: this.attachments.length,
      peer2peer: a.peer2peer,
    });
    if (!opts.dynamic) {
      // A static importer cannot follow moves: the exporter pins the buffer in system memory.
      this.moveTo('SYSRAM', 'the exporter pins the buffer for a static importer', 'kernel');
      this.pinCount++;
    }
    return a;
  }

  /** The exporter's map_dma_buf: an sg_table DMA-mapped for the importer's device. */
  private exporterMap(a: Attachment): SgTable {
    const id = ++this.tables;
    const entries: SgEntry[] = [];
    if (this.placement === 'VRAM' && a.peer2peer) {
      // Peer-to-peer: addresses of the exporter's BAR, no struct page behind them.
      // pci_p2pdma_map_type(): a switch-local path uses the bus address; through the host bridge, the IOMMU.
      const route = this.dma.fabric.route(a.dev.bdf, this.spec.exporter.bdf);
      const addr = route.mapType === 'thru-host-bridge' && a.dev.iommu === 'translated'
        ? this.dma.mapPhys(a.dev, this.spec.vramPhys, this.spec.size, 'the exporter maps its VRAM for the importer through the host bridge')
        : this.spec.vramBus;
      entries.push({ page: this.spec.debug ? 'mangled' : 'NULL', dmaAddr: addr, len: this.spec.size });
    } else {
      if (this.placement === 'VRAM') this.moveTo('SYSRAM', 'the importer cannot take peer memory, so the exporter migrates to system RAM first', 'driver');
      const addr = this.dma.mapPhys(a.dev, this.spec.sysramPhys, this.spec.size, `the exporter's map_dma_buf maps its pages for ${a.dev.name}`);
      entries.push({ page: this.spec.debug ? 'mangled' : 'page', pfn: this.spec.sysramPhys / 4096, dmaAddr: addr, len: this.spec.size });
    }
    const t: SgTable = { id, entries, dev: a.dev.bdf, placement: this.where() };
    this.r.step('driver', `the exporter returns sg_table #${id}: DMA address ${hex(entries[0].dmaAddr)}, sg_page() = ${entries[0].page === 'page' ? 'a struct page' : entries[0].page === 'NULL' ? 'NULL' : 'a scrambled pointer (CONFIG_DMABUF_DEBUG)'}`, {
      'sg_dma_address': hex(entries[0].dmaAddr),
      'backing': this.where(),
    });
    a.mappings.push(t);
    return t;
  }

  /** dma_buf_map_attachment(): must hold the lock (dma_resv_assert_held), then the exporter maps. */
  map(thread: string, a: Attachment, locked: boolean): SgTable {
    if (!locked) {
      const held = this.resv.assertHeld(this.r, thread, 'dma_buf_map_attachment()');
      if (!held) this.r.note('with CONFIG_PROVE_LOCKING the missing lock is a lockdep WARN at the first call; without it the race below is silent');
    }
    return this.exporterMap(a);
  }

  /** dma_buf_map_attachment_unlocked(): takes the lock itself. */
  mapUnlocked(thread: string, a: Attachment): SgTable {
    this.resv.lock(this.r, thread, 'dma_buf_map_attachment_unlocked() calls dma_resv_lock()');
    const t = this.exporterMap(a);
    this.resv.unlock(this.r, thread);
    return t;
  }

  pin(thread: string, a: Attachment): void {
    this.resv.assertHeld(this.r, thread, 'dma_buf_pin()');
    a.pinned++;
    this.pinCount++;
    this.r.step('driver', `the exporter pins the buffer in ${this.placement}`, { pin_count: this.pinCount });
  }

  unpin(thread: string, a: Attachment): void {
    this.resv.assertHeld(this.r, thread, 'dma_buf_unpin()');
    a.pinned--;
    this.pinCount--;
    if (this.pinCount < 0) {
      this.r.step('driver', `the exporter's unpin runs with pin_count already 0`, { pin_count: this.pinCount });
      this.pinCount = 0;
      this.r.note('drivers that count pins (TTM, amdgpu) WARN on the underflow; the buffer is now movable while a mapping may still be in use');
      return;
    }
    this.r.step('driver', `the exporter unpins the buffer`, { pin_count: this.pinCount });
  }

  private moveTo(placement: 'VRAM' | 'SYSRAM', why: string, actor: 'driver' | 'kernel'): void {
    if (this.placement === placement) return;
    const from = this.where();
    this.placement = placement;
    this.r.step(actor, `${why}: the buffer moves from ${from} to ${this.where()}`, { backing: this.where() });
  }

  /**
   * The exporter evicts the buffer from VRAM under the reservation lock (a
   * memory-pressure thread), telling dynamic importers through move_notify.
   */
  evict(thread: string, reuseBy = 'another buffer object'): 'evicted' | 'blocked' {
    if (this.evictBegin(thread) === 'blocked') return 'blocked';
    this.evictFinish(thread, reuseBy);
    return 'evicted';
  }

  /** First half of an eviction: lock, tell the dynamic importers. */
  evictBegin(thread: string): 'started' | 'blocked' {
    if (this.pinCount > 0) {
      this.r.step('driver', `${thread} wants to evict the buffer from VRAM, but pin_count is ${this.pinCount}: it stays`, { pin_count: this.pinCount });
      return 'blocked';
    }
    if (this.resv.holder && this.resv.holder !== thread) {
      this.r.step('driver', `${thread} wants to evict the buffer but waits for the reservation lock held by ${this.resv.holder}`);
      return 'blocked';
    }
    this.resv.lock(this.r, thread, `${thread} (memory pressure) takes the reservation lock to evict`);
    for (const a of this.attachments) {
      if (!a.dynamic) continue;
      this.r.step('kernel', `dma_buf_move_notify() calls ${a.dev.name}'s move_notify with the lock held`);
      if (a.moveNotify === 'invalidates') {
        for (const t of a.mappings) this.r.step('driver', `${a.dev.name} invalidates its mapping of sg_table #${t.id} and will re-map before its next use`);
        a.mappings = [];
      } else {
        this.r.step('driver', `${a.dev.name}'s move_notify returns without invalidating anything; its device still holds the old addresses`, {
          [`${a.dev.name} mappings`]: a.mappings.map((t) => `#${t.id}`).join(', ') || 'none',
        });
      }
    }
    return 'started';
  }

  /** Second half: copy out, hand the VRAM to someone else, unlock. */
  evictFinish(thread: string, reuseBy = 'another buffer object'): void {
    const wasVram = this.placement === 'VRAM';
    if (!wasVram) {
      // Already in system RAM: memory pressure swaps it out and frees its pages.
      this.pagesFreed = true;
      this.r.step('driver', `the exporter swaps the buffer out and frees its system RAM pages at ${hex(this.spec.sysramPhys)}`, { backing: 'swap', [`pages at ${hex(this.spec.sysramPhys)}`]: 'freed' });
      this.resv.unlock(this.r, thread);
      return;
    }
    this.moveTo('SYSRAM', 'the exporter copies the data out', 'driver');
    if (wasVram) {
      this.reusedBy = reuseBy;
      this.r.step('driver', `the freed VRAM at ${hex(this.spec.vramPhys)} is handed to ${reuseBy}`, { [`VRAM ${hex(this.spec.vramPhys)}`]: `owned by ${reuseBy}` });
    }
    this.resv.unlock(this.r, thread);
  }

  /** An importer's device uses a mapping it still holds. */
  deviceAccess(a: Attachment, t: SgTable): void {
    const e = t.entries[0];
    const stale = !a.mappings.includes(t) || t.placement !== this.where();
    const landed = this.dma.deviceWrite(a.dev, e.dmaAddr, 'a frame');
    if (stale && this.reusedBy && /VRAM|BAR/.test(landed)) {
      terminal('SILENT_CORRUPTION', `${a.dev.name} writes through a mapping taken before the buffer moved: the data lands in VRAM now owned by ${this.reusedBy}`, `VRAM reused by ${this.reusedBy}`);
    }
    if (stale) {
      terminal('SILENT_CORRUPTION', `${a.dev.name} writes to where the buffer used to be (${t.placement}); the buffer now lives at ${this.where()}, so the frame is lost and the old pages are overwritten`, t.placement);
    }
    this.r.step('device', `${a.dev.name}'s DMA lands in ${landed}, the buffer's current backing`);
  }
}

// ---------------------------------------------------------------------------
// Further dma-buf machinery (the rules beyond the first thirteen): kernel
// mappings (iosys_map), CPU caches of a non-coherent SoC and the
// begin/end_cpu_access syncs, references and the fd table, lock ordering
// between mmap_lock and reservation locks, fence slots, and the exporter
// checks of dma_buf_export(). All as drivers/dma-buf/{dma-buf,dma-resv}.c
// (6.12) and kernel/dma/ run them.

/** struct iosys_map: a kernel address that is either system memory or I/O memory. */
export interface IosysMap {
  vaddr: number;
  isIomem: boolean;
}

export function iosysMapIsEqual(a: IosysMap, b: IosysMap): boolean {
  return a.isIomem === b.isIomem && a.vaddr === b.vaddr;
}

/** dma_buf_vmap()/dma_buf_vunmap() with the core's vmap_ptr and counter. */
export class KernelMapping {
  vmapPtr?: IosysMap;
  counter = 0;

  constructor(
    readonly r: Recorder,
    readonly buf: DmaBuf,
    /** The exporter implements .vmap. */
    readonly hasVmap = true,
  ) {}

  /** The exporter's .vmap (TTM's ttm_bo_vmap): a VRAM placement is mapped write-combined as I/O memory. */
  vmap(): { ret: number; map: IosysMap } {
    const cleared: IosysMap = { vaddr: 0, isIomem: false };
    if (!this.hasVmap) {
      this.r.step('kernel', 'dma_buf_vmap() clears the map and returns -EINVAL: the exporter has no .vmap', { ret: '-EINVAL', 'map.vaddr': 'NULL' });
      return { ret: -22, map: cleared };
    }
    if (this.counter) {
      this.counter++;
      return { ret: 0, map: { ...this.vmapPtr! } };
    }
    const iomem = this.buf.placement === 'VRAM';
    const map: IosysMap = { vaddr: iomem ? 0xffffc900_10000000 : 0xffffc900_20000000, isIomem: iomem };
    this.vmapPtr = { ...map };
    this.counter = 1;
    this.r.step('driver', `the exporter's .vmap maps the buffer in ${this.buf.placement === 'VRAM' ? 'VRAM through the BAR, write-combined: I/O memory' : 'system RAM'}`, {
      'map.vaddr': hex(map.vaddr),
      'map.is_iomem': map.isIomem,
    });
    return { ret: 0, map };
  }

  /** dma_buf_vunmap(): BUG_ON(!iosys_map_is_equal(&dmabuf->vmap_ptr, map)). */
  vunmap(map: IosysMap): void {
    if (!this.vmapPtr || this.counter === 0) terminal('CPU_FAULT', 'dma_buf_vunmap() of a buffer that is not vmapped: BUG_ON(iosys_map_is_null(&dmabuf->vmap_ptr))', 'the calling task');
    if (!iosysMapIsEqual(this.vmapPtr, map)) {
      this.r.step('kernel', `dma_buf_vunmap() compares the map with dmabuf->vmap_ptr: is_iomem ${map.isIomem} vs ${this.vmapPtr.isIomem}, vaddr ${hex(map.vaddr)} vs ${hex(this.vmapPtr.vaddr)}`, { iosys_map_is_equal: false });
      terminal('CPU_FAULT', 'kernel BUG at drivers/dma-buf/dma-buf.c: BUG_ON(!iosys_map_is_equal(&dmabuf->vmap_ptr, map)) in dma_buf_vunmap()', 'the calling task');
    }
    if (--this.counter === 0) this.vmapPtr = undefined;
    this.r.step('kernel', 'dma_buf_vunmap() drops the kernel mapping', { vmapping_counter: this.counter });
  }
}

/**
 * Plain-memory CPU access (memcpy/memset, a dereference) through a kernel
 * address. I/O memory mapped as Device memory on arm64 takes no unaligned
 * accesses and no DC ZVA, which memcpy()/memset() use.
 */
export function cpuPlainAccess(r: Recorder, map: IosysMap, cpu: string, what: string): void {
  if (map.vaddr === 0) terminal('CPU_FAULT', `${what} dereferences NULL: the map is cleared when dma_buf_vmap() fails, and nothing checked its result`, 'the calling task');
  if (!map.isIomem) {
    r.step('cpu', `${what} runs on ordinary write-back memory`);
    return;
  }
  if (cpu === 'arm64') {
    r.step('cpu', `${what} issues unaligned loads/stores and DC ZVA on a Device-nGnRE (write-combined I/O) mapping`);
    terminal('CPU_FAULT', `alignment fault on the I/O mapping of VRAM: kernel oops in ${what}`, 'the calling task');
  }
  r.step('cpu', `${what} on x86 goes through the write-combined BAR mapping: it works, slowly, and sparse/KCSAN annotations of __iomem are violated`);
  r.note('on x86 the access happens to work; on arm64 it is an alignment fault');
}

export type Dir = 'DMA_TO_DEVICE' | 'DMA_FROM_DEVICE' | 'DMA_BIDIRECTIONAL';

interface Line {
  /** The CPU cache holds the line. */
  valid: boolean;
  dirty: boolean;
  /** Version of the data in the cache line, and in DRAM. */
  cached: number;
  dram: number;
}

/**
 * The CPU caches over a buffer's pages on a SoC whose DMA is not cache
 * coherent, one line per CPU sg entry, and the syncs of kernel/dma/ as the
 * DMA API defines them: sync_for_cpu invalidates unless the direction is
 * DMA_TO_DEVICE; sync_for_device writes back, except that DMA_FROM_DEVICE
 * only invalidates (dirty lines are dropped, as arm does). On a coherent
 * machine (x86) the caches snoop and every sync is a no-op.
 */
export class CpuCache {
  readonly lines: Line[];
  /** Entries of the table after DMA mapping (IOMMU merging makes it smaller than orig_nents). */
  readonly nents: number;

  constructor(
    readonly r: Recorder,
    readonly coherent: boolean,
    readonly origNents = 4,
    nents = 1,
  ) {
    this.lines = Array.from({ length: origNents }, () => ({ valid: true, dirty: false, cached: 0, dram: 0 }));
    this.nents = nents;
  }

  private state(): Record<string, string> {
    const dirty = this.lines.filter((l) => l.dirty).length;
    const stale = this.lines.filter((l) => l.valid && !l.dirty && l.cached !== l.dram).length;
    return { 'cache lines dirty': `${dirty}/${this.lines.length}`, 'cache lines stale': `${stale}/${this.lines.length}` };
  }

  deviceWrite(version: number, who: string): void {
    for (const l of this.lines) l.dram = version;
    if (this.coherent) for (const l of this.lines) l.cached = version;
    this.r.step('device', `${who} writes new data (version ${version}) to memory${this.coherent ? '; the caches snoop it' : ''}`, this.state());
  }

  cpuWrite(version: number, what: string): void {
    for (const l of this.lines) {
      l.cached = version;
      l.valid = true;
      if (this.coherent) l.dram = version;
      else l.dirty = true;
    }
    this.r.step('cpu', `${what}: the CPU writes version ${version}${this.coherent ? '' : ', which sits in its cache'}`, this.state());
  }

  /** What the CPU sees: the cache line if it holds one, else memory. */
  cpuRead(): number[] {
    return this.lines.map((l) => (l.valid ? l.cached : l.dram));
  }

  /** What the device sees: memory. */
  deviceRead(): number[] {
    return this.lines.map((l) => l.dram);
  }

  /** dma_sync_*_for_cpu / _for_device over the first `count` entries. */
  sync(toDevice: boolean, dir: Dir, count: number, by: string): void {
    if (this.coherent) {
      this.r.step('kernel', `${by}: the device is cache coherent, nothing to do`);
      return;
    }
    const n = Math.min(count, this.lines.length);
    let action: string;
    for (let i = 0; i < n; i++) {
      const l = this.lines[i];
      if (toDevice && dir !== 'DMA_FROM_DEVICE') {
        if (l.dirty) l.dram = l.cached;
        l.dirty = false;
        action = 'cleans (writes back)';
      } else if (toDevice || dir !== 'DMA_TO_DEVICE') {
        l.valid = false;
        l.dirty = false;
        action = 'invalidates (drops, dirty or not)';
      } else action = 'does nothing for';
    }
    this.r.step('kernel', `${by} ${action!} ${n === this.lines.length ? 'every cache line of the buffer' : `the cache lines of the first ${n} of ${this.lines.length} entries`}`, this.state());
  }
}

/** Who holds a reference to the buffer: the exporter's export ref, fds, importers' dma_buf_get(). */
export class BufferRefs {
  refcount = 1;
  released = false;
  readonly holders: string[] = ['the export reference'];
  fds: number[] = [];

  constructor(
    readonly r: Recorder,
    readonly buf: DmaBuf,
  ) {}

  get(who: string): void {
    this.use(`get_dma_buf() by ${who}`);
    this.refcount++;
    this.holders.push(who);
    this.r.step('kernel', `${who} takes a reference (get_file())`, { refcount: this.refcount });
  }

  /** fork()/dup() of an fd: another file-table entry, another reference to the same file. */
  dupFd(fd: number, who: string): void {
    this.use(`${who}`);
    this.refcount++;
    this.fds.push(fd);
    this.holders.push(`fd ${fd}`);
    this.r.step('kernel', `${who}: fd ${fd} refers to the same file, which takes a reference`, { refcount: this.refcount, holders: this.holders.join(', ') });
  }

  /** dma_buf_fd(): fd_install() — the caller's reference now belongs to the fd. */
  fdInstall(fd: number, from = 'the export reference'): void {
    this.use('dma_buf_fd()');
    this.fds.push(fd);
    const i = this.holders.indexOf(from);
    if (i >= 0) this.holders[i] = `fd ${fd}`;
    this.r.step('kernel', `dma_buf_fd() installs fd ${fd} in the process's file table: the reference passed in now belongs to the fd, and any thread of the process can close() it`, { refcount: this.refcount, holders: this.holders.join(', ') });
  }

  /** dma_buf_put()/fput() by `who`; the last one releases the buffer. */
  put(who: string, asHolder?: string): void {
    this.use(`dma_buf_put() by ${who}`);
    this.refcount--;
    const i = asHolder ? this.holders.indexOf(asHolder) : -1;
    if (i >= 0) this.holders.splice(i, 1);
    this.r.step('kernel', `${who} drops a reference`, { refcount: this.refcount, holders: this.holders.join(', ') || 'none' });
    if (this.refcount === 0) this.release();
  }

  /** dma_buf_release(): WARN_ON(!list_empty(&dmabuf->attachments)), the exporter's .release, kfree. */
  release(): void {
    if (this.buf.attachments.length) {
      this.r.step('kernel', `dma_buf_release() finds ${this.buf.attachments.length} attachment(s) still on the list: WARN_ON(!list_empty(&dmabuf->attachments))`, { attachments: this.buf.attachments.length, WARN: 'dma_buf_release' });
    }
    this.released = true;
    this.buf.freed = true;
    this.buf.pagesFreed = true;
    this.r.step('driver', 'the exporter\'s .release frees the buffer object and its pages; the core frees struct dma_buf', { 'struct dma_buf': 'freed', backing: 'freed' });
  }

  /** Any access to struct dma_buf. */
  use(what: string): void {
    if (this.released) terminal('UAF', `${what} touches struct dma_buf after dma_buf_release() freed it: use-after-free`, 'struct dma_buf');
  }

  /** The process closes one of its fds. */
  close(fd: number): void {
    const i = this.fds.indexOf(fd);
    if (i < 0) return;
    this.fds.splice(i, 1);
    this.r.step('user', `user space calls close(${fd})`);
    this.put(`close(${fd})`, `fd ${fd}`);
  }
}

/** Detaching: the exporter's .detach frees its per-attachment state; mappings the importer kept stay in the device. */
export function detachAttachment(r: Recorder, buf: DmaBuf, a: Attachment): SgTable[] {
  const i = buf.attachments.indexOf(a);
  if (i >= 0) buf.attachments.splice(i, 1);
  const orphaned = [...a.mappings];
  r.step('kernel', `dma_buf_detach() takes the attachment off the list and the exporter's .detach frees its state${orphaned.length ? `; sg_table #${orphaned.map((t) => t.id).join(', #')} was never unmapped and stays programmed in ${a.dev.name}` : ''}`, {
    attachments: buf.attachments.length,
    'orphaned mappings': orphaned.length,
  });
  return orphaned;
}

/** A device DMA through a mapping whose backing the exporter has since freed. */
export function deviceWriteOrphan(r: Recorder, buf: DmaBuf, a: Attachment, t: SgTable): never {
  const e = t.entries[0];
  r.step('device', `${a.dev.name} still DMAs to ${hex(e.dmaAddr)} from sg_table #${t.id}`, { dma_addr: hex(e.dmaAddr) });
  if (buf.pagesFreed) terminal('UAF', `the pages behind sg_table #${t.id} were freed by the exporter when the buffer was released: ${a.dev.name} writes into memory the page allocator has handed to someone else`, 'freed pages of the exporter');
  terminal('LEAK', `the exporter can never unmap sg_table #${t.id}: its IOMMU mapping and pin outlive the attachment`, `${a.dev.name}'s IOMMU domain`);
}

/**
 * Threads and the locks they hold or wait for: a wait that closes a cycle is
 * a deadlock. Locks are named ("mmap_lock(mm)", "buf->resv", "fence F").
 */
export class LockGraph {
  private readonly holder = new Map<string, string>();
  private readonly waiting = new Map<string, string>();

  constructor(readonly r: Recorder) {}

  holds(thread: string, lock: string): boolean {
    return this.holder.get(lock) === thread;
  }

  acquire(thread: string, lock: string, why: string): void {
    const h = this.holder.get(lock);
    if (!h) {
      this.holder.set(lock, thread);
      this.r.step('kernel', `${thread}: ${why}; takes ${lock}`, { [lock]: `held by ${thread}` });
      return;
    }
    this.waiting.set(thread, lock);
    this.r.step('kernel', `${thread}: ${why}; ${lock} is held by ${h === thread ? 'T1 itself' : h}, so it waits`, { [lock]: `held by ${h}`, [`${thread} waits for`]: lock });
    // Follow the wait-for chain from the holder.
    const chain = [thread];
    let cur = h;
    for (let i = 0; i < 8; i++) {
      chain.push(cur);
      if (cur === thread) terminal('DEADLOCK', `${chain.join(' waits for ')}: a cycle through ${[...this.waiting.values()].join(' and ')}; nobody can make progress`, chain.slice(0, -1).join(' and '));
      const next = this.waiting.get(cur);
      if (!next) break;
      const nh = this.holder.get(next);
      if (!nh) break;
      cur = nh;
    }
  }

  release(thread: string, lock: string): void {
    if (this.holder.get(lock) === thread) this.holder.delete(lock);
    this.r.step('kernel', `${thread} releases ${lock}`, { [lock]: 'free' });
  }
}

/** The fence slots of a dma_resv (struct dma_resv_list): reserve, add, and the reset on unlock. */
export class FenceSlots {
  num: number;
  max: number;

  constructor(
    readonly r: Recorder,
    readonly name: string,
    used: number,
    max: number,
  ) {
    this.num = used;
    this.max = max;
  }

  reserve(n: number): void {
    if (this.num + n > this.max) this.max = Math.max(this.num + n, this.max * 2, 4);
    this.r.step('kernel', `dma_resv_reserve_fences(${this.name}, ${n}) makes room`, { num_fences: this.num, max_fences: this.max });
  }

  /** dma_resv_add_fence(): a new context needs a free slot. */
  add(what: string): void {
    this.r.step('kernel', `dma_resv_add_fence(${this.name}, ${what}) looks for a slot`, { num_fences: this.num, max_fences: this.max });
    if (this.num >= this.max) terminal('CPU_FAULT', `kernel BUG at drivers/dma-buf/dma-resv.c: BUG_ON(fobj->num_fences >= fobj->max_fences) in dma_resv_add_fence()`, 'the submitting task');
    this.num++;
  }

  /** dma_resv_unlock() -> dma_resv_reset_max_fences() (CONFIG_DEBUG_MUTEXES): unused reservations are dropped. */
  unlock(): void {
    this.max = this.num;
    this.r.step('kernel', `dma_resv_unlock() resets max_fences to num_fences (dma_resv_reset_max_fences())`, { num_fences: this.num, max_fences: this.max });
  }
}

/** What dma_buf_export() checks before it creates the buffer (drivers/dma-buf/dma-buf.c, 6.12). */
export interface ExportOps {
  map_dma_buf: boolean;
  unmap_dma_buf: boolean;
  release: boolean;
  pin: boolean;
  unpin: boolean;
  cache_sgt_mapping: boolean;
}

export function dmaBufExport(r: Recorder, ops: ExportOps, info: { priv: boolean; resvGarbage?: boolean } = { priv: true }): void {
  const fail = (cond: string) => {
    r.step('kernel', `dma_buf_export() checks the ops: WARN_ON(${cond}) fires`, { ret: 'ERR_PTR(-EINVAL)' });
    terminal('WARN', `dma_buf_export() WARNs (${cond}) and returns ERR_PTR(-EINVAL): this exporter can never export a buffer`, 'every export of this driver');
  };
  if (!info.priv || !ops.map_dma_buf || !ops.unmap_dma_buf || !ops.release)
    fail(['!exp_info->priv', '!ops->map_dma_buf', '!ops->unmap_dma_buf', '!ops->release'].filter((_, i) => [!info.priv, !ops.map_dma_buf, !ops.unmap_dma_buf, !ops.release][i]).join(' || '));
  if (ops.cache_sgt_mapping && (ops.pin || ops.unpin)) fail('ops->cache_sgt_mapping && (ops->pin || ops->unpin)');
  if (ops.pin !== ops.unpin) fail('!exp_info->ops->pin != !exp_info->ops->unpin');
  if (info.resvGarbage) {
    r.step('kernel', 'dma_buf_export() takes exp_info->resv, stack garbage, as the buffer\'s reservation object', { 'dmabuf->resv': '0x5a5a5a5a5a5a5a5a' });
    r.step('kernel', 'the first dma_resv_lock() on the buffer (an attach, a fence wait) dereferences it');
    terminal('CPU_FAULT', 'general protection fault: dma_resv_lock() on the garbage reservation pointer 0x5a5a5a5a5a5a5a5a', 'the first task that touches the buffer');
  }
  r.step('kernel', 'dma_buf_export() accepts the ops and creates the buffer');
}
