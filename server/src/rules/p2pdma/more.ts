/**
 * Further rules of the p2pdma family (the hazard catalog's rules beyond the
 * first thirteen).
 */
import type { Rule } from '../api';

export const p2pMoreRules: Rule[] = [];
