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
  attach(thread: string, dev: DeviceInfo, opts: { dynamic: boolean; peer2peer?: boolean; moveNotify?: Attachment['moveNotify'] }): Attachment {
    if (this.resv.holder === thread) {
      this.r.step('kernel', `dma_buf_${opts.dynamic ? 'dynamic_' : ''}attach() takes the reservation lock to set up the attachment`);
      this.resv.lock(this.r, thread);
    }
    if (opts.dynamic && opts.moveNotify === 'missing') {
      this.r.step('kernel', 'dma_buf_dynamic_attach() checks importer_ops->move_notify: missing, WARN_ON fires', { attachment: 'refused' });
      terminal('WARN', 'dma_buf_dynamic_attach() WARNs and returns ERR_PTR(-EINVAL): a dynamic importer must be told when the exporter moves the buffer', 'the import');
    }
    let peer2peer = !!(opts.dynamic && opts.peer2peer);
    if (peer2peer && this.dma.fabric.route(dev.bdf, this.spec.exporter.bdf).mapType === 'not-supported') {
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
