/**
 * Where a rule's documentation page lives: docs/rules/<ID>.md. Node-only;
 * shared by the faces: the language server links diagnostics and hovers to
 * it, `dmalens check --format sarif` gives it as each rule's helpUri.
 *
 * - a base URI, when one is given (the language server's
 *   initializationOptions.docsBaseUri; any URI; the page is <base>/<ID>.md);
 * - else the extension's, the package's or the repository's docs/rules
 *   folder, found from the code's own location: the bundles run from
 *   <ext>/server/dist, the tsc output from <repo>/server/out/src/node.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';

export class RuleDocs {
  private readonly exists = new Map<string, boolean>();

  private constructor(
    /** Base URI ending in '/', or undefined when no docs were found. */
    readonly base: string | undefined,
    /** Local folder behind `base`, when it is one we found (pages are checked to exist). */
    private readonly folder: string | undefined,
  ) {}

  static create(override?: unknown, from: string = __dirname): RuleDocs {
    if (typeof override === 'string' && override.trim() !== '') {
      const b = override.trim();
      return new RuleDocs(b.endsWith('/') ? b : b + '/', undefined);
    }
    const folder = findDocsFolder(from);
    return new RuleDocs(folder ? pathToFileURL(folder + path.sep).href : undefined, folder);
  }

  /** The page for a rule, or undefined when there is none to link to. */
  href(ruleId: string): string | undefined {
    if (!this.base || !/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(ruleId)) return undefined;
    if (this.folder) {
      let ok = this.exists.get(ruleId);
      if (ok === undefined) {
        ok = fs.existsSync(path.join(this.folder, ruleId + '.md'));
        this.exists.set(ruleId, ok);
      }
      if (!ok) return undefined;
    }
    return this.base + encodeURIComponent(ruleId) + '.md';
  }
}

function findDocsFolder(from: string): string | undefined {
  let dir = from;
  for (let i = 0; i < 6; i++) {
    const candidate = path.join(dir, 'docs', 'rules');
    try {
      if (fs.statSync(candidate).isDirectory()) return candidate;
    } catch {
      /* keep looking */
    }
    const up = path.dirname(dir);
    if (up === dir) break;
    dir = up;
  }
  return undefined;
}
