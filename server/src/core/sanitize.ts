/**
 * Same-length kernel sanitizer.
 *
 * Kernel C is full of things tree-sitter-c does not know: address-space
 * annotations (`__user`, `__iomem`), attribute macros with arguments
 * (`__aligned(8)`, `__free(kfree)`), types passed to macros
 * (`container_of(p, struct foo, member)`) and iterator macros followed by a
 * statement (`list_for_each_entry(pos, head, member) { ... }`). Each of these
 * yields ERROR or MISSING nodes. The sanitizer rewrites them in place with
 * text of exactly the same length, so every offset in the sanitized text is
 * an offset in the original:
 *
 * - annotations become spaces;
 * - `struct` inside a macro argument list becomes spaces (`T` is then an
 *   identifier argument);
 * - an iterator macro name becomes `while` padded with spaces, so
 *   `for_each_sg(sgl, sg, n, i) body` parses as `while (sgl, sg, n, i) body`.
 *   The macro name is remembered (see `iterators`), so the analysis still
 *   knows which iterator it was.
 *
 * Line breaks are never touched, so lines and columns stay the same too.
 */

export interface Sanitized {
  text: string;
  /** Offset of each rewritten iterator macro -> its original name. */
  iterators: Map<number, string>;
}

/** Annotations that carry no arguments. */
const BARE_ANNOTATIONS = [
  '__user', '__iomem', '__rcu', '__force', '__percpu', '__kernel', '__safe', '__nocast', '__bitwise',
  '__private', '__must_check', '__always_inline', '__init', '__exit', '__initdata', '__initconst',
  '__exitdata', '__maybe_unused', '__always_unused', '__cold', '__hot', '__weak', '__visible',
  '__ro_after_init', '__read_mostly', '__noreturn', '__latent_entropy', '__cacheline_aligned',
  '__cacheline_aligned_in_smp', '____cacheline_aligned', '____cacheline_aligned_in_smp', '__packed',
  'noinline', 'noinline_for_stack', 'asmlinkage', '__noinline', '__pure', '__malloc', '__used',
  '__ref', '__meminit', '__refdata', '__devinit', '__devexit', '__sched', '__noclone', 'notrace',
  '__randomize_layout', '__no_randomize_layout', '__data_racy', '__nonstring', 'fallthrough',
];

/** Annotations followed by a parenthesised argument list, blanked with it. */
const CALL_ANNOTATIONS = [
  '__aligned', '__counted_by', '__counted_by_le', '__counted_by_be', '__free', '__acquires',
  '__releases', '__must_hold', '__cond_acquires', '__cond_releases', '__guarded_by', '__pt_guarded_by',
  '__section', '__printf', '__scanf', '__alloc_size', '__assume_aligned', '__designated_init',
  '__attribute_const__', '__no_sanitize_address', '__diag_ignore', '__realloc_size',
];

/** Calls that legitimately take a type as their argument: leave `struct` alone there. */
const TYPE_TAKING = new Set([
  'sizeof', 'typeof', '__typeof__', '__typeof', '_Alignof', 'alignof', '__alignof__', 'offsetof',
  '__builtin_offsetof', 'va_arg', '__builtin_va_arg', '_Generic', '__builtin_types_compatible_p',
]);

/** Statement-like macros that are not named *for_each*. */
const OTHER_ITERATORS = new Set(['scoped_guard', 'scoped_cond_guard', 'xa_for_each', 'wait_event_cmd']);

const BARE_RE = new RegExp(`\\b(?:${BARE_ANNOTATIONS.join('|')})\\b`, 'g');
const CALL_RE = new RegExp(`\\b(?:${CALL_ANNOTATIONS.join('|')})\\s*\\(`, 'g');
/**
 * Iterator candidates: `for_each` anywhere in a name, or an OTHER_ITERATORS name. Each hit is
 * widened to its whole identifier, which gives the names /\b([A-Za-z_]\w*)\s*\(/ would find,
 * without visiting every call of the file.
 */
const ITER_HINT_RE = new RegExp(`for_each|${[...OTHER_ITERATORS].filter((n) => !n.includes('for_each')).join('|')}`, 'g');
const OPEN_PAREN_RE = /\s*\(/y;

/** Whether a code unit is an identifier character (ASCII letter, digit or `_`). */
export function isWordCode(c: number): boolean {
  return (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c === 95;
}

/** The next `name\s*(` whose name is an iterator candidate, from `from` on. */
function nextIteratorCall(src: string, from: number): { index: number; name: string; open: number } | undefined {
  ITER_HINT_RE.lastIndex = from;
  for (let m = ITER_HINT_RE.exec(src); m; m = ITER_HINT_RE.exec(src)) {
    let start = m.index;
    while (start > 0 && isWordCode(src.charCodeAt(start - 1))) start--;
    let end = m.index + m[0].length;
    while (end < src.length && isWordCode(src.charCodeAt(end))) end++;
    ITER_HINT_RE.lastIndex = end;
    const first = src.charCodeAt(start);
    if (first >= 48 && first <= 57) continue; // not an identifier (/[A-Za-z_]\w*/ finds no start inside a word)
    const name = src.slice(start, end);
    if (!name.includes('for_each') && !OTHER_ITERATORS.has(name)) continue;
    OPEN_PAREN_RE.lastIndex = end;
    if (!OPEN_PAREN_RE.test(src)) continue;
    return { index: start, name, open: OPEN_PAREN_RE.lastIndex - 1 };
  }
  return undefined;
}
const STRUCT_ARG_RE = /([(,]\s*)(struct|union|enum)(\s+[A-Za-z_]\w*\s*(?:\*\s*)?[,)])/g;

/**
 * The rewrites of one sanitize() call, applied at the end by slicing the
 * original: blanked spans (line breaks kept) and single characters set
 * (the iterator renames, which come after every blank). A file has a few
 * hundred changed characters in hundreds of kilobytes, so the text is cut
 * and joined (V8 flattens it once, natively) rather than copied code unit by
 * code unit.
 */
class Rewrite {
  /** Blanked spans [from, to), in the order made (they may overlap). */
  private readonly blanks: Array<[number, number]> = [];
  /** Characters set: offset -> character (the last one set wins, over any blank). */
  private readonly sets = new Map<number, string>();
  constructor(private readonly src: string) {}
  /** Spaces over [from, to), line breaks kept. */
  blank(from: number, to: number): void {
    if (to <= from) return;
    // A blank after a set would have to win over it; sanitize() never does that.
    if (this.sets.size) throw new Error('Rewrite: blank() after set()');
    this.blanks.push([from, to]);
  }
  set(i: number, c: string): void {
    this.sets.set(i, c);
  }
  text(): string {
    const src = this.src;
    if (!this.blanks.length && !this.sets.size) return src;
    // Merge the blanked spans, then walk them and the set characters in offset order.
    const spans = this.blanks.sort((a, b) => a[0] - b[0]);
    const merged: Array<[number, number]> = [];
    for (const [a, b] of spans) {
      const last = merged[merged.length - 1];
      if (last && a <= last[1]) last[1] = Math.max(last[1], b);
      else merged.push([a, b]);
    }
    const points = [...this.sets.keys()].sort((a, b) => a - b);
    const parts: string[] = [];
    let at = 0;
    let p = 0;
    const upTo = (end: number) => {
      // Copies src[at, end) with the set characters in it.
      while (p < points.length && points[p] < end) {
        const i = points[p++];
        if (i < at) continue;
        parts.push(src.slice(at, i), this.sets.get(i)!);
        at = i + 1;
      }
      if (end > at) parts.push(src.slice(at, end));
      at = Math.max(at, end);
    };
    for (const [a, b] of merged) {
      upTo(a);
      // The blanked span, with the set characters in it.
      let from = Math.max(a, at);
      while (p < points.length && points[p] < b) {
        const i = points[p++];
        if (i < from) continue;
        parts.push(spaces(src.slice(from, i)), this.sets.get(i)!);
        from = i + 1;
      }
      if (b > from) parts.push(spaces(src.slice(from, b)));
      at = Math.max(at, b);
    }
    upTo(src.length);
    return parts.join('');
  }
}

/** `s` with every code unit but line breaks made a space. */
function spaces(s: string): string {
  return s.replace(/[^\r\n]/g, ' ');
}

export function sanitize(src: string): Sanitized {
  const out = new Rewrite(src);
  const blank = (from: number, to: number) => out.blank(from, to);

  BARE_RE.lastIndex = 0;
  for (let m = BARE_RE.exec(src); m; m = BARE_RE.exec(src)) {
    // `fallthrough;` is a statement macro; keep it a statement.
    if (m[0] === 'fallthrough') {
      const after = src.slice(m.index + m[0].length).match(/^\s*;/);
      if (after) blank(m.index, m.index + m[0].length + after[0].length);
      continue;
    }
    blank(m.index, m.index + m[0].length);
  }

  CALL_RE.lastIndex = 0;
  for (let m = CALL_RE.exec(src); m; m = CALL_RE.exec(src)) {
    const open = m.index + m[0].length - 1;
    const close = matchParen(src, open);
    if (close < 0) continue;
    blank(m.index, close + 1);
    CALL_RE.lastIndex = close + 1;
  }

  STRUCT_ARG_RE.lastIndex = 0;
  for (let m = STRUCT_ARG_RE.exec(src); m; m = STRUCT_ARG_RE.exec(src)) {
    const kwStart = m.index + m[1].length;
    if (m[1].startsWith('(')) {
      const before = identifierBefore(src, m.index);
      if (!before || TYPE_TAKING.has(before) || isKeyword(before)) {
        STRUCT_ARG_RE.lastIndex = kwStart;
        continue;
      }
    } else if (!insideCall(src, m.index)) {
      STRUCT_ARG_RE.lastIndex = kwStart;
      continue;
    }
    blank(kwStart, kwStart + m[2].length);
    // Let the closing `,` start the next match.
    STRUCT_ARG_RE.lastIndex = m.index + m[0].length - 1;
  }

  const iterators = new Map<number, string>();
  for (let m = nextIteratorCall(src, 0); m; m = nextIteratorCall(src, m.open + 1)) {
    const name = m.name;
    if (name.length < 5) continue;
    if (!atStatementStart(src, m.index)) continue;
    const open = m.open;
    const close = matchParen(src, open);
    if (close < 0) continue;
    const next = nextNonSpace(src, close + 1);
    if (next < 0) continue;
    const c = src[next];
    if (!(c === '{' || c === '*' || c === '(' || /[A-Za-z_]/.test(c))) continue;
    for (let i = 0; i < name.length; i++) out.set(m.index + i, i < 5 ? 'while'[i] : ' ');
    iterators.set(m.index, name);
  }

  return { text: out.text(), iterators };
}

/** Index of the `)` matching the `(` at `open`, skipping strings, chars and comments; -1 if none. */
export function matchParen(src: string, open: number): number {
  let depth = 0;
  const limit = Math.min(src.length, open + 20000);
  for (let i = open; i < limit; i++) {
    const c = src[i];
    if (c === '(') depth++;
    else if (c === ')') {
      depth--;
      if (depth === 0) return i;
    } else if (c === '"' || c === "'") {
      i = skipQuoted(src, i, c);
    } else if (c === '/' && src[i + 1] === '*') {
      const e = src.indexOf('*/', i + 2);
      if (e < 0) return -1;
      i = e + 1;
    } else if (c === '/' && src[i + 1] === '/') {
      const e = src.indexOf('\n', i);
      if (e < 0) return -1;
      i = e;
    } else if (c === ';' || c === '{' || c === '}') {
      // Not an argument list we understand.
      return -1;
    }
  }
  return -1;
}

/** The index of the quote closing the literal opened at `i` (or of the line break ending it); the text's length if none. */
export function skipQuoted(src: string, i: number, q: string): number {
  for (let j = i + 1; j < src.length; j++) {
    const c = src[j];
    if (c === '\\') j++;
    else if (c === q || c === '\n') return j;
  }
  return src.length;
}

function nextNonSpace(src: string, i: number): number {
  for (; i < src.length; i++) {
    const c = src[i];
    if (c === '\\' && (src[i + 1] === '\n' || src[i + 1] === '\r')) continue;
    if (c !== ' ' && c !== '\t' && c !== '\n' && c !== '\r') return i;
  }
  return -1;
}

function prevNonSpace(src: string, i: number): number {
  for (i = i - 1; i >= 0; i--) {
    const c = src[i];
    if (c !== ' ' && c !== '\t' && c !== '\n' && c !== '\r') return i;
  }
  return -1;
}

function identifierBefore(src: string, i: number): string | undefined {
  const p = prevNonSpace(src, i);
  if (p < 0 || !/\w/.test(src[p])) return undefined;
  let s = p;
  while (s > 0 && /\w/.test(src[s - 1])) s--;
  return src.slice(s, p + 1);
}

const KEYWORDS = new Set(['if', 'while', 'for', 'switch', 'return', 'case', 'do', 'else', 'goto']);
function isKeyword(w: string): boolean {
  return KEYWORDS.has(w);
}

/** Whether position `i` (a comma) sits inside the argument list of a call or macro. */
function insideCall(src: string, i: number): boolean {
  let depth = 0;
  const stop = Math.max(0, i - 2000);
  for (let j = i - 1; j >= stop; j--) {
    const c = src[j];
    if (c === ')') depth++;
    else if (c === '(') {
      if (depth === 0) {
        const before = identifierBefore(src, j);
        return !!before && !TYPE_TAKING.has(before) && !isKeyword(before);
      }
      depth--;
    } else if (c === ';' || c === '{' || c === '}') return false;
  }
  return false;
}

function atStatementStart(src: string, i: number): boolean {
  const p = prevNonSpace(src, i);
  if (p < 0) return true;
  const c = src[p];
  if (c === ';' || c === '{' || c === '}' || c === ')' || c === ':') {
    // `case X:` and labels are fine; `a ? b : for_each(` is not valid C anyway.
    if (c === ')') {
      // `if (x) for_each(...)` yes; `foo(a) for_each` never valid, so accept.
      return true;
    }
    return true;
  }
  const w = identifierBefore(src, i);
  return w === 'else' || w === 'do';
}
