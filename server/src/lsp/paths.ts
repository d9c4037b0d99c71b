/**
 * A document's path relative to the root of the kernel tree it sits in, for
 * AnalyzeOptions.path (rules may rank findings by path, e.g. drivers/ vs mm/).
 * The root is the nearest folder above the file holding both MAINTAINERS and
 * Kbuild. Lookups are cached per folder; any I/O problem just means "unknown".
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

export class KernelRoots {
  private readonly rootOf = new Map<string, string | null>();

  relativePath(uri: string): string | undefined {
    if (!uri.startsWith('file:')) return undefined;
    let file: string;
    try {
      file = fileURLToPath(uri);
    } catch {
      return undefined;
    }
    const root = this.findRoot(path.dirname(file));
    if (!root) return undefined;
    return path.relative(root, file).split(path.sep).join('/');
  }

  clear(): void {
    this.rootOf.clear();
  }

  private findRoot(dir: string): string | undefined {
    const seen: string[] = [];
    let found: string | null = null;
    let d = dir;
    for (let i = 0; i < 40; i++) {
      const cached = this.rootOf.get(d);
      if (cached !== undefined) {
        found = cached;
        break;
      }
      seen.push(d);
      if (isKernelRoot(d)) {
        found = d;
        break;
      }
      const up = path.dirname(d);
      if (up === d) break;
      d = up;
    }
    for (const s of seen) this.rootOf.set(s, found);
    return found ?? undefined;
  }
}

function isKernelRoot(dir: string): boolean {
  try {
    return fs.statSync(path.join(dir, 'MAINTAINERS')).isFile() && fs.statSync(path.join(dir, 'Kbuild')).isFile();
  } catch {
    return false;
  }
}
