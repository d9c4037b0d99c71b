/**
 * The hmm family's rules beyond MIG-FAULT-PAGE (which lives in
 * pgmap/rules.ts): migrate_vma selection and sequence, the hmm_range_fault()
 * protocol and owner, and GUP of device memory.
 */
import type { Rule } from '../api';
import { gupDeviceMemory, gupFollowPfn, gupP2pdmaCpuAccess } from './gup';
import { hmmDevPrivateOwner, hmmFaultProtocol } from './hmmfault';
import { migSelectOwner, migSequence } from './migrate';

export const hmmRules: Rule[] = [migSelectOwner, migSequence, hmmFaultProtocol, hmmDevPrivateOwner, gupDeviceMemory, gupP2pdmaCpuAccess, gupFollowPfn];
