/**
 * A small forward dataflow solver over a function's CFG.
 *
 * An analysis gives the entry state, a join, an equality test, the effect of
 * a node and (optionally) the refinement a branch edge brings
 * (`if (ret) goto err;` tells the false edge that the call succeeded).
 * States must be immutable values: transfer and join return new ones.
 * Unreached nodes have the state `undefined`.
 */
import type { Cfg, CfgNode } from './cfg';

export interface Analysis<S> {
  entry: S;
  join(a: S, b: S): S;
  equals(a: S, b: S): boolean;
  transfer(node: CfgNode, state: S): S;
  /** State along edge `succIndex` out of a cond/switch node, after `transfer`. */
  branch?(node: CfgNode, state: S, succIndex: number): S;
}

export interface Solution<S> {
  /** State on entry to each node. */
  before: Array<S | undefined>;
  /** State after each node's own effect (before branch refinement). */
  after: Array<S | undefined>;
}

/** Runs to a fixed point, or stops after a bounded number of passes (loops in odd lattices). */
export function solve<S>(cfg: Cfg, a: Analysis<S>, maxPasses = 40): Solution<S> {
  const n = cfg.nodes.length;
  const before: Array<S | undefined> = new Array(n);
  const after: Array<S | undefined> = new Array(n);
  before[cfg.entry] = a.entry;
  const order = cfg.rpo;
  let changed = true;
  for (let pass = 0; changed && pass < maxPasses; pass++) {
    changed = false;
    for (const id of order) {
      const node = cfg.nodes[id];
      const inS = before[id];
      if (inS === undefined) continue;
      const out = a.transfer(node, inS);
      after[id] = out;
      for (let i = 0; i < node.succ.length; i++) {
        const s = node.succ[i];
        const edgeState = a.branch && (node.kind === 'cond' || node.kind === 'switch') ? a.branch(node, out, i) : out;
        const old = before[s];
        const merged = old === undefined ? edgeState : a.join(old, edgeState);
        if (old === undefined || !a.equals(old, merged)) {
          before[s] = merged;
          changed = true;
        }
      }
    }
  }
  return { before, after };
}

/** Every node reachable from `from` without passing through a node for which `stop` is true. */
export function reachable(cfg: Cfg, from: number, stop: (n: CfgNode) => boolean): Set<number> {
  const seen = new Set<number>();
  const stack = [...cfg.nodes[from].succ];
  while (stack.length) {
    const id = stack.pop()!;
    if (seen.has(id)) continue;
    seen.add(id);
    if (stop(cfg.nodes[id])) continue;
    stack.push(...cfg.nodes[id].succ);
  }
  return seen;
}

/**
 * Whether node `to` can be reached from node `from` (a node reaches itself), not passing through nodes `stop` accepts.
 * Without `stop` the answer comes from the CFG's reachability index (`Reach`): rules ask this inside loops over
 * a function's calls, and a search per question made them quadratic (or cubic) in the size of the function.
 */
export function reaches(cfg: Cfg, from: number, to: number, stop?: (n: CfgNode) => boolean): boolean {
  if (from === to) return true;
  if (!stop) return Reach.of(cfg).reaches(from, to);
  const seen = new Set<number>([from]);
  const stack = [from];
  while (stack.length) {
    const id = stack.pop()!;
    for (const s of cfg.nodes[id].succ) {
      if (s === to) return true;
      if (seen.has(s)) continue;
      seen.add(s);
      if (stop && stop(cfg.nodes[s])) continue;
      stack.push(s);
    }
  }
  return false;
}

/** Words of closure bitsets one CFG may keep (16 MB); the least recently used closures go first. */
const REACH_BUDGET_WORDS = 4 << 20;

/**
 * Reachability in one CFG, answered from closures computed on demand and kept
 * as bitsets: the nodes reachable from a source (forward) or the nodes that
 * reach a target (backward). A question `reaches(a, b)` is answered by
 * whichever closure is already known; otherwise the side asked about more
 * often gets its closure computed, so "does any of these calls reach node t"
 * costs one backward search for t and "which nodes come after the call" one
 * forward search. Each search is linear in the CFG; the memory is bounded.
 */
export class Reach {
  private static readonly all = new WeakMap<Cfg, Reach>();

  static of(cfg: Cfg): Reach {
    let r = Reach.all.get(cfg);
    if (!r) Reach.all.set(cfg, (r = new Reach(cfg)));
    return r;
  }

  private readonly words: number;
  private readonly maxSets: number;
  /** Key: node id for a forward closure, -1 - id for a backward one. */
  private readonly sets = new Map<number, { bits: Uint32Array; used: number }>();
  private clock = 0;
  private readonly askedFrom: Uint32Array;
  private readonly askedTo: Uint32Array;
  /** The edges as flat arrays (successors, then predecessors), for searches that touch every node. */
  private readonly succStart: Int32Array;
  private readonly succ: Int32Array;
  private readonly predStart: Int32Array;
  private readonly pred: Int32Array;
  private readonly stack: Int32Array;

  private constructor(cfg: Cfg) {
    const n = cfg.nodes.length;
    this.words = (n + 31) >>> 5;
    this.maxSets = Math.max(8, Math.floor(REACH_BUDGET_WORDS / Math.max(1, this.words)));
    this.askedFrom = new Uint32Array(n);
    this.askedTo = new Uint32Array(n);
    const flat = (get: (node: CfgNode) => number[]): [Int32Array, Int32Array] => {
      const start = new Int32Array(n + 1);
      for (let i = 0; i < n; i++) start[i + 1] = start[i] + get(cfg.nodes[i]).length;
      const list = new Int32Array(start[n]);
      for (let i = 0; i < n; i++) list.set(get(cfg.nodes[i]), start[i]);
      return [start, list];
    };
    [this.succStart, this.succ] = flat((x) => x.succ);
    [this.predStart, this.pred] = flat((x) => x.pred);
    // Each node is pushed at most once per search.
    this.stack = new Int32Array(n + 1);
  }

  /** Whether `to` lies on some path from `from` (of one edge or more, or `from === to`). */
  reaches(from: number, to: number): boolean {
    if (from === to) return true;
    const fwd = this.get(from);
    if (fwd) return (fwd[to >>> 5] & (1 << (to & 31))) !== 0;
    const bwd = this.get(-1 - to);
    if (bwd) return (bwd[from >>> 5] & (1 << (from & 31))) !== 0;
    const f = ++this.askedFrom[from];
    const b = ++this.askedTo[to];
    // Ties go to the target: rules mostly ask "does any of these reach t" in an inner loop.
    if (f > b) return (this.closure(from, true)[to >>> 5] & (1 << (to & 31))) !== 0;
    return (this.closure(to, false)[from >>> 5] & (1 << (from & 31))) !== 0;
  }

  private get(key: number): Uint32Array | undefined {
    const e = this.sets.get(key);
    if (!e) return undefined;
    e.used = ++this.clock;
    return e.bits;
  }

  private closure(start: number, forward: boolean): Uint32Array {
    const set = new Uint32Array(this.words);
    const first = forward ? this.succStart : this.predStart;
    const list = forward ? this.succ : this.pred;
    const stack = this.stack;
    let top = 0;
    stack[top++] = start;
    while (top > 0) {
      const id = stack[--top];
      for (let e = first[id], end = first[id + 1]; e < end; e++) {
        const s = list[e];
        const w = s >>> 5;
        const bit = 1 << (s & 31);
        if (set[w] & bit) continue;
        set[w] |= bit;
        stack[top++] = s;
      }
    }
    if (this.sets.size >= this.maxSets) {
      // The least recently used goes (a scan: it happens only on CFGs of thousands of nodes).
      let oldest: number | undefined;
      let min = Infinity;
      for (const [k, e] of this.sets) if (e.used < min) [oldest, min] = [k, e.used];
      this.sets.delete(oldest!);
    }
    this.sets.set(forward ? start : -1 - start, { bits: set, used: ++this.clock });
    return set;
  }
}
