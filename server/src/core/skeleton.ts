/**
 * Function bodies a one-shot analysis can leave unparsed until a rule asks
 * for them.
 *
 * On the 6.12 tree the files a rule runs on hold 20 MB of C, and the rules
 * build facts for the functions holding 2.2 MB of it: most of a driver is
 * functions no rule looks into (it needs their names, parameters, and the
 * ops tables that bind them, which lie outside the bodies). `functionBodies`
 * finds, from the (sanitized) text alone, the inside of each top-level
 * function body; core/parser.ts then parses the file without them
 * (tree-sitter's included ranges: the body reads `{}`, every offset stays
 * the same) and parses a function's own range when its facts are built.
 *
 * The scan is conservative. It skips comments, strings, character literals
 * and preprocessor lines, and takes a `{` at brace depth 0 right after a `)`
 * (a function declarator, or one followed by an attribute with arguments),
 * or after `struct`, `union` or `enum` and maybe a tag (their members are
 * not needed either), up to its matching `}`. Every #if group must keep the
 * braces balanced in each arm (the depth at its #elif/#else/#endif lines is
 * the depth at its #if), and a body must hold whole groups: otherwise a full
 * parse could end a body elsewhere. Then, and at a stray closing brace, an
 * unterminated comment or string, or braces still open at the end, nothing
 * is left out: the file is parsed in full (tree-sitter's error recovery in a
 * file like that can reach across bodies).
 *
 * On code whose full parse has no ERROR node the analysis finds exactly
 * what it finds on the full parse (the core fuzz suite checks this on
 * mutated fixtures); on real kernel code, ERROR nodes from macros included,
 * it does too (server/test/core/lazy.test.ts on every fixture and example,
 * kernel.test.ts on every analysed file of both kernel trees). Code broken
 * beyond that (a struct holding statements, an `else` without its `if`) may
 * be read differently: tree-sitter recovers from it differently when it
 * sees the whole text. Patch review parses in full for that reason.
 */

import { isWordCode, skipQuoted } from './sanitize';
import type { Span } from './types';

/** Bodies shorter than this are parsed with the file (not worth a range of their own). */
const MIN_BODY = 16;

/**
 * The insides of the top-level function (and struct, union, enum) bodies of
 * `text` (between the braces, exclusive), in order, of at least MIN_BODY
 * code units.
 */
export function functionBodies(text: string): Span[] {
  const out: Span[] = [];
  const n = text.length;
  let depth = 0;
  /** The last token outside comments, strings and blanks (a word, or one character). */
  let last = '';
  /** The token before `last`. */
  let before = '';
  /** At the start of a line (only blanks so far): a `#` there starts a directive. */
  let lineStart = true;
  /** Open body: where its `{` is, and the conditional depth then. */
  let body: { open: number; conds: number } | undefined;
  /** Open #if groups: the brace depth at the #if. */
  const conds: number[] = [];
  for (let i = 0; i < n; i++) {
    const c = text.charCodeAt(i);
    switch (c) {
      case 10: // \n
        lineStart = true;
        continue;
      case 32:
      case 9:
      case 13:
      case 12:
      case 11:
        continue;
      case 47: {
        // '/'
        const d = text.charCodeAt(i + 1);
        if (d === 42) {
          const e = commentEnd(text, i + 2);
          if (e < 0) return NONE;
          i = e + 1;
          continue;
        }
        if (d === 47) {
          const e = endOfLine(text, i);
          i = e - 1;
          continue;
        }
        break;
      }
      case 34: // "
      case 39: {
        // '
        const e = skipQuoted(text, i, text[i]);
        if (e >= n) return NONE;
        i = e;
        before = last;
        last = '"';
        lineStart = false;
        continue;
      }
      case 35: {
        // '#'
        if (!lineStart) break;
        const e = endOfLine(text, i);
        const m = /^#\s*(\w+)/.exec(text.slice(i, Math.min(e, i + 64)));
        const word = m ? m[1] : '';
        if (word === 'if' || word === 'ifdef' || word === 'ifndef') conds.push(depth);
        else if (word === 'elif' || word === 'else' || word === 'endif' || word === 'elifdef' || word === 'elifndef') {
          // An arm that leaves the braces unbalanced, or a group opened before the body going on inside
          // it: the braces cannot be trusted from here on.
          if (!conds.length || conds[conds.length - 1] !== depth || (body && conds.length <= body.conds)) return NONE;
          if (word === 'endif') conds.pop();
        }
        i = e - 1;
        continue;
      }
      case 123: // {
        if (depth === 0 && (last === ')' || AGGREGATE.has(last) || AGGREGATE.has(before))) body = { open: i, conds: conds.length };
        depth++;
        before = last;
        last = '{';
        lineStart = false;
        continue;
      case 125: // }
        if (depth === 0) return NONE;
        depth--;
        if (depth === 0 && body) {
          if (conds.length !== body.conds) return NONE;
          if (i - body.open - 1 >= MIN_BODY) out.push({ start: body.open + 1, end: i });
          body = undefined;
        }
        before = last;
        last = '}';
        lineStart = false;
        continue;
    }
    lineStart = false;
    if (isWordCode(c)) {
      let j = i + 1;
      while (j < n && isWordCode(text.charCodeAt(j))) j++;
      before = last;
      last = text.slice(i, j);
      i = j - 1;
      continue;
    }
    before = last;
    last = text[i];
  }
  // A body or conditional still open at the end: as unsure as a stray brace.
  return depth === 0 && !conds.length ? out : NONE;
}

/** The answer when the braces cannot be trusted: leave nothing out. */
const NONE: Span[] = [];

/** Keywords whose braces hold members or enumerators: their insides can go like a function's body. */
const AGGREGATE = new Set(['struct', 'union', 'enum']);

// The searches below are loops over charCodeAt, not indexOf: with indexOf inlined into functionBodies'
// loop, the optimized code of Node 20's V8 took time quadratic in the length of a line once it had seen
// directives (2 s for one 200 KB line; server/test/fuzz/patch.fuzz.test.ts's 2 MB added line).

/** The index of the line break ending the line at `i` (following backslash continuations), or the text's length. */
function endOfLine(text: string, i: number): number {
  const n = text.length;
  for (let j = i; j < n; j++) {
    if (text.charCodeAt(j) !== 10) continue;
    let k = j - 1;
    if (text.charCodeAt(k) === 13) k--;
    if (text.charCodeAt(k) !== 92) return j;
  }
  return n;
}

/** The index of the `*` of the `*\/` closing the comment whose text starts at `i`; -1 if none. */
function commentEnd(text: string, i: number): number {
  const n = text.length - 1;
  for (let j = i; j < n; j++) if (text.charCodeAt(j) === 42 && text.charCodeAt(j + 1) === 47) return j;
  return -1;
}
