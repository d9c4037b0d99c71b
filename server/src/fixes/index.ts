/**
 * The fix engine's public face: fixes for findings of a parsed file, the
 * preferred ones merged for "fix all", a unified diff of the result, and
 * the same fixes mapped onto the added lines of a patch.
 */
export { collide, FixSession, fixesFor, rulesWithFixes, type FixContext } from './engine';
export { fixInPatch, hunkFixSource, patchFindingFixes, type FixAnalyzer, type PatchFix, type PatchFixSource } from './patch';
export { unifiedDiff } from './diff';
export { applyEdits } from './text';
export type { Fix, FixEdit, FixOptions } from './types';
