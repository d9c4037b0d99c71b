/**
 * Finds and reads the parser's wasm images. Node-only: used by the CLI and
 * the language server, never by the core (which takes the bytes).
 *
 * Layouts searched, in order:
 *   bundled   server/dist/{tree-sitter.wasm,tree-sitter-c.wasm}
 *   dev/tests grammars/tree-sitter-c.wasm and web-tree-sitter's own runtime
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { WasmImages } from '../core/parser';

function findUp(names: string[]): string | undefined {
  let dir = __dirname;
  for (let i = 0; i < 6; i++) {
    for (const n of names) {
      const p = path.join(dir, n);
      if (fs.existsSync(p)) return p;
    }
    const up = path.dirname(dir);
    if (up === dir) break;
    dir = up;
  }
  return undefined;
}

export function wasmPaths(): { runtime: string; language: string } {
  const language = findUp(['tree-sitter-c.wasm', 'dist/tree-sitter-c.wasm', 'grammars/tree-sitter-c.wasm']);
  let runtime = findUp(['tree-sitter.wasm', 'dist/tree-sitter.wasm']);
  if (!runtime) {
    try {
      runtime = require.resolve('web-tree-sitter/tree-sitter.wasm');
    } catch {
      /* reported below */
    }
  }
  if (!language || !runtime) {
    throw new Error(
      `cannot find the parser's wasm files (${!language ? 'tree-sitter-c.wasm' : 'tree-sitter.wasm'}); run npm run build`,
    );
  }
  return { runtime, language };
}

export function loadWasm(): WasmImages {
  const p = wasmPaths();
  return { runtime: fs.readFileSync(p.runtime), language: fs.readFileSync(p.language) };
}
