/**
 * Further rules of the dmabuf family (the hazard catalog's rules beyond the
 * first thirteen): DMABUF-P2P-GATE, DMABUF-LIFECYCLE, DMABUF-VMAP-IOMEM,
 * DMABUF-CPU-ACCESS-SYNC, DMABUF-RESV-FAULT, DMABUF-EXPORT-OPS.
 */
import type { Rule } from '../api';
import { dmabufCpuAccessSync } from './more-cpu';
import { dmabufExportOps } from './more-export';
import { dmabufLifecycle } from './more-lifecycle';
import { dmabufP2pGate } from './more-p2p';
import { dmabufResvFault } from './more-resv';
import { dmabufVmapIomem } from './more-vmap';

export const dmabufMoreRules: Rule[] = [dmabufP2pGate, dmabufLifecycle, dmabufVmapIomem, dmabufCpuAccessSync, dmabufResvFault, dmabufExportOps];
