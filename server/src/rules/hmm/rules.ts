/**
 * Further rules of the hmm family (the hazard catalog's rules beyond the
 * first thirteen).
 */
import type { Rule } from '../api';

export const hmmRules: Rule[] = [];
