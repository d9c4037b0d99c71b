/**
 * A unified diff of two texts (`--- a/PATH`, `+++ b/PATH`, hunks with three
 * lines of context and the enclosing function after `@@`), as `diff -up`
 * and `git diff` write it, for
 * `dmalens fix --dry-run`. Lines are compared exactly; the differing middle
 * is diffed with Myers' algorithm after the common prefix and suffix are
 * set aside (fixes change a few lines of a large file).
 */

interface Lines {
  lines: string[];
  /** The last line has no line break. */
  noEol: boolean;
}

function split(text: string): Lines {
  if (text === '') return { lines: [], noEol: false };
  const lines = text.split('\n');
  const noEol = lines[lines.length - 1] !== '';
  if (!noEol) lines.pop();
  return { lines, noEol };
}

type Op = { kind: ' ' | '-' | '+'; line: string; a: number; b: number };

/** Edit script between a and b (Myers, greedy forward with trace). */
function myers(a: readonly string[], b: readonly string[]): Array<' ' | '-' | '+'> {
  const n = a.length;
  const m = b.length;
  const max = n + m;
  const off = max + 1;
  let v = new Int32Array(2 * max + 3);
  const trace: Int32Array[] = [];
  let found = -1;
  for (let d = 0; d <= max; d++) {
    trace.push(v.slice());
    const nv = v.slice();
    for (let k = -d; k <= d; k += 2) {
      let x: number;
      if (k === -d || (k !== d && v[off + k - 1] < v[off + k + 1])) x = v[off + k + 1];
      else x = v[off + k - 1] + 1;
      let y = x - k;
      while (x < n && y < m && a[x] === b[y]) {
        x++;
        y++;
      }
      nv[off + k] = x;
      if (x >= n && y >= m) {
        found = d;
        break;
      }
    }
    v = nv;
    if (found >= 0) {
      trace.push(v.slice());
      break;
    }
  }
  // Backtrack.
  const ops: Array<' ' | '-' | '+'> = [];
  let x = n;
  let y = m;
  for (let d = found; d > 0; d--) {
    const pv = trace[d];
    const k = x - y;
    const prevK = k === -d || (k !== d && pv[off + k - 1] < pv[off + k + 1]) ? k + 1 : k - 1;
    const px = pv[off + prevK];
    const py = px - prevK;
    while (x > px && y > py) {
      ops.push(' ');
      x--;
      y--;
    }
    if (x === px) {
      ops.push('+');
      y--;
    } else {
      ops.push('-');
      x--;
    }
  }
  while (x > 0 && y > 0) {
    ops.push(' ');
    x--;
    y--;
  }
  return ops.reverse();
}

/** The hunk's section, as `diff -p` and git write it: the last line above it that starts with an identifier (a function's signature). */
function section(a: readonly string[], start: number): string {
  for (let i = start - 1; i >= 0; i--) {
    const l = a[i].replace(/\u0000$/, '').replace(/\s+$/, '');
    if (/^[A-Za-z_$]/.test(l)) return ' ' + (l.length > 80 ? l.slice(0, 80) : l);
  }
  return '';
}

/** The unified diff turning `oldText` into `newText`; empty when they are equal. */
export function unifiedDiff(path: string, oldText: string, newText: string, context = 3): string {
  if (oldText === newText) return '';
  const A = split(oldText);
  const B = split(newText);
  // A last line without a break differs from the same line with one.
  const a = A.lines.map((l, i) => (A.noEol && i === A.lines.length - 1 ? l + '\u0000' : l));
  const b = B.lines.map((l, i) => (B.noEol && i === B.lines.length - 1 ? l + '\u0000' : l));
  let pre = 0;
  while (pre < a.length && pre < b.length && a[pre] === b[pre]) pre++;
  let suf = 0;
  while (suf < a.length - pre && suf < b.length - pre && a[a.length - 1 - suf] === b[b.length - 1 - suf]) suf++;
  const mid = myers(a.slice(pre, a.length - suf), b.slice(pre, b.length - suf));
  const ops: Op[] = [];
  let ia = 0;
  let ib = 0;
  for (let i = 0; i < pre; i++) ops.push({ kind: ' ', line: a[i], a: ia++, b: ib++ });
  for (const k of mid) {
    if (k === ' ') ops.push({ kind: ' ', line: a[ia], a: ia++, b: ib++ });
    else if (k === '-') ops.push({ kind: '-', line: a[ia], a: ia++, b: ib });
    else ops.push({ kind: '+', line: b[ib], a: ia, b: ib++ });
  }
  for (let i = 0; i < suf; i++) ops.push({ kind: ' ', line: a[ia], a: ia++, b: ib++ });

  const out: string[] = [`--- a/${path}`, `+++ b/${path}`];
  let i = 0;
  while (i < ops.length) {
    while (i < ops.length && ops[i].kind === ' ') i++;
    if (i >= ops.length) break;
    let start = Math.max(0, i - context);
    let end = i;
    // Extend over changes closer than 2 * context lines apart.
    for (;;) {
      while (end < ops.length && ops[end].kind !== ' ') end++;
      let j = end;
      while (j < ops.length && ops[j].kind === ' ' && j - end < 2 * context) j++;
      if (j < ops.length && ops[j].kind !== ' ' && j - end <= 2 * context) {
        end = j;
        continue;
      }
      break;
    }
    const stop = Math.min(ops.length, end + context);
    const hunk = ops.slice(start, stop);
    const aStart = hunk[0].a;
    const bStart = hunk[0].b;
    const aCount = hunk.filter((o) => o.kind !== '+').length;
    const bCount = hunk.filter((o) => o.kind !== '-').length;
    const range = (s: number, c: number) => (c === 1 ? `${s + 1}` : `${c === 0 ? s : s + 1},${c}`);
    out.push(`@@ -${range(aStart, aCount)} +${range(bStart, bCount)} @@${section(a, aStart)}`);
    for (const o of hunk) {
      const noEol = o.line.endsWith('\u0000');
      out.push(o.kind + (noEol ? o.line.slice(0, -1) : o.line));
      if (noEol) out.push('\\ No newline at end of file');
    }
    i = stop;
    start = stop;
  }
  return out.join('\n') + '\n';
}
