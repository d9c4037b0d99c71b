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

/** Whether node `to` can be reached from node `from` (a node reaches itself), not passing through nodes `stop` accepts. */
export function reaches(cfg: Cfg, from: number, to: number, stop?: (n: CfgNode) => boolean): boolean {
  if (from === to) return true;
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
