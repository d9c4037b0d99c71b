/**
 * Further rules of the netmem family (the hazard catalog's rules beyond the
 * first thirteen).
 */
import type { Rule } from '../api';

export const netmemRules: Rule[] = [];
