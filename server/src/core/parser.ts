/**
 * The C parser: web-tree-sitter with the tree-sitter-c grammar, behind the
 * kernel sanitizer. The caller hands in the two wasm images as bytes (the core
 * does no I/O). Parsing never fails: kernel macros that still confuse the
 * grammar become ERROR nodes, and analysis goes on around them.
 */
import { Language, Parser, type Tree } from 'web-tree-sitter';
import { AstCache } from './ast';
import { diffEdit } from './positions';
import { sanitize, type Sanitized } from './sanitize';

export interface WasmImages {
  /** web-tree-sitter's runtime (tree-sitter.wasm). */
  runtime: Uint8Array;
  /** The C grammar (tree-sitter-c.wasm). */
  language: Uint8Array;
}

let runtimeReady: Promise<void> | undefined;

/**
 * Texts longer than this (UTF-16 code units) are not parsed; the analysis says
 * so with a `too-large` notice. The faces cap files by size first (4 MB by
 * default, `dmalens.maxFileSize`, `--max-size`); this bounds the core for every
 * caller. Twice the faces' default: the parse budget ends bigger files anyway.
 */
export const MAX_TEXT_CHARS = 8 * 1024 * 1024;

const NOTHING: Sanitized = { text: '', iterators: new Map() };

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
    if (text.length > MAX_TEXT_CHARS) {
      // Not even sanitized. The tree is that of the empty text, which an incremental reparse starts from.
      if (previous && !previous.deleted) previous.delete();
      return new ParsedFile(text, NOTHING, this.empty(), false, undefined, true);
    }
    const san = sanitize(text);
    let old: Tree | undefined;
    if (previous && !previous.deleted) {
      const edit = diffEdit(previous.sanitized.text, san.text);
      if (!edit) {
        // Same sanitized text: keep the tree (and its copies), update the source text.
        const same = new ParsedFile(text, san, previous.tree, false, previous.takeAsts());
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
    // The copies made from the previous tree, for the subtrees this parse reused (core/ast.ts AstCache).
    const asts = old && tree ? previous!.takeAsts() : undefined;
    if (old) previous!.delete();
    if (!tree) {
      this.parser.reset();
      // The empty tree goes with the empty sanitized text, so that a later incremental parse starts from a consistent pair.
      return new ParsedFile(text, NOTHING, this.empty(), true);
    }
    return new ParsedFile(text, san, tree, timedOut, asts);
  }

  private empty(): Tree {
    return this.parser.parse('')!;
  }
}

const RELEASED: Sanitized = { text: '', iterators: new Map() };

/** A parsed document: the original text, its sanitized twin and the tree. */
export class ParsedFile {
  private _deleted = false;
  private owned = true;

  /** Copies of this tree's subtrees (core/facts.ts makes them through it), carried to the next incremental parse. */
  private _asts: AstCache;

  constructor(
    readonly text: string,
    private _sanitized: Sanitized,
    readonly tree: Tree,
    /** The parse ran past its budget; the tree is empty. */
    readonly timedOut: boolean,
    /** From the previous parse of the same document, when this tree was made from its tree. */
    asts?: AstCache,
    /** The text is longer than MAX_TEXT_CHARS: not parsed; the tree is empty. */
    readonly tooLarge = false,
  ) {
    this._asts = asts ?? new AstCache();
    this._asts.useText(_sanitized.text);
  }

  /** The sanitized twin of `text` (released by `delete`: only a live tree needs it). */
  get sanitized(): Sanitized {
    return this._sanitized;
  }

  get asts(): AstCache {
    return this._asts;
  }

  /** Hands the copies over to the next parse (which made its tree from this one). */
  takeAsts(): AstCache {
    const asts = this._asts;
    this._asts = new AstCache();
    asts.advance();
    return asts;
  }

  get deleted(): boolean {
    return this._deleted;
  }

  /** Frees the tree (web-tree-sitter trees live in wasm memory until deleted). */
  delete(): void {
    if (this._deleted) return;
    this._deleted = true;
    this._asts.clear();
    this._sanitized = RELEASED;
    if (this.owned) this.tree.delete();
  }

  /** Hands the tree over to a successor; this object no longer frees it. */
  disown(): void {
    this.owned = false;
    this._deleted = true;
    this._sanitized = RELEASED;
  }
}
