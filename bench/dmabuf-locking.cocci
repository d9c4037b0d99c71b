// DMA Lens benchmark (scripts/bench.js): the Coccinelle equivalent of
// DMABUF-LOCKING's basic check, run over the same kernel tree in the same run.
//
// Reports dma_buf_map_attachment() reached on some path from the start of its
// function without a dma_resv_lock*() call before it. (DMA Lens also knows
// lock wrappers, callers that hold the lock, callback roles and the
// workspace; Coccinelle here does not, as in toolchain.md.)
//
//   spatch --sp-file bench/dmabuf-locking.cocci --dir TREE --very-quiet

@r exists@
position p;
@@

... when != dma_resv_lock(...)
    when != dma_resv_lock_interruptible(...)
    when != dma_resv_lock_slow(...)
    when != dma_resv_trylock(...)
dma_buf_map_attachment@p(...)

@script:python depends on r@
p << r.p;
@@

print("%s:%s:%s: dma_buf_map_attachment without dma_resv_lock before it" % (p[0].file, p[0].line, p[0].column))
