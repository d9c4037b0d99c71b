/** Hazards injected into real kernel files for the p2pdma family's rules. */
import type { Mutation } from './types';

export const mutations: Mutation[] = [];
