/** Hazards injected into real kernel files for the hmm family's rules. */
import type { Mutation } from './types';

export const mutations: Mutation[] = [];
