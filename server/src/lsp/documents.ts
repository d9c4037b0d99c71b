/**
 * Open documents: text kept in sync incrementally (vscode-languageserver-
 * textdocument applies the edits), plus each document's analyser state and the
 * result of its last analysis (for hovers, the model's runs and code actions):
 * the findings of that version, events included, with its text.
 */
import { TextDocument } from 'vscode-languageserver-textdocument';
import type { TextDocumentContentChangeEvent } from 'vscode-languageserver/node';
import { LineIndex } from '../core/positions';
import type { Finding } from '../core/types';
import type { DocumentAnalyser } from './analysers';

/** What the last completed analysis of a document produced. */
export interface AnalysedVersion {
  version: number;
  /** The analysed text (the document's text at `version`). */
  text: string;
  /** Line index over the analysed text (offsets of `findings` point into it). */
  index: LineIndex;
  findings: Finding[];
  errorNodes: number;
}

export class OpenDocument {
  /** Analyser state (for C, the parsed tree); owned by `analyser`. */
  state: unknown = undefined;
  /** Bumped whenever a new analysis is wanted; a run that sees a newer value stops. */
  generation = 0;
  timer: NodeJS.Timeout | undefined;
  last: AnalysedVersion | undefined;

  constructor(
    public doc: TextDocument,
    /** Set when the document is opened, or once the analysers have loaded. */
    public analyser: DocumentAnalyser | undefined,
  ) {}

  get uri(): string {
    return this.doc.uri;
  }
  get version(): number {
    return this.doc.version;
  }
  get languageId(): string {
    return this.doc.languageId;
  }
  get text(): string {
    return this.doc.getText();
  }

  /** Frees the analyser state (tree) and forgets the last result. */
  dropState(): void {
    if (this.state !== undefined && this.analyser) this.analyser.dispose(this.state);
    this.state = undefined;
  }

  dispose(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.generation++;
    this.dropState();
    this.last = undefined;
  }
}

export class DocumentStore {
  private readonly docs = new Map<string, OpenDocument>();

  constructor(private readonly analyserFor: (languageId: string) => DocumentAnalyser | undefined) {}

  open(uri: string, languageId: string, version: number, text: string): OpenDocument {
    this.close(uri);
    const d = new OpenDocument(TextDocument.create(uri, languageId, version, text), this.analyserFor(languageId));
    this.docs.set(uri, d);
    return d;
  }

  /** Applies incremental (or full) changes; returns undefined for a document that is not open. */
  change(uri: string, version: number, changes: TextDocumentContentChangeEvent[]): OpenDocument | undefined {
    const d = this.docs.get(uri);
    if (!d) return undefined;
    d.doc = TextDocument.update(d.doc, changes, version);
    return d;
  }

  close(uri: string): OpenDocument | undefined {
    const d = this.docs.get(uri);
    if (!d) return undefined;
    this.docs.delete(uri);
    d.dispose();
    return d;
  }

  get(uri: string): OpenDocument | undefined {
    return this.docs.get(uri);
  }

  all(): OpenDocument[] {
    return [...this.docs.values()];
  }

  disposeAll(): void {
    for (const d of this.docs.values()) d.dispose();
    this.docs.clear();
  }
}
