/**
 * Reading the files of a source tree for patch review's whole-file mode
 * (`readTarget` of patch/review.ts), shared by the CLI (`--tree DIR`, or the
 * kernel tree the command runs in) and the language server (the workspace).
 *
 * The paths come from the patch, which is untrusted input: a path is read
 * only when it is relative, has no `..` segment, and resolves (symlinks
 * included) to a regular file inside the root. Anything else, a file larger
 * than the limit, a binary file or an I/O error reads as "not in the tree"
 * (undefined). Never throws.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { decodeBytes } from '../core/text';

/** The root holds a kernel tree: MAINTAINERS and Kbuild at its top (as the language server's KernelRoots says). */
export function isKernelTreeRoot(dir: string): boolean {
  try {
    return fs.statSync(path.join(dir, 'MAINTAINERS')).isFile() && fs.statSync(path.join(dir, 'Kbuild')).isFile();
  } catch {
    return false;
  }
}

/** Whether `file` is `dir` or inside it (both absolute and normalised). */
export function isInside(file: string, dir: string): boolean {
  const rel = path.relative(dir, file);
  return rel === '' || (rel !== '..' && !rel.startsWith('..' + path.sep) && !path.isAbsolute(rel));
}

/**
 * A patch path (forward slashes, as a patch names files) checked for use
 * under a root: undefined when it is absolute, empty, holds a NUL, a
 * backslash or a `..` segment.
 */
export function safeRelativePath(p: string): string | undefined {
  if (!p || p.includes('\0') || p.includes('\\')) return undefined;
  if (p.startsWith('/') || path.isAbsolute(p) || path.win32.isAbsolute(p)) return undefined;
  const segments = p.split('/');
  if (segments.some((s) => s === '..')) return undefined;
  const clean = segments.filter((s) => s !== '' && s !== '.');
  return clean.length ? clean.join('/') : undefined;
}

interface CachedFile {
  mtimeMs: number;
  size: number;
  text: string | undefined;
}

export class TreeReader {
  readonly root: string;
  private realRoot: string | undefined | null = null;
  private readonly cache = new Map<string, CachedFile>();

  constructor(
    root: string,
    private readonly maxBytes: number,
    private readonly maxCached = 256,
  ) {
    this.root = path.resolve(root);
  }

  /** The absolute file a patch path names inside the root, or undefined when it may not be read. */
  resolve(p: string): string | undefined {
    const rel = safeRelativePath(p);
    if (!rel) return undefined;
    const file = path.resolve(this.root, ...rel.split('/'));
    return isInside(file, this.root) && file !== this.root ? file : undefined;
  }

  /** The text of `p` (relative to the root), or undefined. */
  read(p: string): string | undefined {
    const file = this.resolve(p);
    if (!file) return undefined;
    try {
      // Symlinks: what the file really is must still be inside the (real) root.
      if (this.realRoot === null) this.realRoot = safeRealpath(this.root);
      const real = safeRealpath(file);
      if (!real || !this.realRoot || !isInside(real, this.realRoot)) return undefined;
      const st = fs.statSync(real);
      if (!st.isFile() || st.size > this.maxBytes) return undefined;
      const cached = this.cache.get(real);
      if (cached && cached.mtimeMs === st.mtimeMs && cached.size === st.size) return cached.text;
      const bytes = fs.readFileSync(real);
      let text: string | undefined;
      if (bytes.length <= this.maxBytes) {
        const d = decodeBytes(bytes);
        text = 'binary' in d ? undefined : d.text;
      }
      if (this.cache.size >= this.maxCached) this.cache.delete(this.cache.keys().next().value as string);
      this.cache.set(real, { mtimeMs: st.mtimeMs, size: st.size, text });
      return text;
    } catch {
      return undefined;
    }
  }
}

function safeRealpath(p: string): string | undefined {
  try {
    return fs.realpathSync(p);
  } catch {
    return undefined;
  }
}
