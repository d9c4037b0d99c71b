/**
 * A second real editor: Neovim (Debian's 0.7.2, headless, `--clean`) starts
 * the language server over stdio with its built-in LSP client
 * (fixtures/neovim/init.lua) and must get, for a driver file of examples/,
 * the diagnostics examples/README.md lists, a hover on one of them, and
 * (when the server offers code actions) the quick fix; for the examples'
 * patch series (when the server reviews patches, languageId kernel-mail)
 * diagnostics on the added lines and a CodeLens per patch.
 *
 * Needs Debian's neovim: installed with apt-get as root (scripts/system.js),
 * else the test fails with the command to run. DMALENS_SKIP_E2E=1 skips it.
 */
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

const REPO = path.resolve(__dirname, '..', '..', '..');
const SKIP = process.env.DMALENS_SKIP_E2E === '1' ? 'DMALENS_SKIP_E2E=1' : false;
const DRIVER = 'drivers/gpu/acme_dmabuf_import.c';
const SERIES = 'patches/v3_20250310_jane_doe_drm_acme_fast_paths.mbx';

interface NvimDiagnostic {
  line: number;
  col: number;
  code: string;
  severity: number;
  source: string;
  message: string;
}
interface NvimResult {
  errors: string[];
  c_ms?: number;
  total_ms?: number;
  capabilities?: { hover: boolean; codeAction: boolean; codeLens: boolean };
  c?: { arrived: boolean; diagnostics: NvimDiagnostic[] };
  hover?: string;
  code_actions?: { title: string; kind?: string; has_edit: boolean; preferred?: boolean }[];
  patch?: {
    arrived: boolean;
    analysed: boolean;
    language_id?: string;
    diagnostics: NvimDiagnostic[];
    code_lenses?: { line: number; title?: string }[];
  };
}

function readmeFindings(file: string): string[] {
  const readme = fs.readFileSync(path.join(REPO, 'examples', 'README.md'), 'utf8');
  const out: string[] = [];
  let current = '';
  for (const l of readme.split('\n')) {
    const h = /^### (\S+)\s*$/.exec(l);
    if (h) current = h[1];
    const row = /^\|\s*(\d+)\s*\|\s*([A-Z0-9-]+)\s*\|/.exec(l);
    if (row && current === file) out.push(`${row[1]} ${row[2]}`);
  }
  return out.sort();
}

test('Neovim (headless, built-in LSP client): diagnostics, hover, code actions, patch review', { skip: SKIP, timeout: 300_000 }, (t) => {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const system = require(path.join(REPO, 'scripts', 'system.js'));
  system.ensureSystemPackages(['neovim'], (m: string) => process.stderr.write(`# ${m}\n`));
  const server = path.join(REPO, 'server', 'dist', 'server.js');
  assert.ok(fs.existsSync(server), 'server/dist/server.js is built');

  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'dmalens-nvim-'));
  try {
    const ws = path.join(tmp, 'examples');
    fs.cpSync(path.join(REPO, 'examples'), ws, { recursive: true });
    const out = path.join(tmp, 'result.json');
    const t0 = Date.now();
    const r = spawnSync('nvim', ['--headless', '--clean', '-u', path.join(REPO, 'server', 'test', 'fixtures', 'neovim', 'init.lua')], {
      cwd: ws,
      encoding: 'utf8',
      timeout: 120_000,
      env: {
        ...process.env,
        // Neovim keeps its state and logs here, not in the home folder.
        XDG_CONFIG_HOME: path.join(tmp, 'config'),
        XDG_DATA_HOME: path.join(tmp, 'data'),
        XDG_STATE_HOME: path.join(tmp, 'state'),
        XDG_CACHE_HOME: path.join(tmp, 'cache'),
        DMALENS_NODE: process.execPath,
        DMALENS_SERVER: server,
        DMALENS_ROOT: ws,
        DMALENS_C_FILE: path.join(ws, DRIVER),
        DMALENS_PATCH_FILE: path.join(ws, SERIES),
        DMALENS_OUT: out,
      },
    });
    const wall = Date.now() - t0;
    assert.ok(fs.existsSync(out), `nvim wrote no result (exit ${r.status}, signal ${r.signal}):\n${r.stdout}\n${r.stderr}`);
    const res: NvimResult = JSON.parse(fs.readFileSync(out, 'utf8'));
    process.stderr.write(
      `# neovim: first diagnostics ${Math.round(res.c_ms ?? -1)} ms, whole session ${Math.round(res.total_ms ?? -1)} ms (${wall} ms with nvim's start); ` +
        `capabilities ${JSON.stringify(res.capabilities)}; C: ${res.c?.diagnostics.length} diagnostics, ` +
        `quick fixes ${JSON.stringify((res.code_actions ?? []).map((a) => a.title))}; patch: ${res.patch?.analysed ? `${res.patch.diagnostics.length} diagnostics, ` +
        `CodeLens ${JSON.stringify((res.patch.code_lenses ?? []).map((l) => l.title))}` : 'not analysed'}\n`,
    );
    assert.deepEqual(res.errors, [], 'no request failed in Neovim');

    // Diagnostics for the C file: exactly what the README lists, from DMA Lens, with the rule id as the code.
    assert.ok(res.c?.arrived, 'diagnostics arrived for the C file');
    assert.deepEqual(res.c!.diagnostics.map((d) => `${d.line} ${d.code}`).sort(), readmeFindings(DRIVER));
    assert.ok(res.c!.diagnostics.every((d) => d.source === 'DMA Lens'), 'source DMA Lens');

    // The hover: rule id and message; no command link for a client that does not ask for them.
    assert.ok(res.hover, 'the hover answers');
    const hover = res.hover!.replace(/\\(.)/g, '$1'); // markdown escapes
    assert.match(hover, /\*\*DMABUF-ERRPTR\*\*/);
    assert.match(hover, /ERR_PTR result of a dma-buf call tested as NULL/);
    assert.doesNotMatch(res.hover!, /command:/, 'no command links for Neovim');

    if (!res.capabilities?.codeAction) {
      t.diagnostic('code actions: the server offers none yet (no codeActionProvider); not checked');
    } else {
      const fix = res.code_actions?.find((a) => /IS_ERR/.test(a.title));
      assert.ok(fix, `a quick fix with IS_ERR is offered: ${JSON.stringify(res.code_actions)}`);
      assert.ok(fix!.has_edit, 'the quick fix carries its edit');
    }

    if (!res.patch?.analysed) {
      t.diagnostic(`patch review: the server does not analyse kernel-mail documents yet (${JSON.stringify(res.patch)}); not checked`);
    } else {
      assert.equal(res.patch.language_id, 'kernel-mail');
      assert.ok(res.patch.arrived && res.patch.diagnostics.length > 0, 'diagnostics arrived for the patch');
      const lines = fs.readFileSync(path.join(ws, SERIES), 'utf8').split('\n');
      for (const d of res.patch.diagnostics) {
        assert.ok(lines[d.line - 1].startsWith('+'), `patch finding ${d.code} on an added line: ${d.line}: ${lines[d.line - 1]}`);
      }
      const rules = new Set(res.patch.diagnostics.map((d) => d.code));
      for (const r of ['DMABUF-ERRPTR', 'DMABUF-SG-PAGE', 'P2P-DISTANCE-BOOL', 'P2P-CPU-MEMCPY']) assert.ok(rules.has(r), `the series draws ${r}`);
      if (res.capabilities?.codeLens) {
        const titles = (res.patch.code_lenses ?? []).map((l) => l.title ?? '');
        assert.ok(titles.some((x) => /^\d+ DMA Lens findings?$/.test(x)), `a CodeLens counts the findings: ${JSON.stringify(res.patch.code_lenses)}`);
      }
    }
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
});
