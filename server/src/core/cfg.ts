/**
 * Control-flow graph of one function body, over statements.
 *
 * Kernel error unwinding is the reason this exists: `goto err_unpin;` jumps to
 * a label that is a join point, and pairing rules (pin/unpin, lock/unlock)
 * must follow every path. Nodes:
 *   entry, exit          one each
 *   stmt                 an expression statement, a declaration or a return value
 *   cond                 a branch; succ[0] is the true edge, succ[1] the false edge
 *   switch               a multiway branch on `ast`; every succ is possible
 *   join                 labels, loop heads, merges
 * Loops get a back edge; an iterator macro (`for_each_sg(...) body`, rewritten
 * to `while` by the sanitizer) is a cond node whose `iter` names the macro.
 */
import { type AstNode, field } from './ast';

export type CfgKind = 'entry' | 'exit' | 'stmt' | 'return' | 'cond' | 'switch' | 'join';

export interface CfgNode {
  id: number;
  kind: CfgKind;
  ast?: AstNode;
  succ: number[];
  pred: number[];
  /** Iterator macro name for loop heads that came from one. */
  iter?: string;
  /** Label name for label join nodes. */
  label?: string;
}

export interface Cfg {
  nodes: CfgNode[];
  entry: number;
  exit: number;
  /** Reverse post-order, for fast dataflow. */
  rpo: number[];
}

interface LoopCtx {
  breakTo: number[];
  continueTo: number;
}

class Builder {
  nodes: CfgNode[] = [];
  labels = new Map<string, { node: CfgNode; defined: boolean }>();
  exitId = 1;
  private loops: LoopCtx[] = [];
  /** Break targets of enclosing switches and loops (innermost last). */
  private breaks: number[][] = [];

  constructor(private readonly iterators: Map<number, string>) {}

  node(kind: CfgKind, ast?: AstNode): CfgNode {
    const n: CfgNode = { id: this.nodes.length, kind, ast, succ: [], pred: [] };
    this.nodes.push(n);
    return n;
  }

  edge(from: number, to: number): void {
    this.nodes[from].succ.push(to);
    this.nodes[to].pred.push(from);
  }

  private link(preds: number[], n: CfgNode): void {
    for (const p of preds) this.edge(p, n.id);
  }

  private label(name: string): CfgNode {
    let l = this.labels.get(name);
    if (!l) {
      l = { node: this.node('join'), defined: false };
      l.node.label = name;
      this.labels.set(name, l);
    }
    return l.node;
  }

  /** Adds statement `s` reached from `preds`; returns the nodes that fall through. */
  stmt(s: AstNode, preds: number[]): number[] {
    switch (s.type) {
      case 'compound_statement': {
        let cur = preds;
        for (const c of s.children) cur = this.stmt(c, cur);
        return cur;
      }
      case 'expression_statement':
      case 'declaration': {
        if (s.children.length === 0) return preds;
        const n = this.node('stmt', s);
        this.link(preds, n);
        return [n.id];
      }
      case 'return_statement': {
        const n = this.node('return', s);
        this.link(preds, n);
        this.edge(n.id, this.exitId);
        return [];
      }
      case 'if_statement': {
        const c = this.node('cond', condOf(s));
        this.link(preds, c);
        const t = this.node('join');
        const f = this.node('join');
        c.succ.push(t.id, f.id);
        t.pred.push(c.id);
        f.pred.push(c.id);
        const cons = field(s, 'consequence');
        const alt = field(s, 'alternative');
        const outT = cons ? this.stmt(cons, [t.id]) : [t.id];
        const altBody = alt && alt.type === 'else_clause' ? alt.children[0] : alt;
        const outF = altBody ? this.stmt(altBody, [f.id]) : [f.id];
        return [...outT, ...outF];
      }
      case 'while_statement': {
        const head = this.node('join');
        this.link(preds, head);
        const c = this.node('cond', condOf(s));
        const iter = this.iterators.get(s.start);
        if (iter) c.iter = iter;
        this.edge(head.id, c.id);
        const bodyIn = this.node('join');
        const after = this.node('join');
        this.edge(c.id, bodyIn.id);
        this.edge(c.id, after.id);
        const body = field(s, 'body');
        const brk: number[] = [];
        this.loops.push({ breakTo: brk, continueTo: head.id });
        this.breaks.push(brk);
        const out = body ? this.stmt(body, [bodyIn.id]) : [bodyIn.id];
        this.loops.pop();
        this.breaks.pop();
        for (const o of out) this.edge(o, head.id);
        for (const x of brk) this.edge(x, after.id);
        return [after.id];
      }
      case 'do_statement': {
        const head = this.node('join');
        this.link(preds, head);
        const cont = this.node('join');
        const brk: number[] = [];
        this.loops.push({ breakTo: brk, continueTo: cont.id });
        this.breaks.push(brk);
        const body = field(s, 'body');
        const out = body ? this.stmt(body, [head.id]) : [head.id];
        this.loops.pop();
        this.breaks.pop();
        for (const o of out) this.edge(o, cont.id);
        const c = this.node('cond', condOf(s));
        this.edge(cont.id, c.id);
        const after = this.node('join');
        // `do { } while (0)` never loops.
        const cond = condOf(s);
        const isZero = cond && cond.type === 'number_literal';
        if (isZero) {
          const dead = this.node('join');
          this.edge(c.id, dead.id);
        } else this.edge(c.id, head.id);
        this.edge(c.id, after.id);
        for (const x of brk) this.edge(x, after.id);
        return [after.id];
      }
      case 'for_statement': {
        let cur = preds;
        const init = field(s, 'initializer');
        if (init) {
          const n = this.node('stmt', init);
          this.link(cur, n);
          cur = [n.id];
        }
        const head = this.node('join');
        this.link(cur, head);
        const condAst = field(s, 'condition');
        const c = this.node('cond', condAst);
        this.edge(head.id, c.id);
        const bodyIn = this.node('join');
        const after = this.node('join');
        this.edge(c.id, bodyIn.id);
        this.edge(c.id, after.id);
        const upd = this.node('join');
        const brk: number[] = [];
        this.loops.push({ breakTo: brk, continueTo: upd.id });
        this.breaks.push(brk);
        const body = field(s, 'body');
        const out = body ? this.stmt(body, [bodyIn.id]) : [bodyIn.id];
        this.loops.pop();
        this.breaks.pop();
        for (const o of out) this.edge(o, upd.id);
        const update = field(s, 'update');
        if (update) {
          const n = this.node('stmt', update);
          this.edge(upd.id, n.id);
          this.edge(n.id, head.id);
        } else this.edge(upd.id, head.id);
        for (const x of brk) this.edge(x, after.id);
        return [after.id];
      }
      case 'switch_statement': {
        const sw = this.node('switch', condOf(s));
        this.link(preds, sw);
        const after = this.node('join');
        const brk: number[] = [];
        this.breaks.push(brk);
        const body = field(s, 'body');
        let fall: number[] = [];
        let hasDefault = false;
        for (const c of body?.children ?? []) {
          if (c.type === 'case_statement') {
            const entry = this.node('join');
            this.edge(sw.id, entry.id);
            for (const f of fall) this.edge(f, entry.id);
            if (!field(c, 'value')) hasDefault = true;
            let cur = [entry.id];
            for (const st of c.children) if (st.field !== 'value') cur = this.stmt(st, cur);
            fall = cur;
          } else {
            fall = this.stmt(c, fall);
          }
        }
        this.breaks.pop();
        if (!hasDefault) this.edge(sw.id, after.id);
        for (const f of fall) this.edge(f, after.id);
        for (const x of brk) this.edge(x, after.id);
        return [after.id];
      }
      case 'break_statement': {
        const target = this.breaks[this.breaks.length - 1];
        if (target) target.push(...preds);
        return [];
      }
      case 'continue_statement': {
        const loop = this.loops[this.loops.length - 1];
        if (loop) for (const p of preds) this.edge(p, loop.continueTo);
        return [];
      }
      case 'goto_statement': {
        const target = this.label(this.labelName(s));
        for (const p of preds) this.edge(p, target.id);
        return [];
      }
      case 'labeled_statement': {
        const l = this.label(this.labelName(s));
        const entry = this.labels.get(l.label!);
        if (entry) entry.defined = true;
        for (const p of preds) this.edge(p, l.id);
        let cur = [l.id];
        for (const c of s.children) if (c.field !== 'label') cur = this.stmt(c, cur);
        return cur;
      }
      case 'ERROR':
      case 'preproc_if':
      case 'preproc_ifdef':
      case 'preproc_else':
      case 'preproc_elif':
      case 'preproc_elifdef': {
        // Best effort: statements inside run in order; expressions stand alone.
        let cur = preds;
        for (const c of s.children) {
          if (c.field === 'condition' || c.field === 'name') continue;
          if (isStatement(c)) cur = this.stmt(c, cur);
          else if (isExpression(c)) {
            const n = this.node('stmt', c);
            this.link(cur, n);
            cur = [n.id];
          }
        }
        return cur;
      }
      default:
        if (isExpression(s)) {
          const n = this.node('stmt', s);
          this.link(preds, n);
          return [n.id];
        }
        return preds;
    }
  }

  /** Labels are keyed by their text, filled in by the caller through `labelText`. */
  labelText: (n: AstNode) => string = () => '';

  private labelName(s: AstNode): string {
    const l = field(s, 'label');
    return l ? this.labelText(l) : '';
  }
}

/** Builds the CFG with label names read from the source text. */
export function buildFunctionCfg(body: AstNode, iterators: Map<number, string>, text: string): Cfg {
  const b = new Builder(iterators);
  b.labelText = (n) => text.slice(n.start, n.end);
  const entry = b.node('entry');
  const exit = b.node('exit');
  b.exitId = exit.id;
  const end = b.stmt(body, [entry.id]);
  for (const e of end) b.edge(e, exit.id);
  for (const [, label] of b.labels) if (!label.defined) b.edge(label.node.id, exit.id);
  const cfg: Cfg = { nodes: b.nodes, entry: entry.id, exit: exit.id, rpo: [] };
  cfg.rpo = reversePostOrder(cfg);
  return cfg;
}

function condOf(s: AstNode): AstNode | undefined {
  const c = field(s, 'condition');
  if (!c) return undefined;
  if (c.type === 'parenthesized_expression' && c.children.length === 1) return c.children[0];
  return c;
}

const STATEMENTS = new Set([
  'compound_statement', 'expression_statement', 'declaration', 'return_statement', 'if_statement',
  'while_statement', 'do_statement', 'for_statement', 'switch_statement', 'break_statement',
  'continue_statement', 'goto_statement', 'labeled_statement', 'case_statement', 'ERROR',
  'preproc_if', 'preproc_ifdef', 'preproc_else', 'preproc_elif', 'preproc_elifdef',
]);

function isStatement(n: AstNode): boolean {
  return STATEMENTS.has(n.type);
}

function isExpression(n: AstNode): boolean {
  return n.type.endsWith('_expression') || n.type === 'identifier';
}

function reversePostOrder(cfg: Cfg): number[] {
  const seen = new Uint8Array(cfg.nodes.length);
  const out: number[] = [];
  // Iterative DFS.
  const stack: Array<[number, number]> = [[cfg.entry, 0]];
  seen[cfg.entry] = 1;
  while (stack.length) {
    const top = stack[stack.length - 1];
    const n = cfg.nodes[top[0]];
    if (top[1] < n.succ.length) {
      const s = n.succ[top[1]++];
      if (!seen[s]) {
        seen[s] = 1;
        stack.push([s, 0]);
      }
    } else {
      out.push(top[0]);
      stack.pop();
    }
  }
  return out.reverse();
}
