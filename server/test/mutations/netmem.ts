/** Hazards injected into real kernel files for the netmem family's rules. */
import type { Mutation } from './types';

export const mutations: Mutation[] = [
  // ------------------------------------------------------------ NETMEM-UNREADABLE-FRAG
  {
    rule: 'NETMEM-UNREADABLE-FRAG',
    file: 'net/ipv4/tcp.c',
    what: 'TCP receive zerocopy maps a frag without ruling out net_iov frags',
    find: '\tif (skb_frag_is_net_iov(frag))\n\t\treturn false;\n\n\tpage = skb_frag_page(frag);\n\n\tif (PageCompound(page) || page->mapping)',
    replace: '\tpage = skb_frag_page(frag);\n\n\tif (PageCompound(page) || page->mapping)',
    at: 'if (PageCompound(page) || page->mapping)',
  },
  {
    rule: 'NETMEM-UNREADABLE-FRAG',
    file: 'net/core/gro.c',
    what: 'GRO reads the first frag\'s page without the NULL test',
    find: '\tif (pinfo->nr_frags && skb_frag_page(frag0) &&\n\t    !PageHighMem(skb_frag_page(frag0)) &&',
    replace: '\tif (pinfo->nr_frags &&\n\t    !PageHighMem(skb_frag_page(frag0)) &&',
    at: '!PageHighMem(skb_frag_page(frag0))',
  },
  {
    rule: 'NETMEM-UNREADABLE-FRAG',
    file: 'net/core/skbuff.c',
    what: 'the readability test dropped from skb_seq_read()',
    find: '\tif (!skb_frags_readable(st->cur_skb))\n\t\treturn 0;\n\n\tif (st->frag_idx == 0 && !st->frag_data)\n\t\tst->stepped_offset += skb_headlen(st->cur_skb);\n\n\twhile (st->frag_idx < skb_shinfo(st->cur_skb)->nr_frags) {\n\t\tunsigned int pg_idx, pg_off, pg_sz;\n\n\t\tfrag = &skb_shinfo(st->cur_skb)->frags[st->frag_idx];\n\n\t\tpg_idx = 0;\n\t\tpg_off = skb_frag_off(frag);\n\t\tpg_sz = skb_frag_size(frag);\n\n\t\tif (skb_frag_must_loop(skb_frag_page(frag))) {\n\t\t\tpg_idx = (pg_off + st->frag_off) >> PAGE_SHIFT;\n\t\t\tpg_off = offset_in_page(pg_off + st->frag_off);\n\t\t\tpg_sz = min_t(unsigned int, pg_sz - st->frag_off,\n\t\t\t\t\t\t    PAGE_SIZE - pg_off);\n\t\t}\n\n\t\tblock_limit = pg_sz + st->stepped_offset;\n\t\tif (abs_offset < block_limit) {\n\t\t\tif (!st->frag_data)\n\t\t\t\tst->frag_data = kmap_atomic(skb_frag_page(frag) + pg_idx);',
    replace: '\tif (st->frag_idx == 0 && !st->frag_data)\n\t\tst->stepped_offset += skb_headlen(st->cur_skb);\n\n\twhile (st->frag_idx < skb_shinfo(st->cur_skb)->nr_frags) {\n\t\tunsigned int pg_idx, pg_off, pg_sz;\n\n\t\tfrag = &skb_shinfo(st->cur_skb)->frags[st->frag_idx];\n\n\t\tpg_idx = 0;\n\t\tpg_off = skb_frag_off(frag);\n\t\tpg_sz = skb_frag_size(frag);\n\n\t\tif (skb_frag_must_loop(skb_frag_page(frag))) {\n\t\t\tpg_idx = (pg_off + st->frag_off) >> PAGE_SHIFT;\n\t\t\tpg_off = offset_in_page(pg_off + st->frag_off);\n\t\t\tpg_sz = min_t(unsigned int, pg_sz - st->frag_off,\n\t\t\t\t\t\t    PAGE_SIZE - pg_off);\n\t\t}\n\n\t\tblock_limit = pg_sz + st->stepped_offset;\n\t\tif (abs_offset < block_limit) {\n\t\t\tif (!st->frag_data)\n\t\t\t\tst->frag_data = kmap_atomic(skb_frag_page(frag) + pg_idx);',
    at: 'st->frag_data = kmap_atomic(',
  },
  // ------------------------------------------------------------ NETMEM-DMA-DEV-GRANULE
  {
    rule: 'NETMEM-DMA-DEV-GRANULE',
    file: 'drivers/net/ethernet/broadcom/bnxt/bnxt.c',
    what: 'an order-1 page pool in a driver whose queues take memory providers',
    find: '\t\tpp.order = 0;\n\t\tpp.max_len = PAGE_SIZE;',
    replace: '\t\tpp.order = 1;\n\t\tpp.max_len = PAGE_SIZE << 1;',
  },
  {
    rule: 'NETMEM-DMA-DEV-GRANULE',
    file: 'net/core/devmem.c',
    what: 'the DMA device lookup used without a NULL test',
    find: '\tbinding->attachment = dma_buf_attach(binding->dmabuf, dev->dev.parent);',
    replace: '\tbinding->attachment = dma_buf_attach(binding->dmabuf, netdev_get_dma_dev(dev));',
  },
  {
    rule: 'NETMEM-DMA-DEV-GRANULE',
    file: 'net/core/devmem.c',
    what: 'the attach for the parent analysed as 6.19, where netdev_get_dma_dev() exists',
    find: '\tbinding->attachment = dma_buf_attach(binding->dmabuf, dev->dev.parent);',
    replace: '\tstruct device *dma_dev = dev->dev.parent;\n\n\tbinding->attachment = dma_buf_attach(binding->dmabuf, dma_dev);',
    at: 'binding->attachment = dma_buf_attach(binding->dmabuf, dma_dev);',
    kernel: '6.19',
  },
];
