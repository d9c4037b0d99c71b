/**
 * Per-language analysers the document store plugs in by languageId. Each one
 * keeps whatever state it wants per open document (the C analyser: one parsed
 * tree, reparsed incrementally) and turns a document's text into an
 * AnalysisResult whose spans are offsets into that same text. A patch / mail
 * analyser (languageId `diff`, later) implements the same interface and maps
 * its findings back to the patch text itself.
 */
import type { Analyzer, ParsedFile } from '../core/analyzer';
import type { AnalysisResult, AnalyzeOptions } from '../core/types';

export interface DocumentAnalyser<State = unknown> {
  /** Short name for logs. */
  readonly name: string;
  /** LSP languageIds this analyser handles. */
  readonly languageIds: readonly string[];
  /**
   * Analyses `text`. `state` is what the previous call returned for the same
   * document (undefined the first time, or after `dispose`); it is consumed.
   * Returns the new state to keep. May throw; then the analyser has already
   * freed everything, `state` included, and the caller just reports it.
   */
  analyze(text: string, state: State | undefined, options: AnalyzeOptions): { result: AnalysisResult; state: State };
  /** Frees a document's state (closed, or no longer analysed). Never throws. */
  dispose(state: State): void;
}

/** Kernel C: one tree per document, reparsed incrementally. */
export class CAnalyser implements DocumentAnalyser<ParsedFile> {
  readonly name = 'c';
  readonly languageIds = ['c'] as const;

  constructor(private readonly analyzer: Analyzer) {}

  analyze(text: string, state: ParsedFile | undefined, options: AnalyzeOptions): { result: AnalysisResult; state: ParsedFile } {
    let parsed: ParsedFile;
    try {
      parsed = this.analyzer.parse(text, state && !state.deleted ? state : undefined);
    } catch (e) {
      if (state && !state.deleted) this.dispose(state);
      throw e;
    }
    try {
      return { result: this.analyzer.analyze(parsed, options), state: parsed };
    } catch (e) {
      this.dispose(parsed);
      throw e;
    }
  }

  dispose(state: ParsedFile): void {
    try {
      state.delete();
    } catch {
      /* a tree that cannot be freed is leaked, not fatal */
    }
  }
}

export class AnalyserRegistry {
  private readonly byLanguage = new Map<string, DocumentAnalyser>();

  register(a: DocumentAnalyser<any>): void {
    for (const id of a.languageIds) this.byLanguage.set(id, a);
  }

  forLanguage(languageId: string): DocumentAnalyser | undefined {
    return this.byLanguage.get(languageId);
  }

  languages(): string[] {
    return [...this.byLanguage.keys()];
  }
}
