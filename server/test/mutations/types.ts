/**
 * A mutation injects one hazard into a real kernel file (from Debian's
 * linux-source-6.12 tree) by an exact text replacement. The suite asserts
 * the rule fires on the line of the replacement (the first line of `replace`
 * unless `line` points elsewhere inside it).
 */
export interface Mutation {
  /** Path inside the kernel tree. */
  file: string;
  /** Exact text to find (must occur exactly once; use enough context). */
  find: string;
  replace: string;
  rule: string;
  /** Substring of `replace` on whose line the finding must be (default: the first line that differs from `find`). */
  at?: string;
  /** Why this mutation is the hazard, in a few words. */
  what: string;
  /** Kernel version to analyse with (default 6.12). */
  kernel?: string;
}
