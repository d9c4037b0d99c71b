/**
 * CPU page tables, device-private swap entries and migrate_vma, as
 * mm/memory.c do_swap_page() and mm/migrate_device.c (6.12) run them.
 *
 * do_swap_page() on a device-private entry takes a reference on the page and
 * locks it (since 16ce101db85d, 6.1), then calls pgmap->ops->migrate_to_ram().
 * migrate_vma_collect_pmd() trylocks every source page unless it is
 * args->fault_page, which the caller already holds locked.
 */
import type { Page } from './memory';
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
