/**
 * Recording a run: model operations append steps as they execute, and the
 * first terminal state they reach becomes the outcome.
 */
import type { Span } from '../core/types';
import type { ModelActor, Outcome, OutcomeKind, Run, Step, TopologyPicture } from './types';

/** Thrown by model operations when the simulated machine reaches a terminal state. */
export class Terminal extends Error {
  constructor(readonly outcome: Outcome) {
    super(outcome.summary);
  }
}

export function terminal(kind: OutcomeKind, summary: string, target?: string): never {
  throw new Terminal({ kind, summary, target });
}

export class Recorder {
  readonly steps: Step[] = [];
  /** Source location attached to the steps of the current code event. */
  private where?: Span;
  notes: string[] = [];
  topology?: TopologyPicture;

  constructor(readonly rule: string, readonly world: string) {}

  step(actor: ModelActor, action: string, state?: Record<string, string | number | boolean>, location?: Span): void {
    const s: Step = { actor, action };
    if (state) s.state = Object.fromEntries(Object.entries(state).map(([k, v]) => [k, String(v)]));
    const loc = location ?? this.where;
    if (loc) s.location = { start: loc.start, end: loc.end };
    this.steps.push(s);
  }

  /** Runs `f` with `span` as the location of the steps it records (a code event of the user's). */
  at<T>(span: Span | undefined, f: () => T): T {
    const saved = this.where;
    this.where = span;
    try {
      return f();
    } finally {
      this.where = saved;
    }
  }

  note(text: string): void {
    if (!this.notes.includes(text)) this.notes.push(text);
  }

  /** Runs a scenario to its terminal state. A scenario that ends without one ran to OK. */
  static run(rule: string, world: string, scenario: (r: Recorder) => void): Run {
    const r = new Recorder(rule, world);
    let outcome: Outcome;
    try {
      scenario(r);
      outcome = { kind: 'OK', summary: 'the run finished without reaching a failure in this world' };
    } catch (e) {
      if (!(e instanceof Terminal)) throw e;
      outcome = e.outcome;
      r.step(actorFor(outcome.kind), outcome.summary, outcome.target ? { outcome: outcome.kind, target: outcome.target } : { outcome: outcome.kind });
    }
    const run: Run = { rule, world, steps: r.steps, outcome };
    if (r.notes.length) run.worldNotes = r.notes;
    if (r.topology) run.topology = r.topology;
    return run;
  }
}

function actorFor(kind: OutcomeKind): ModelActor {
  switch (kind) {
    case 'IOMMU_FAULT':
      return 'iommu';
    case 'UR_AER':
      return 'bus';
    case 'SILENT_CORRUPTION':
      return 'device';
    default:
      return 'kernel';
  }
}

export function hex(n: bigint | number): string {
  return '0x' + (typeof n === 'bigint' ? n : BigInt(n)).toString(16);
}
