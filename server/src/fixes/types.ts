/**
 * What a fix is: edits to the analysed text that make a finding go away, in
 * the style of the surrounding kernel code. Pure data; the faces turn it into
 * a WorkspaceEdit (lsp/actions.ts), rewrite files (cli/fix.ts) or map it onto
 * the added lines of a patch (fixes/patch.ts).
 */
import type { KernelVersion } from '../core/types';
import type { HelperSpec, LockWrapperSpec } from '../core/config';

/** Replace text[start, end) with newText. Offsets are UTF-16 indices into the analysed text. */
export interface FixEdit {
  start: number;
  end: number;
  newText: string;
}

export interface Fix {
  /** What the fix does, for a menu ("Test with IS_ERR() and return PTR_ERR(dmabuf)"). */
  title: string;
  ruleId: string;
  /** Sorted by offset, non-overlapping. */
  edits: FixEdit[];
  /**
   * The fix is always safe: it follows from what the rule proved, changes
   * nothing else, and needs no judgement. At most one fix of a finding is
   * preferred; only preferred fixes are applied by "fix all" and `dmalens fix`.
   */
  preferred: boolean;
  kind: 'quickfix';
}

export interface FixOptions {
  /** Target kernel (the newest the rules know when undefined): decides which API variants exist. */
  kernelVersion?: KernelVersion;
  /** Project lock wrappers and helpers (.dmalens.json), as the analysis used them. */
  lockWrappers?: readonly LockWrapperSpec[];
  helpers?: Readonly<Record<string, HelperSpec>>;
}
