/**
 * Further rules of the pgmap family (the hazard catalog's rules beyond the
 * first thirteen): PGMAP-RANGE-SOURCE, PGMAP-LIFETIME,
 * PGMAP-PRIVATE-CPU-ACCESS, PGMAP-FOREIGN-OWNER, PGMAP-REFCOUNT-INIT,
 * PGMAP-API-DRIFT. Each lives in its own more-*.ts module.
 */
import type { Rule } from '../api';
import { cpuPrivateAccess } from './more-cpu';
import { pgmapApiDrift } from './more-drift';
import { pgmapLifetime } from './more-lifetime';
import { pgmapForeignOwner } from './more-owner';
import { pgmapRangeSource } from './more-range';
import { pgmapRefcountInit } from './more-refcount';

export const pgmapMoreRules: Rule[] = [pgmapRangeSource, pgmapLifetime, cpuPrivateAccess, pgmapForeignOwner, pgmapRefcountInit, pgmapApiDrift];
