/**
 * The C parser: web-tree-sitter with the tree-sitter-c grammar, behind the
 * kernel sanitizer. The caller hands in the two wasm images as bytes (the core
 * does no I/O). Parsing never fails: kernel macros that still confuse the
 * grammar become ERROR nodes, and analysis goes on around them.
 */
import { Language, Parser, type Node, type Range, type Tree } from 'web-tree-sitter';
import { AstCache, copyTree, type AstNode } from './ast';
import { diffEdit, PointIndex } from './positions';
import { sanitize, type Sanitized } from './sanitize';
import { functionBodies } from './skeleton';
import type { Span } from './types';

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
    // A lazily parsed previous tree lacks bodies: reuse it only once filled in (else parse afresh).
    if (previous && !previous.deleted && !previous.complete && !(previous.parsedWhole && previous.fillIn())) {
      previous.delete();
      previous = undefined;
    }
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
    const { tree, timedOut } = this.run(san.text, old, budgetMs);
    // The copies made from the previous tree, for the subtrees this parse reused (core/ast.ts AstCache).
    const asts = old && tree ? previous!.takeAsts() : undefined;
    if (old) previous!.delete();
    if (!tree) return this.failed(text);
    return new ParsedFile(text, san, tree, timedOut, asts);
  }

  /**
   * Parses `text` for a one-shot analysis, leaving out the insides of the
   * function bodies core/skeleton.ts finds: the tree has every top-level
   * declaration, and each function with its name and parameters and an empty
   * body. ParsedFile parses a body when its facts are built (`copyFunction`)
   * and the whole text when a rule asks for it (`fullRoot`); the analysis
   * finds what it finds on a full parse of real code (core/skeleton.ts says
   * where it may not). A `previous` for `parse` only once filled in (`fillIn`).
   */
  parseLazily(text: string, budgetMs = 5000): ParsedFile {
    if (text.length > MAX_TEXT_CHARS) return this.parse(text, undefined, budgetMs);
    const san = sanitize(text);
    const bodies = functionBodies(san.text);
    let ranges: Range[] | undefined;
    let lazy: LazyParts | undefined;
    if (bodies.length) {
      const points = new PointIndex(san.text);
      ranges = [];
      let from = 0;
      for (const b of [...bodies, { start: san.text.length, end: san.text.length }]) {
        if (b.start > from) ranges.push(points.range(from, b.start));
        from = b.end;
      }
      lazy = {
        elided: bodies,
        parse: (within) => this.run(san.text, undefined, budgetMs, within?.map((r) => points.range(r.start, r.end))).tree,
      };
    }
    const { tree, timedOut } = this.run(san.text, undefined, budgetMs, ranges);
    if (!tree) return this.failed(text);
    return new ParsedFile(text, san, tree, timedOut, undefined, false, lazy);
  }

  /** One parse, within `budgetMs` (a null tree when the parser gave up; `timedOut` when the budget ended it). */
  private run(text: string, old: Tree | undefined, budgetMs: number, includedRanges?: Range[]): { tree: Tree | null; timedOut: boolean } {
    const deadline = Date.now() + budgetMs;
    let timedOut = false;
    const tree = this.parser.parse(text, old ?? null, {
      ...(includedRanges ? { includedRanges } : {}),
      progressCallback: () => {
        if (Date.now() > deadline) {
          timedOut = true;
          return true;
        }
        return false;
      },
    } as never);
    if (!tree) this.parser.reset();
    return { tree, timedOut };
  }

  /** The empty tree goes with the empty sanitized text, so that a later incremental parse starts from a consistent pair. */
  private failed(text: string): ParsedFile {
    return new ParsedFile(text, NOTHING, this.empty(), true);
  }

  private empty(): Tree {
    return this.parser.parse('')!;
  }
}

/** What a lazily parsed file (CParser.parseLazily) keeps to parse what it left out. */
interface LazyParts {
  /** The insides of the function bodies the tree leaves out, in order. */
  elided: Span[];
  /** Parses the file's sanitized text, within the given ranges (all of it without). */
  parse(ranges?: Span[]): Tree | null;
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
    private _tree: Tree,
    /** The parse ran past its budget; the tree is empty. */
    readonly timedOut: boolean,
    /** From the previous parse of the same document, when this tree was made from its tree. */
    asts?: AstCache,
    /** The text is longer than MAX_TEXT_CHARS: not parsed; the tree is empty. */
    readonly tooLarge = false,
    /** Parsed without some function bodies (CParser.parseLazily), until `fillIn`. */
    private lazy?: LazyParts,
  ) {
    this._asts = asts ?? new AstCache();
    this._asts.useText(_sanitized.text);
  }

  get tree(): Tree {
    return this._tree;
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
    if (this.owned) this._tree.delete();
    if (this.full && this.full !== this._tree) this.full.delete();
    this.full = undefined;
  }

  private full: Tree | undefined;

  /** Whether `tree` has every function body (a lazily parsed file has not, until `fillIn`). */
  get complete(): boolean {
    return !this.lazy || !this.lazy.elided.length;
  }

  /** Whether the whole text has been parsed (the tree is complete, or `fullRoot` or `copyFunction` parsed it all). */
  get parsedWhole(): boolean {
    return this.complete || this.full !== undefined;
  }

  /**
   * Makes a lazily parsed file an ordinary one: its tree becomes that of the
   * whole text (parsed now unless `fullRoot` did), fit for an incremental
   * reparse. The language server does this after publishing a document's
   * first diagnostics. False when the parse did not finish (the file stays
   * lazy).
   */
  fillIn(): boolean {
    if (this._deleted || this.complete) return !this._deleted;
    const full = this.full ?? this.lazy!.parse();
    if (!full) return false;
    if (this.owned) this._tree.delete();
    this._tree = full;
    this.full = undefined;
    this.lazy = undefined;
    this.owned = true;
    // The copies came from the tree just freed.
    this._asts = new AstCache();
    this._asts.useText(this._sanitized.text);
    return true;
  }

  /**
   * The root of the whole file's tree, function bodies included (for a rule
   * that walks every node). A lazily parsed file parses its text again for
   * it, once.
   */
  fullRoot(): Node {
    if (!this.lazy || this._deleted || this.complete) return this._tree.rootNode;
    this.full ??= this.lazy.parse() ?? undefined;
    return (this.full ?? this._tree).rootNode;
  }

  /**
   * The copy of a function_definition node of this tree. When its body was
   * left out (a lazily parsed file), the function's own range of the text is
   * parsed for it: the same node as a full parse gives (else the full tree's).
   */
  copyFunction(node: Node): AstNode {
    if (!this.lazy || this._deleted || !this.elidedWithin(node.startIndex, node.endIndex)) return this.asts.copy(node);
    const start = node.startIndex;
    const end = node.endIndex;
    if (this.full) return copyTree(this.sameNode(this.full.rootNode, node) ?? node);
    const tree = this.lazy.parse([{ start, end }]);
    if (tree) {
      try {
        const own = tree.rootNode.namedChildren.find((c) => c && c.type === node.type && c.startIndex === start && c.endIndex === end);
        if (own) return copyTree(own);
      } finally {
        tree.delete();
      }
    }
    return copyTree(this.sameNode(this.fullRoot(), node) ?? node);
  }

  /** Whether some left-out body lies within [start, end). */
  private elidedWithin(start: number, end: number): boolean {
    const e = this.lazy!.elided;
    let lo = 0;
    let hi = e.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (e[mid].start < start) lo = mid + 1;
      else hi = mid;
    }
    return lo < e.length && e[lo].end <= end;
  }

  /** The node of `root`'s tree with `node`'s type and range. */
  private sameNode(root: Node, node: Node): Node | undefined {
    for (let n: Node | null = root.descendantForIndex(node.startIndex, node.endIndex); n; n = n.parent) {
      if (n.startIndex === node.startIndex && n.endIndex === node.endIndex && n.type === node.type) return n;
      if (n.startIndex < node.startIndex || n.endIndex > node.endIndex) break;
    }
    return undefined;
  }

  /** Hands the tree over to a successor; this object no longer frees it. */
  disown(): void {
    this.owned = false;
    this._deleted = true;
    this._sanitized = RELEASED;
  }
}
