/**
 * dma-buf vocabulary: which calls need the reservation lock, which must not
 * hold it, which return ERR_PTR, which callbacks run with the lock held.
 * Checked against drivers/dma-buf/dma-buf.c in 6.12 ("DOC: locking convention",
 * and the dma_resv_assert_held() calls at the top of each locked entry point).
 */

/** Importer calls that assert the reservation lock is held (6.2+). */
export const MUST_HOLD = new Set([
  'dma_buf_pin',
  'dma_buf_unpin',
  'dma_buf_map_attachment',
  'dma_buf_unmap_attachment',
  'dma_buf_vmap',
  'dma_buf_vunmap',
  'dma_buf_move_notify',
]);

/** Calls that take the reservation lock themselves: calling them with it held self-deadlocks. */
export const MUST_NOT_HOLD = new Set([
  'dma_buf_attach',
  'dma_buf_dynamic_attach',
  'dma_buf_detach',
  'dma_buf_map_attachment_unlocked',
  'dma_buf_unmap_attachment_unlocked',
  'dma_buf_vmap_unlocked',
  'dma_buf_vunmap_unlocked',
]);

/** Calls whose failure is an ERR_PTR, never NULL. */
export const ERRPTR_RETURNING = new Set([
  'dma_buf_get',
  'dma_buf_export',
  'dma_buf_attach',
  'dma_buf_dynamic_attach',
  'dma_buf_map_attachment',
  'dma_buf_map_attachment_unlocked',
]);

/** Calls that hand back an importer's view of an exporter's sg_table. */
export const IMPORTED_SGT_SOURCES = new Set(['dma_buf_map_attachment', 'dma_buf_map_attachment_unlocked']);

/** Calls that give the caller a dma-buf or attachment it did not have (so it cannot already hold its lock). */
export const OBTAINS_BUFFER = new Set(['dma_buf_get', 'dma_buf_export', 'dma_buf_attach', 'dma_buf_dynamic_attach']);

/**
 * Callbacks the core invokes with the buffer's reservation lock held (6.12):
 * dma_buf_ops pin/unpin/map_dma_buf/unmap_dma_buf/vmap/vunmap (the locked
 * entry points assert the lock before calling them), the importer's
 * move_notify (dma_buf_move_notify asserts it), drm_gem_object_funcs
 * pin/unpin/vmap/vunmap (drm_gem_pin_locked, drm_gem_vmap), and the TTM
 * callbacks TTM runs with the buffer reserved.
 */
export const LOCKED_ROLES = new Set([
  'dma_buf_ops.pin',
  'dma_buf_ops.unpin',
  'dma_buf_ops.map_dma_buf',
  'dma_buf_ops.unmap_dma_buf',
  'dma_buf_ops.vmap',
  'dma_buf_ops.vunmap',
  'dma_buf_attach_ops.move_notify',
  'dma_buf_attach_ops.invalidate_mappings',
  'drm_gem_object_funcs.pin',
  'drm_gem_object_funcs.unpin',
  'drm_gem_object_funcs.vmap',
  'drm_gem_object_funcs.vunmap',
  'ttm_device_funcs.move',
  // ttm_bo.c: ttm_bo_cleanup_memtype_use() ("Call bo::reserved"), ttm_bo_evict() after
  // dma_resv_assert_held(), the swapout path, and ttm_tt_unpopulate() from the reserved destroy path.
  'ttm_device_funcs.delete_mem_notify',
  'ttm_device_funcs.evict_flags',
  'ttm_device_funcs.swap_notify',
  'ttm_device_funcs.ttm_tt_unpopulate',
  // i915_gem_pages.c: ____i915_gem_object_get_pages() and __i915_gem_object_put_pages()
  // call them after assert_object_held_shared() (the i915 object lock is its dma_resv).
  'drm_i915_gem_object_ops.get_pages',
  'drm_i915_gem_object_ops.put_pages',
]);

/** Role fields that are unambiguous even when the table's type is not written. */
export const LOCKED_FIELDS_ANY_TYPE = new Set(['move_notify', 'map_dma_buf', 'unmap_dma_buf']);

/** Callbacks the core invokes without the lock (they may take it). */
export const UNLOCKED_ROLES = new Set([
  'dma_buf_ops.attach',
  'dma_buf_ops.detach',
  'dma_buf_ops.release',
  'dma_buf_ops.begin_cpu_access',
  'dma_buf_ops.end_cpu_access',
  'dma_buf_ops.mmap',
  'file_operations.unlocked_ioctl',
  'pci_driver.probe',
  'platform_driver.probe',
]);

export type LockEffectKind = 'acquire' | 'try' | 'release' | 'assert' | 'release-all';

export interface LockFn {
  kind: LockEffectKind;
  /** Argument holding the locked object. */
  arg: number;
  /** The call returns an int that is non-zero when the lock was NOT taken. */
  conditional?: boolean;
  /** Path from the argument to the resv it locks (`.base.resv` for a TTM bo). */
  suffix?: string;
}

/** Reservation-lock primitives and well-known wrappers across the tree. */
export const LOCK_FNS: Record<string, LockFn> = {
  dma_resv_lock: { kind: 'acquire', arg: 0, conditional: true },
  dma_resv_lock_interruptible: { kind: 'acquire', arg: 0, conditional: true },
  dma_resv_lock_slow: { kind: 'acquire', arg: 0 },
  dma_resv_lock_slow_interruptible: { kind: 'acquire', arg: 0, conditional: true },
  dma_resv_trylock: { kind: 'try', arg: 0 },
  dma_resv_unlock: { kind: 'release', arg: 0 },
  dma_resv_assert_held: { kind: 'assert', arg: 0 },
  ttm_bo_reserve: { kind: 'acquire', arg: 0, conditional: true, suffix: '.base.resv' },
  ttm_bo_reserve_slowpath: { kind: 'acquire', arg: 0, conditional: true, suffix: '.base.resv' },
  ttm_bo_unreserve: { kind: 'release', arg: 0, suffix: '.base.resv' },
  amdgpu_bo_reserve: { kind: 'acquire', arg: 0, conditional: true, suffix: '.tbo.base.resv' },
  amdgpu_bo_unreserve: { kind: 'release', arg: 0, suffix: '.tbo.base.resv' },
  xe_bo_lock: { kind: 'acquire', arg: 0, conditional: true, suffix: '.ttm.base.resv' },
  xe_bo_unlock: { kind: 'release', arg: 0, suffix: '.ttm.base.resv' },
  xe_bo_assert_held: { kind: 'assert', arg: 0, suffix: '.ttm.base.resv' },
  i915_gem_object_lock: { kind: 'acquire', arg: 0, conditional: true, suffix: '.base.resv' },
  i915_gem_object_lock_interruptible: { kind: 'acquire', arg: 0, conditional: true, suffix: '.base.resv' },
  i915_gem_object_trylock: { kind: 'try', arg: 0, suffix: '.base.resv' },
  i915_gem_object_unlock: { kind: 'release', arg: 0, suffix: '.base.resv' },
  assert_object_held: { kind: 'assert', arg: 0, suffix: '.base.resv' },
  drm_exec_lock_obj: { kind: 'acquire', arg: 1, conditional: true, suffix: '.resv' },
  drm_exec_prepare_obj: { kind: 'acquire', arg: 1, conditional: true, suffix: '.resv' },
  drm_exec_fini: { kind: 'release-all', arg: 0 },
  drm_exec_unlock_all: { kind: 'release-all', arg: 0 },
  msm_gem_lock: { kind: 'acquire', arg: 0, suffix: '.resv' },
  msm_gem_unlock: { kind: 'release', arg: 0, suffix: '.resv' },
  msm_gem_assert_locked: { kind: 'assert', arg: 0, suffix: '.resv' },
};
