/** Hazards injected into real kernel files for the dmabuf family's rules. */
import type { Mutation } from './types';

export const mutations: Mutation[] = [];
