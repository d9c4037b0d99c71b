/**
 * Further rules of the dmabuf family (the hazard catalog's rules beyond the
 * first thirteen).
 */
import type { Rule } from '../api';

export const dmabufMoreRules: Rule[] = [];
