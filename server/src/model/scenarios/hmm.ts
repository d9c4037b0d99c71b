/**
 * Scenarios of the hmm family's rules beyond the first thirteen (see explain.ts
 * for those). Each replays a finding's events on the simulated machine.
 */
import type { RuleScenario } from '../scenario';

export const hmmScenarios: Record<string, RuleScenario> = {};
