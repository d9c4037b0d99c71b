/**
 * The simulated model's public vocabulary: a run is the model's own replay of
 * a finding, step by step, from the user's code to a terminal outcome.
 * Pure data; nothing here knows the editor, the protocol or the terminal.
 */
import type { Span } from '../core/types';

/** Terminal outcomes (the hazard catalog's failure terminals, plus OK). */
export type OutcomeKind =
  | 'OK'
  | 'SILENT_CORRUPTION'
  | 'IOMMU_FAULT'
  | 'UR_AER'
  | 'CPU_FAULT'
  | 'HANG'
  | 'DEADLOCK'
  | 'UAF'
  | 'LEAK'
  | 'LIVELOCK'
  | 'WARN'
  /** The operation fails with an error code: nothing is corrupted, but it never works on this machine. */
  | 'IO_ERROR';

export interface Outcome {
  kind: OutcomeKind;
  /** What is hurt: "host RAM at 0x1_2000_0000", "VRAM reused by another BO", "the faulting task". */
  target?: string;
  /** One line a developer reads first. */
  summary: string;
}

export type ModelActor = 'cpu' | 'driver' | 'kernel' | 'device' | 'iommu' | 'bus' | 'user';

export interface Step {
  actor: ModelActor;
  /** What happened, in a sentence. */
  action: string;
  /** State that changed: {"resv(buf)": "held by T1", "pin_count": "1"}. */
  state?: Record<string, string>;
  /** Where in the user's code this step comes from, when it does. */
  location?: Span;
}

/** A PCIe/system topology node, for drawing. */
export interface TopoNode {
  id: string;
  kind: 'cpu' | 'hostbridge' | 'rootport' | 'switch-up' | 'switch-down' | 'endpoint' | 'iommu' | 'ram';
  label: string;
  parent?: string;
  /** Extra facts shown next to the node (BDF, ids, ACS bits, IOMMU mode). */
  notes?: string[];
}

export interface TopologyPicture {
  nodes: TopoNode[];
  /** The DMA path, as node ids from the initiator to the target. */
  path: string[];
  /** Where the path breaks, if it does. */
  breakAt?: { node: string; reason: string };
}

export interface Run {
  rule: string;
  /** Short description of the world the run happened in. */
  world: string;
  steps: Step[];
  outcome: Outcome;
  /** How the outcome changes with the world ("behind one PCIe switch the transfer works"). */
  worldNotes?: string[];
  /**
   * For a run that ends OK on the user's topology: a world the model tried
   * where the same code fails ("the rule's default world"), and that outcome.
   */
  failsIn?: { world: string; outcome: Outcome };
  topology?: TopologyPicture;
}
