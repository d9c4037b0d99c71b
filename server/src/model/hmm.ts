/**
 * CPU page tables, device-private swap entries and migrate_vma, as
 * mm/memory.c do_swap_page() and mm/migrate_device.c (6.12) run them.
 *
 * do_swap_page() on a device-private entry takes a reference on the page and
 * locks it (since 16ce101db85d, 6.1), then calls pgmap->ops->migrate_to_ram().
 * migrate_vma_collect_pmd() trylocks every source page unless it is
 * args->fault_page, which the caller already holds locked.
 */
import { Page } from './memory';
import { hex, type Recorder, terminal } from './run';

export type Pte = { kind: 'present'; page: Page } | { kind: 'device-private'; page: Page } | { kind: 'migration'; page: Page } | { kind: 'none' };

export interface MigrateArgs {
  start: number;
  end: number;
  selectDevicePrivate: boolean;
  faultPage?: Page;
  pgmapOwner?: string;
}

export class AddressSpace {
  readonly ptes = new Map<number, Pte>();
  constructor(readonly r: Recorder) {}

  /** migrate_vma_setup(): collect and isolate the pages of [start, end) that the flags select. */
  migrateVmaSetup(args: MigrateArgs): { cpages: number; collected: Page[] } {
    const collected: Page[] = [];
    for (let va = args.start; va < args.end; va += 4096) {
      const pte = this.ptes.get(va) ?? { kind: 'none' };
      if (pte.kind !== 'device-private' || !args.selectDevicePrivate) continue;
      if (args.pgmapOwner !== undefined && pte.page.pgmap?.spec.owner !== args.pgmapOwner) continue;
      const page = pte.page;
      if (page === args.faultPage) {
        this.r.step('kernel', `migrate_vma_collect sees the faulting page at ${hex(va)}: it is args->fault_page, already locked by the fault path, and takes it`, { cpages: collected.length + 1 });
      } else if (page.locked) {
        this.r.step('kernel', `migrate_vma_collect tries trylock_page() on the device-private page at ${hex(va)}: it is locked (by the fault path itself), so the page is skipped`, { cpages: collected.length });
        continue;
      } else {
        page.locked = true;
      }
      collected.push(page);
      this.ptes.set(va, { kind: 'migration', page });
    }
    this.r.step('kernel', `migrate_vma_setup() returns 0 with cpages = ${collected.length}`, { cpages: collected.length });
    return { cpages: collected.length, collected };
  }

  /**
   * A CPU access to `va`. For a device-private entry, do_swap_page() locks the
   * page and calls migrate_to_ram(); the handler decides what to migrate.
   * Retries the access the way the fault path does, a bounded number of times.
   */
  cpuAccess(va: number, migrateToRam: (vmfPage: Page) => void, maxRetries = 3): void {
    for (let attempt = 1; attempt <= maxRetries; attempt++) {
      const pte = this.ptes.get(va) ?? { kind: 'none' };
      if (pte.kind === 'present') {
        this.r.step('cpu', `the access to ${hex(va)} hits a present PTE and completes`);
        return;
      }
      if (pte.kind !== 'device-private') {
        this.r.step('cpu', `the access to ${hex(va)} finds ${pte.kind === 'migration' ? 'a migration entry and waits' : 'no PTE'}`);
        return;
      }
      const page = pte.page;
      this.r.step('cpu', `${attempt === 1 ? 'the CPU touches' : 'the CPU retries'} ${hex(va)}: the PTE is a device-private swap entry, so it faults`, { pte: 'DEVICE_PRIVATE_SWP' });
      page.refcount++;
      page.locked = true;
      this.r.step('kernel', 'do_swap_page() takes a reference on the device-private page and locks it, then calls pgmap->ops->migrate_to_ram(vmf)', {
        'page locked': true,
        'page refcount': page.refcount,
      });
      migrateToRam(page);
      page.locked = false;
      page.refcount--;
      const after = this.ptes.get(va);
      if (after?.kind === 'present') {
        this.r.step('cpu', `the access to ${hex(va)} retries and completes from system RAM`);
        return;
      }
      this.r.step('kernel', 'migrate_to_ram() returns 0, the fault is "handled", and the CPU returns to the same instruction', { pte: 'DEVICE_PRIVATE_SWP (unchanged)' });
    }
    terminal('LIVELOCK', `the CPU faults on ${hex(va)} forever: every fault calls migrate_to_ram(), which migrates nothing, and the device-private entry stays`, 'the faulting task');
  }
}

// ===========================================================================
// The rest of the hmm family's machine: the mmap lock and VMAs, the
// mmu_interval_notifier sequence, hmm_range_fault(), the migrate_vma
// sequence with migration entries (SELECT_SYSTEM as well), GUP with its
// FOLL_* checks, and a device page table. Additive: nothing above changes.
// ===========================================================================

/** What a page holds, and who it belongs to now (for "someone else's memory" outcomes). */
const contents = new WeakMap<Page, string>();
const owners = new WeakMap<Page, string>();
const pins = new WeakMap<Page, number>();

export function pageData(p: Page): string {
  return contents.get(p) ?? 'zeroes';
}
export function setPageData(p: Page, data: string): void {
  contents.set(p, data);
}
export function pageOwner(p: Page): string {
  return owners.get(p) ?? 'the process';
}
export function setPageOwner(p: Page, owner: string): void {
  owners.set(p, owner);
}
export function pinCount(p: Page): number {
  return pins.get(p) ?? 0;
}

/** mm->mmap_lock: an rwsem. */
export class MmapLock {
  readonly readers = new Set<string>();
  writer?: string;

  readLock(r: Recorder, t: string): void {
    this.readers.add(t);
    r.step('kernel', `${t} takes mmap_read_lock(mm)`, { mmap_lock: `read-held by ${[...this.readers].join(', ')}` });
  }
  readUnlock(r: Recorder, t: string): void {
    this.readers.delete(t);
    r.step('kernel', `${t} drops mmap_read_lock(mm)`, { mmap_lock: this.readers.size ? `read-held by ${[...this.readers].join(', ')}` : 'free' });
  }
  heldBy(t: string): boolean {
    return this.readers.has(t) || this.writer === t;
  }
  /** Whether a writer (munmap) can get in now. */
  free(): boolean {
    return !this.readers.size && !this.writer;
  }
}

export interface Vma {
  start: number;
  end: number;
  /** VM_IO | VM_PFNMAP: a BAR mapped with io_remap_pfn_range(). */
  pfnmap?: boolean;
  /** For a PFN mapping: the physical address of `start`. */
  physStart?: number;
  freed?: boolean;
}

/** An mmu_interval_notifier's sequence as mmu_interval_read_begin()/read_retry() see it. */
export class IntervalNotifier {
  /** mmu_notifier_subscriptions->invalidate_seq starts at 2 and moves on by 2 per invalidation here. */
  seq = 2;
  constructor(readonly r: Recorder, readonly name = 'the driver\'s interval notifier') {}

  readBegin(): number {
    this.r.step('driver', `mmu_interval_read_begin() returns sequence ${this.seq}`, { notifier_seq: this.seq });
    return this.seq;
  }

  /** An invalidation: the core calls invalidate(), the driver bumps the sequence (mmu_interval_set_seq) and zaps its device mappings. */
  invalidate(why: string, zap: () => void): void {
    this.seq += 2;
    this.r.step('kernel', `${why}: the core calls the notifier's invalidate(); the driver sets the sequence to ${this.seq} and zaps its device mappings of the range`, { 'notifier seq': this.seq });
    zap();
  }

  readRetry(seq: number): boolean {
    const retry = this.seq !== seq;
    this.r.step('driver', `mmu_interval_read_retry(notifier, ${seq}) returns ${retry} (the sequence is ${this.seq})`, { retry });
    return retry;
  }
}

export interface HmmRange {
  start: number;
  end: number;
  notifier?: IntervalNotifier;
  notifierSeq: number;
  /** HMM_PFN_REQ_FAULT in default_flags. */
  reqFault: boolean;
  /** range->dev_private_owner. */
  owner?: string;
  /** Output: one entry per page, 0 when not valid. */
  pfns: Array<{ valid: boolean; page?: Page; device?: boolean }>;
}

export const EBUSY = -16;
export const EFAULT = -14;
export const EINVAL = -22;
export const EREMOTEIO = -121;

/** FOLL_* flags the model knows. */
export type Foll = 'FOLL_WRITE' | 'FOLL_LONGTERM' | 'FOLL_PCI_P2PDMA' | 'FOLL_PIN';

export interface MigrateSel {
  system?: boolean;
  devicePrivate?: boolean;
  owner?: string;
  faultPage?: Page;
}

export interface Migration {
  collected: Array<{ va: number; page: Page }>;
  finalized: boolean;
}

/** The rest of a process's address space: VMAs, the mmap lock, the device's page table. */
export class Mm {
  readonly lock = new MmapLock();
  readonly vmas: Vma[] = [];
  /** The device's page table for this process (a GPU mirroring it): va -> page. */
  readonly devPt = new Map<number, Page>();
  private nextPfn = 0x2_0000;
  /** Pages freed back to the allocator, handed to the next allocation. */
  private readonly freeList: Page[] = [];

  constructor(readonly r: Recorder, readonly as: AddressSpace) {}

  /** A fresh system RAM page (reusing freed ones first, as the page allocator does). */
  allocPage(owner = 'the process', data = 'zeroes'): Page {
    const p = this.freeList.shift() ?? new Page(this.nextPfn++);
    setPageOwner(p, owner);
    setPageData(p, data);
    return p;
  }

  vmaAt(va: number): Vma | undefined {
    return this.vmas.find((v) => !v.freed && va >= v.start && va < v.end);
  }

  /** munmap() by another thread: needs the mmap lock for write; zaps the range through the notifier and frees the pages. */
  munmap(t: string, start: number, end: number, notifier?: IntervalNotifier): 'done' | 'blocked' {
    if (!this.lock.free()) {
      this.r.step('kernel', `${t} calls munmap(): it needs mmap_write_lock(), held off by ${[...this.lock.readers].join(', ')}`, { mmap_lock: 'contended' });
      return 'blocked';
    }
    this.r.step('kernel', `${t} calls munmap(${hex(start)}, ${hex(end - start)}): nothing holds the mmap lock, so it gets it for write at once`, { mmap_lock: `write-held by ${t}` });
    const zap = () => {
      for (const va of [...this.devPt.keys()]) if (va >= start && va < end) this.devPt.delete(va);
    };
    if (notifier) notifier.invalidate(`${t}'s munmap() invalidates ${hex(start)}-${hex(end)}`, zap);
    for (let va = start; va < end; va += 4096) {
      const pte = this.as.ptes.get(va);
      if (pte?.kind === 'present' && !pte.page.pgmap) {
        this.freeList.push(pte.page);
        this.r.step('kernel', `munmap() frees pfn ${hex(pte.page.pfn)} back to the page allocator`, { [`pfn ${hex(pte.page.pfn)}`]: 'free' });
      }
      this.as.ptes.delete(va);
    }
    for (const v of this.vmas) if (v.start >= start && v.end <= end) v.freed = true;
    this.r.step('kernel', `munmap() frees the VMA and the page tables of the range and drops the lock`, { vma: 'freed', mmap_lock: 'free' });
    return 'done';
  }

  /**
   * hmm_range_fault() by thread `t` (mm/hmm.c): reads range->notifier->mm,
   * asserts the mmap lock, returns -EBUSY when the sequence is stale, then
   * walks the range, faulting what it must (device-private pages of another
   * owner through `migrateToRam`).
   */
  hmmRangeFault(t: string, range: HmmRange, migrateToRam?: (page: Page, va: number) => Page, during?: () => void): number {
    if (!range.notifier) {
      this.r.step('kernel', 'hmm_range_fault() starts with range->notifier->mm: range->notifier is NULL');
      terminal('CPU_FAULT', 'NULL pointer dereference in hmm_range_fault() (range->notifier->mm): kernel oops in the fault path', 'the faulting task');
    }
    if (!this.lock.heldBy(t)) this.r.step('kernel', `mmap_assert_locked() fails for ${t} (a lockdep splat with CONFIG_LOCKDEP, nothing otherwise) and the walk goes on without the lock`, { mmap_lock: 'not held' });
    if (range.notifierSeq !== range.notifier.seq) {
      this.r.step('kernel', `mmu_interval_check_retry(notifier, ${range.notifierSeq}) is true (the sequence is ${range.notifier.seq}): hmm_range_fault() returns -EBUSY`, { ret: '-EBUSY' });
      return EBUSY;
    }
    range.pfns = [];
    // Another thread runs while the walk is under way (it gets in only if the walk holds no mmap lock).
    if (during) during();
    for (let va = range.start; va < range.end; va += 4096) {
      const vma = this.vmaAt(va);
      if (!vma) {
        this.r.step('kernel', `the walk reaches ${hex(va)}, whose VMA ${this.vmas.some((v) => v.freed) ? 'was freed under it' : 'does not exist'}`);
        if (this.vmas.some((v) => v.freed && va >= v.start && va < v.end)) terminal('UAF', `the walk reads the freed VMA and page tables of ${hex(va)}: use-after-free`, 'vm_area_struct and page tables');
        return EFAULT;
      }
      let pte = this.as.ptes.get(va) ?? ({ kind: 'none' } as Pte);
      if (pte.kind === 'device-private') {
        const page = pte.page;
        if (range.owner !== undefined && page.pgmap?.spec.owner === range.owner) {
          range.pfns.push({ valid: true, page, device: true });
          this.r.step('kernel', `${hex(va)} is a device-private entry of owner ${range.owner}: reported as a device PFN`, { [`pfn[${hex(va)}]`]: 'VALID (device)' });
          continue;
        }
        this.r.step('kernel', `${hex(va)} is a device-private entry whose pgmap->owner (${page.pgmap?.spec.owner}) is not range->dev_private_owner (${range.owner ?? 'NULL'}): hmm_range_fault() faults it like a CPU access`, { [`pfn[${hex(va)}]`]: 'fault' });
        if (!migrateToRam) return EFAULT;
        const np = migrateToRam(page, va);
        this.as.ptes.set(va, { kind: 'present', page: np });
        pte = { kind: 'present', page: np };
      }
      if (pte.kind === 'none') {
        if (!range.reqFault) {
          range.pfns.push({ valid: false });
          this.r.step('kernel', `${hex(va)} is not populated and the range does not ask for faulting: its entry is 0 (not HMM_PFN_VALID)`, { [`pfn[${hex(va)}]`]: '0' });
          continue;
        }
        const np = this.allocPage();
        this.as.ptes.set(va, { kind: 'present', page: np });
        pte = { kind: 'present', page: np };
      }
      if (pte.kind === 'present') {
        range.pfns.push({ valid: true, page: pte.page });
        this.r.step('kernel', `${hex(va)} maps pfn ${hex(pte.page.pfn)}: HMM_PFN_VALID`, { [`pfn[${hex(va)}]`]: hex(pte.page.pfn) });
      }
    }
    this.r.step('kernel', 'hmm_range_fault() returns 0', { ret: 0 });
    return 0;
  }

  /**
   * GUP of one page at `va` (mm/gup.c): is_valid_gup_args(), check_vma_flags(),
   * then the page, faulting device-private entries back to RAM and refusing
   * P2PDMA pages without FOLL_PCI_P2PDMA.
   */
  gup(t: string, va: number, flags: ReadonlySet<Foll>, migrateToRam?: (page: Page, va: number) => Page): { ret: number; page?: Page } {
    if (flags.has('FOLL_LONGTERM') && flags.has('FOLL_PCI_P2PDMA')) {
      this.r.step('kernel', 'is_valid_gup_args(): FOLL_LONGTERM with FOLL_PCI_P2PDMA trips WARN_ON_ONCE ("We want to allow the pgmap to be hot-unplugged at all times") and the call returns -EINVAL', { ret: '-EINVAL' });
      terminal('WARN', 'the pin WARNs (is_valid_gup_args) and fails with -EINVAL every time: this registration can never succeed', 'the pinning ioctl');
    }
    const vma = this.vmaAt(va);
    if (!vma) return { ret: EFAULT };
    if (vma.pfnmap) {
      this.r.step('kernel', `check_vma_flags(): the VMA at ${hex(va)} is VM_IO|VM_PFNMAP (a BAR mapping, no struct pages to pin): GUP returns -EFAULT`, { ret: '-EFAULT' });
      return { ret: EFAULT };
    }
    let pte = this.as.ptes.get(va);
    if (pte?.kind === 'device-private') {
      this.r.step('kernel', `GUP finds a device-private swap entry at ${hex(va)}: it faults, and the fault migrates the page back to system RAM`);
      if (!migrateToRam) return { ret: EFAULT };
      const np = migrateToRam(pte.page, va);
      this.as.ptes.set(va, { kind: 'present', page: np });
      pte = { kind: 'present', page: np };
    }
    if (!pte || pte.kind !== 'present') return { ret: EFAULT };
    const page = pte.page;
    if (page.pgmap?.type === 'P2PDMA' && !flags.has('FOLL_PCI_P2PDMA')) {
      this.r.step('kernel', `try_grab_folio(): ${page.describe()} is PCI P2PDMA memory and FOLL_PCI_P2PDMA is not set: -EREMOTEIO`, { ret: '-EREMOTEIO' });
      return { ret: EREMOTEIO };
    }
    pins.set(page, pinCount(page) + 1);
    page.refcount++;
    this.r.step('kernel', `${t} pins ${page.describe()} at ${hex(va)}${flags.size ? ` (${[...flags].join('|')})` : ''}`, { pincount: pinCount(page) });
    return { ret: 1, page };
  }

  /**
   * migrate_vma_setup() with system-memory selection as well: present
   * pages are collected only with MIGRATE_VMA_SELECT_SYSTEM, locked,
   * replaced by migration entries; pinned pages are put back (the
   * migrate_vma_check_page() refcount test). Device-private entries go
   * through AddressSpace.migrateVmaSetup().
   */
  migrateSetup(t: string, start: number, end: number, sel: MigrateSel): Migration {
    if (!this.lock.heldBy(t)) {
      const vma = this.vmas.find((v) => start >= v.start && start < v.end);
      if (vma?.freed) {
        this.r.step('kernel', `${t}'s migrate_vma_setup() starts on the VMA it was given, with no mmap lock held`, { vma: 'freed' });
        terminal('UAF', `migrate_vma_setup() walks the VMA and page tables at ${hex(start)}, which munmap() freed under it: use-after-free`, 'vm_area_struct and page tables');
      }
    }
    const m: Migration = { collected: [], finalized: false };
    for (let va = start; va < end; va += 4096) {
      const pte = this.as.ptes.get(va);
      if (pte?.kind !== 'present' || pte.page.pgmap) continue;
      if (!sel.system) {
        this.r.step('kernel', `migrate_vma_collect skips the system page at ${hex(va)}: MIGRATE_VMA_SELECT_SYSTEM is not in args->flags`);
        continue;
      }
      if (pinCount(pte.page)) {
        this.r.step('kernel', `migrate_vma_check_page() sees extra references on the page at ${hex(va)} (it is pinned): it is not migrated`);
        continue;
      }
      pte.page.locked = true;
      this.as.ptes.set(va, { kind: 'migration', page: pte.page });
      m.collected.push({ va, page: pte.page });
      this.r.step('kernel', `migrate_vma_setup() locks the page at ${hex(va)}, isolates it and replaces its PTE with a migration entry`, { [`pte ${hex(va)}`]: 'MIGRATION_ENTRY', 'page locked': true });
    }
    if (!sel.devicePrivate) {
      this.r.step('kernel', `migrate_vma_setup() returns 0 with cpages = ${m.collected.length}`, { cpages: m.collected.length });
      return m;
    }
    const dp = this.as.migrateVmaSetup({ start, end, selectDevicePrivate: true, pgmapOwner: sel.owner ?? 'NULL', faultPage: sel.faultPage });
    // Device-private pages the walk collected become migration entries too.
    for (let va = start; va < end; va += 4096) {
      const pte = this.as.ptes.get(va);
      if (pte?.kind === 'migration' && dp.collected.includes(pte.page)) m.collected.push({ va, page: pte.page });
    }
    return m;
  }

  /** migrate_vma_pages() + migrate_vma_finalize(): PTEs point at the new pages (or back at the old ones), sources and destinations are unlocked. */
  migrateFinish(m: Migration, dst: Map<number, Page>): void {
    for (const { va, page } of m.collected) {
      const np = dst.get(va);
      this.as.ptes.set(va, np ? { kind: 'present', page: np } : page.pgmap?.type === 'PRIVATE' ? { kind: 'device-private', page } : { kind: 'present', page });
      page.locked = false;
      if (np) {
        // folio_unlock(): folio_xor_flags_has_waiters() flips PG_locked.
        const was = np.locked;
        np.locked = !np.locked;
        if (!was) this.r.step('kernel', `migrate_vma_finalize() calls folio_unlock() on the destination page (pfn ${hex(np.pfn)}), which nobody locked: the XOR on PG_locked sets the lock bit instead (VM_BUG_ON_FOLIO with CONFIG_DEBUG_VM)`, { [`pfn ${hex(np.pfn)}`]: 'locked, no owner' });
      }
    }
    m.finalized = true;
    this.r.step('kernel', 'migrate_vma_pages() and migrate_vma_finalize() replace the migration entries and unlock the pages', { migration: 'finalized' });
  }

  /** A CPU access by thread `t` to `va` (do_swap_page on migration entries waits for the page lock). */
  touch(t: string, va: number, pending?: Migration): void {
    const pte = this.as.ptes.get(va);
    if (pte?.kind === 'migration') {
      this.r.step('cpu', `${t} touches ${hex(va)}: the PTE is a migration entry, so it sleeps in migration_entry_wait() until the page is unlocked`, { [t]: 'waiting on page lock' });
      if (pte.page.locked && (!pending || !pending.finalized)) terminal('HANG', `nothing will ever finalize this migration: the page stays locked and the PTE a migration entry, so ${t} sleeps forever (and every later access to ${hex(va)} joins it)`, t);
      return;
    }
    if (pte?.kind === 'present' && pte.page.locked) {
      this.r.step('kernel', `${t} needs the page at ${hex(va)} locked (reclaim, a write fault or page migration): lock_page() waits for PG_locked to clear`, { [t]: 'waiting on page lock' });
      terminal('HANG', `PG_locked on pfn ${hex(pte.page.pfn)} was set by an unlock of an unlocked page and no one owns it: ${t} waits forever`, t);
    }
    this.r.step('cpu', `${t}'s access to ${hex(va)} completes`);
  }
}

/** Who owns each part of a BAR the device driver allocates from (VRAM buffer objects). */
export class BarAllocator {
  private readonly owners = new Map<number, string>();
  constructor(readonly r: Recorder, readonly name: string) {}

  give(offset: number, owner: string, why: string): void {
    this.owners.set(offset, owner);
    this.r.step('driver', why, { [`${this.name}+${hex(offset)}`]: owner });
  }

  ownerAt(offset: number): string | undefined {
    return this.owners.get(offset);
  }
}
