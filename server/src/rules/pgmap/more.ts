/**
 * Further rules of the pgmap family (the hazard catalog's rules beyond the
 * first thirteen).
 */
import type { Rule } from '../api';

export const pgmapMoreRules: Rule[] = [];
