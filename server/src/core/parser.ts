/**
 * The C parser: web-tree-sitter with the tree-sitter-c grammar, behind the
 * kernel sanitizer. The caller hands in the two wasm images as bytes (the core
 * does no I/O). Parsing never fails: kernel macros that still confuse the
 * grammar become ERROR nodes, and analysis goes on around them.
 */
import { Language, Parser, type Tree } from 'web-tree-sitter';
import { diffEdit } from './positions';
import { sanitize, type Sanitized } from './sanitize';

export interface WasmImages {
  /** web-tree-sitter's runtime (tree-sitter.wasm). */
  runtime: Uint8Array;
  /** The C grammar (tree-sitter-c.wasm). */
  language: Uint8Array;
}

let runtimeReady: Promise<void> | undefined;

export class CParser {
  private constructor(private readonly parser: Parser) {}

  static async load(wasm: WasmImages): Promise<CParser> {
    runtimeReady ??= Parser.init({ wasmBinary: wasm.runtime });
    await runtimeReady;
    const language = await Language.load(wasm.language);
    const parser = new Parser();
    parser.setLanguage(language);
    return new CParser(parser);
  }

  /**
   * Parses `text`. With `previous`, reuses its tree incrementally (the edit is
   * computed from the sanitized texts) and takes ownership of it: `previous`
   * must not be used afterwards. `budgetMs` bounds the parse; past it the file
   * is treated as having no code (a notice says so).
   */
  parse(text: string, previous?: ParsedFile, budgetMs = 5000): ParsedFile {
    const san = sanitize(text);
    let old: Tree | undefined;
    if (previous && !previous.deleted) {
      const edit = diffEdit(previous.sanitized.text, san.text);
      if (!edit) {
        // Same sanitized text: keep the tree, update the source text.
        const same = new ParsedFile(text, san, previous.tree, false);
        previous.disown();
        return same;
      }
      old = previous.tree;
      old.edit(edit);
    }
    const deadline = Date.now() + budgetMs;
    let timedOut = false;
    const tree = this.parser.parse(san.text, old ?? null, {
      progressCallback: () => {
        if (Date.now() > deadline) {
          timedOut = true;
          return true;
        }
        return false;
      },
    } as never);
    if (old) previous!.delete();
    if (!tree) {
      this.parser.reset();
      const empty = this.parser.parse('')!;
      return new ParsedFile(text, san, empty, true);
    }
    return new ParsedFile(text, san, tree, timedOut);
  }
}

/** A parsed document: the original text, its sanitized twin and the tree. */
export class ParsedFile {
  private _deleted = false;
  private owned = true;

  constructor(
    readonly text: string,
    readonly sanitized: Sanitized,
    readonly tree: Tree,
    /** The parse ran past its budget; the tree is empty. */
    readonly timedOut: boolean,
  ) {}

  get deleted(): boolean {
    return this._deleted;
  }

  /** Frees the tree (web-tree-sitter trees live in wasm memory until deleted). */
  delete(): void {
    if (this._deleted) return;
    this._deleted = true;
    if (this.owned) this.tree.delete();
  }

  /** Hands the tree over to a successor; this object no longer frees it. */
  disown(): void {
    this.owned = false;
    this._deleted = true;
  }
}
