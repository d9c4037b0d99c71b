/**
 * A real VS Code for the end-to-end tests: code-server (scripts/code-server.js,
 * installed once into the cache) with the packaged extension, in fresh
 * user-data, extensions and XDG folders, driven through Debian's chromium by
 * playwright-core. Reads the workbench's DOM the way a user sees it:
 * squiggles, hovers, the Problems panel, CodeLens, the action widget and
 * webviews.
 *
 * Everything a session starts is stopped by `close()`: the browser, and
 * code-server's whole process group.
 */
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { chromium, type Browser, type FrameLocator, type Locator, type Page } from 'playwright-core';

// The callbacks passed to page.evaluate run in the browser; the server's tsconfig has no DOM types.
declare const document: any;

export const REPO = path.resolve(__dirname, '..', '..', '..', '..');
export const ARTIFACTS = path.join(REPO, 'e2e-artifacts');

/* eslint-disable @typescript-eslint/no-require-imports */
interface CodeServerModule {
  CODE_SERVER_VERSION: string;
  ensureCodeServer(log?: (m: string) => void): { node: string; entry: string; version: string };
  installExtension(vsix: string, o: { userDataDir: string; extensionsDir: string; env: NodeJS.ProcessEnv }): string;
  startCodeServer(o: {
    port: number;
    userDataDir: string;
    extensionsDir: string;
    env: NodeJS.ProcessEnv;
    logFile?: string;
    folder?: string;
  }): Promise<{ url: string; port: number; pgid: number; startedMs: number; stop(): Promise<void> }>;
  freePort(): Promise<number>;
  get(url: string): Promise<{ status: number; body: string } | undefined>;
}
interface SystemModule {
  ensureSystemPackages(groups: string[], log?: (m: string) => void): string[];
  CHROMIUM: string;
}
export const codeServer: CodeServerModule = require(path.join(REPO, 'scripts', 'code-server.js'));
export const system: SystemModule = require(path.join(REPO, 'scripts', 'system.js'));

export function log(m: string): void {
  process.stderr.write(`# ${m}\n`);
}

/** The flags toolchain.md lists for Debian's chromium, headless, in a container. */
export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--disable-dev-shm-usage',
];

/** User settings that keep the workbench quiet and predictable. */
export const USER_SETTINGS: Record<string, unknown> = {
  'workbench.startupEditor': 'none',
  'workbench.tips.enabled': false,
  'workbench.secondarySideBar.defaultVisibility': 'hidden',
  'workbench.enableExperiments': false,
  'chat.disableAIFeatures': true,
  'editor.hover.delay': 100,
  'editor.minimap.enabled': false,
  'editor.codeLens': true,
  'editor.stickyScroll.enabled': false,
  'extensions.autoUpdate': false,
  'extensions.autoCheckUpdates': false,
  'extensions.ignoreRecommendations': true,
  'security.workspace.trust.enabled': false,
  'telemetry.telemetryLevel': 'off',
  'update.mode': 'none',
  'git.enabled': false,
  'git.openRepositoryInParentFolders': 'never',
  'files.autoSave': 'off',
  'window.restoreWindows': 'none',
};

/**
 * Packages the extension as `npm run package` does, into a folder of this
 * run's own (another run or `npm run package` may be writing the
 * repository's .vsix meanwhile); returns the .vsix and its size.
 */
export function packageExtension(dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dmalens-vsix-'))): { vsix: string; bytes: number; ms: number } {
  const t0 = Date.now();
  const pkg = JSON.parse(fs.readFileSync(path.join(REPO, 'package.json'), 'utf8'));
  const vsix = path.join(dir, `${pkg.name}-${pkg.version}.vsix`);
  const r = spawnSync(process.execPath, [path.join(REPO, 'scripts', 'package.js'), '--out', vsix], { cwd: REPO, encoding: 'utf8', timeout: 300_000 });
  if (r.status !== 0) throw new Error(`npm run package failed (exit ${r.status}):\n${r.stdout}\n${r.stderr}`);
  return { vsix, bytes: fs.statSync(vsix).size, ms: Date.now() - t0 };
}

export interface ServerProbe {
  capabilities: Record<string, unknown>;
}

/**
 * The capabilities the packaged language server announces (server/dist/server.js,
 * what the .vsix carries), from one initialize handshake over stdio. Tells
 * which editor features exist (CodeLens for patches, code actions).
 */
export async function probeServer(script = path.join(REPO, 'server', 'dist', 'server.js')): Promise<ServerProbe> {
  const child = spawn(process.execPath, [script, '--stdio'], { stdio: ['pipe', 'pipe', 'ignore'] });
  const send = (m: unknown) => {
    const body = Buffer.from(JSON.stringify(m), 'utf8');
    child.stdin.write(`Content-Length: ${body.length}\r\n\r\n`);
    child.stdin.write(body);
  };
  try {
    const result = await new Promise<Record<string, any>>((resolve, reject) => {
      let buf = Buffer.alloc(0);
      const timer = setTimeout(() => reject(new Error('the language server did not answer initialize within 20 s')), 20_000);
      child.on('exit', (code) => reject(new Error(`the language server exited (${code}) before answering initialize`)));
      child.stdout.on('data', (d: Buffer) => {
        buf = Buffer.concat([buf, d]);
        for (;;) {
          const end = buf.indexOf('\r\n\r\n');
          if (end < 0) return;
          const len = Number(/Content-Length: (\d+)/i.exec(buf.subarray(0, end).toString('ascii'))?.[1]);
          if (buf.length < end + 4 + len) return;
          const msg = JSON.parse(buf.subarray(end + 4, end + 4 + len).toString('utf8'));
          buf = buf.subarray(end + 4 + len);
          if (msg.id === 1) {
            clearTimeout(timer);
            resolve(msg.result);
          }
        }
      });
      send({
        jsonrpc: '2.0',
        id: 1,
        method: 'initialize',
        params: {
          processId: process.pid,
          rootUri: null,
          workspaceFolders: null,
          capabilities: {
            workspace: { configuration: true, codeLens: { refreshSupport: true } },
            textDocument: {
              hover: { contentFormat: ['markdown', 'plaintext'] },
              codeLens: { dynamicRegistration: false },
              codeAction: {
                dynamicRegistration: false,
                isPreferredSupport: true,
                codeActionLiteralSupport: { codeActionKind: { valueSet: ['', 'quickfix', 'refactor', 'source'] } },
              },
              publishDiagnostics: { relatedInformation: true, versionSupport: true, codeDescriptionSupport: true, dataSupport: true },
            },
          },
        },
      });
    });
    send({ jsonrpc: '2.0', id: 2, method: 'shutdown' });
    send({ jsonrpc: '2.0', method: 'exit' });
    return { capabilities: (result && result.capabilities) || {} };
  } finally {
    setTimeout(() => child.kill('SIGKILL'), 2000).unref();
  }
}

export interface SessionOptions {
  /** Folder copied into the session as its workspace. */
  workspace: string;
  /** Extra files copied into the workspace: [from, relative to]. */
  extraFiles?: [string, string][];
  vsix: string;
  settings?: Record<string, unknown>;
  viewport?: { width: number; height: number };
}

/** One code-server with the extension installed, and one browser page on it. */
export class EditorSession {
  readonly root: string;
  readonly ws: string;
  readonly userDataDir: string;
  readonly extensionsDir: string;
  page!: Page;
  url = '';
  port = 0;
  timings: Record<string, number> = {};
  private browser?: Browser;
  private server?: { stop(): Promise<void>; url: string; port: number; pgid: number };
  private unhook?: () => void;

  constructor(private readonly o: SessionOptions) {
    this.root = fs.mkdtempSync(path.join(os.tmpdir(), 'dmalens-e2e-'));
    this.ws = path.join(this.root, 'workspace');
    this.userDataDir = path.join(this.root, 'user-data');
    this.extensionsDir = path.join(this.root, 'extensions');
  }

  /** The environment code-server runs in: XDG folders inside the session (it writes there otherwise). */
  env(): NodeJS.ProcessEnv {
    const env: NodeJS.ProcessEnv = { ...process.env };
    for (const [k, d] of [
      ['XDG_CONFIG_HOME', 'xdg-config'],
      ['XDG_DATA_HOME', 'xdg-data'],
      ['XDG_CACHE_HOME', 'xdg-cache'],
      ['XDG_STATE_HOME', 'xdg-state'],
      ['XDG_RUNTIME_DIR', 'xdg-runtime'],
    ]) {
      env[k] = path.join(this.root, d);
      fs.mkdirSync(env[k]!, { recursive: true, mode: 0o700 });
    }
    // The cache folder of the project stays where it is (code-server is installed there).
    env.DMALENS_CACHE = process.env.DMALENS_CACHE || path.join(process.env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache'), 'dmalens');
    return env;
  }

  async start(): Promise<void> {
    let t = Date.now();
    // Screenshots of an earlier run would pass for this one's.
    fs.mkdirSync(ARTIFACTS, { recursive: true });
    for (const f of fs.readdirSync(ARTIFACTS)) if (f.endsWith('.png')) fs.rmSync(path.join(ARTIFACTS, f));
    fs.rmSync(path.join(ARTIFACTS, 'docs'), { recursive: true, force: true });
    fs.cpSync(this.o.workspace, this.ws, { recursive: true });
    for (const [from, to] of this.o.extraFiles ?? []) {
      fs.mkdirSync(path.dirname(path.join(this.ws, to)), { recursive: true });
      fs.copyFileSync(from, path.join(this.ws, to));
    }
    fs.mkdirSync(path.join(this.userDataDir, 'User'), { recursive: true });
    fs.writeFileSync(
      path.join(this.userDataDir, 'User', 'settings.json'),
      JSON.stringify({ ...USER_SETTINGS, ...this.o.settings }, null, 2),
    );
    const env = this.env();
    // A copy: another run may package over the repository's .vsix meanwhile.
    const vsix = path.join(this.root, path.basename(this.o.vsix));
    fs.copyFileSync(this.o.vsix, vsix);
    codeServer.installExtension(vsix, { userDataDir: this.userDataDir, extensionsDir: this.extensionsDir, env });
    this.timings.installExtensionMs = Date.now() - t;

    t = Date.now();
    this.port = await codeServer.freePort();
    const s = await codeServer.startCodeServer({
      port: this.port,
      userDataDir: this.userDataDir,
      extensionsDir: this.extensionsDir,
      env,
      logFile: path.join(this.root, 'code-server.log'),
    });
    this.server = s;
    this.url = s.url;
    // Never leave code-server's process group behind, even when this process is interrupted.
    const killGroup = () => {
      try {
        process.kill(-s.pgid, 'SIGKILL');
      } catch {
        /* already gone */
      }
    };
    const onSignal = (sig: NodeJS.Signals) => {
      killGroup();
      process.exit(sig === 'SIGINT' ? 130 : 143);
    };
    process.once('exit', killGroup);
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
    this.unhook = () => {
      process.off('exit', killGroup);
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    };
    this.timings.codeServerStartMs = Date.now() - t;

    t = Date.now();
    this.browser = await chromium.launch({
      executablePath: system.CHROMIUM,
      // playwright gives the browser a fresh profile of its own (a temporary folder).
      args: CHROMIUM_ARGS,
      timeout: 60_000,
    });
    this.page = await this.browser.newPage({ viewport: this.o.viewport ?? { width: 1280, height: 900 } });
    this.page.setDefaultTimeout(20_000);
    this.timings.browserStartMs = Date.now() - t;
  }

  uri(rel: string): string {
    return `vscode-remote://127.0.0.1:${this.port}${path.join(this.ws, rel)}`;
  }

  /** Loads the workbench on the workspace with `rel` open. */
  async openWorkbench(rel: string): Promise<void> {
    const payload = encodeURIComponent(JSON.stringify([['openFile', this.uri(rel)]]));
    const t = Date.now();
    await this.page.goto(`${this.url}/?folder=${encodeURIComponent(this.ws)}&payload=${payload}`);
    await this.editor(rel).waitFor({ state: 'visible', timeout: 60_000 });
    this.timings.workbenchMs = Date.now() - t;
  }

  /** Opens a file of the workspace through Quick Open (Ctrl+P). */
  async openFile(rel: string): Promise<void> {
    await this.page.keyboard.press('Control+P');
    const input = this.page.locator('.quick-input-widget input');
    await input.waitFor({ state: 'visible' });
    await input.fill(rel);
    // Enter only once the highlighted result is the file (the list fills in as the search runs).
    await this.page.locator('.quick-input-widget .monaco-list-row.focused', { hasText: path.basename(rel) }).first().waitFor({ state: 'visible' });
    await this.page.keyboard.press('Enter');
    await this.editor(rel).waitFor({ state: 'visible', timeout: 30_000 });
  }

  editor(rel: string): Locator {
    return this.page.locator(`.monaco-editor[data-uri="${this.uri(rel)}"]`);
  }

  /**
   * Makes `rel` the focused editor: the first editor group (Ctrl+1; webviews
   * open beside it), then its tab when another file is in front.
   */
  async focusEditor(rel: string): Promise<void> {
    await this.page.keyboard.press('Escape');
    await this.page.keyboard.press('Control+1');
    const ed = this.editor(rel);
    if (!(await ed.isVisible().catch(() => false))) await this.openFile(rel);
    await ed.locator('.monaco-editor-background, .view-lines').first().waitFor({ state: 'visible' });
    await this.page.waitForTimeout(100);
  }

  /** Moves the cursor with Go to Line (Ctrl+G): the line is revealed. */
  async gotoLine(rel: string, line: number, column = 1): Promise<void> {
    await this.focusEditor(rel);
    await this.page.keyboard.press('Control+G');
    const input = this.page.locator('.quick-input-widget input');
    await input.waitFor({ state: 'visible' });
    await input.fill(`:${line}:${column}`);
    // Enter once the picker has parsed the input: its message names the line ("...go to line 64 at column 1.").
    await this.page.locator('.quick-input-widget', { hasText: new RegExp(`line ${line}\\b.*column ${column}\\b`) }).waitFor({ state: 'visible', timeout: 10_000 });
    await this.page.keyboard.press('Enter');
    await input.waitFor({ state: 'hidden' });
    // The cursor is there when the status bar says so; the line is then revealed.
    await this.page
      .locator('.statusbar-item', { hasText: new RegExp(`^\\s*Ln ${line}, Col \\d`) })
      .first()
      .waitFor({ state: 'visible', timeout: 10_000 });
    await this.editor(rel).locator('.margin-view-overlays .line-numbers', { hasText: new RegExp(`^\\s*${line}\\s*$`) }).first().waitFor({ state: 'visible', timeout: 10_000 });
  }

  /**
   * The lines (1-based) of `rel` now on screen that carry a squiggle, from the
   * DOM: a decoration in `.view-overlays` is matched to its line number in the
   * margin by its `top`.
   */
  async squiggleLines(rel: string): Promise<number[]> {
    return this.editor(rel).evaluate((ed: any) => {
      const tops = new Map<string, number>();
      for (const d of ed.querySelectorAll('.margin-view-overlays > div')) {
        const n = d.querySelector('.line-numbers');
        if (n) tops.set(d.style.top, Number(n.textContent.trim()));
      }
      const out: number[] = [];
      for (const d of ed.querySelectorAll('.view-overlays > div')) {
        if (d.querySelector('[class*="squiggly-error"], [class*="squiggly-warning"], [class*="squiggly-info"]')) {
          const line = tops.get(d.style.top);
          if (line !== undefined) out.push(line);
        }
      }
      return [...new Set(out)].sort((a, b) => a - b);
    });
  }

  /** Lines on screen: number -> text. */
  async visibleLines(rel: string): Promise<Map<number, string>> {
    const rows: [number, string][] = await this.editor(rel).evaluate((ed: any) => {
      const tops = new Map<string, number>();
      for (const d of ed.querySelectorAll('.margin-view-overlays > div')) {
        const n = d.querySelector('.line-numbers');
        if (n) tops.set(d.style.top, Number(n.textContent.trim()));
      }
      const out: [number, string][] = [];
      for (const d of ed.querySelectorAll('.view-lines > .view-line')) {
        const line = tops.get(d.style.top);
        if (line !== undefined) out.push([line, d.textContent.replace(/\u00a0/g, ' ')]);
      }
      return out;
    });
    return new Map(rows);
  }

  /** Every squiggled line of a file: revealed a screen at a time with Go to Line. */
  async squiggleLinesAt(rel: string, lines: number[]): Promise<number[]> {
    const seen = new Set<number>();
    for (const l of lines) {
      await this.gotoLine(rel, l);
      for (const s of await this.squiggleLines(rel)) seen.add(s);
    }
    return [...seen].sort((a, b) => a - b);
  }

  /** Waits until the squiggled lines on screen satisfy `pred`; returns them. */
  async waitForSquiggles(rel: string, pred: (lines: number[]) => boolean, timeoutMs = 30_000): Promise<number[]> {
    const t = Date.now();
    let last: number[] = [];
    while (Date.now() - t < timeoutMs) {
      last = await this.squiggleLines(rel);
      if (pred(last)) return last;
      await this.page.waitForTimeout(250);
    }
    throw new Error(`squiggles on screen: ${JSON.stringify(last)}; the expected ones did not appear within ${timeoutMs / 1000} s`);
  }

  /** Hovers the squiggle on `line` (on screen) and returns the hover's text. */
  async hoverSquiggle(rel: string, line: number, expect: RegExp): Promise<string> {
    const box = await this.editor(rel).evaluate((ed: any, want: number) => {
      const tops = new Map<number, string>();
      for (const d of ed.querySelectorAll('.margin-view-overlays > div')) {
        const n = d.querySelector('.line-numbers');
        if (n) tops.set(Number(n.textContent.trim()), d.style.top);
      }
      const top = tops.get(want);
      for (const d of ed.querySelectorAll('.view-overlays > div')) {
        if (d.style.top !== top) continue;
        const s = d.querySelector('[class*="squiggly-"]');
        if (s) {
          const r = s.getBoundingClientRect();
          return { x: r.x, y: r.y, width: r.width, height: r.height };
        }
      }
      return undefined;
    }, line);
    if (!box) throw new Error(`no squiggle on line ${line} on screen`);
    const hover = this.page.locator('.monaco-hover:not(.hidden) .monaco-hover-content').filter({ hasText: expect }).first();
    for (let attempt = 0; attempt < 3; attempt++) {
      await this.page.mouse.move(box.x + Math.min(12, box.width / 2), box.y - 4);
      await this.page.mouse.move(box.x + Math.min(20, box.width / 2), box.y + box.height / 2 - 3, { steps: 3 });
      try {
        await hover.waitFor({ state: 'visible', timeout: 10_000 });
        break;
      } catch (e) {
        if (attempt === 2) throw e;
        await this.page.mouse.move(5, 5);
        await this.page.waitForTimeout(300);
      }
    }
    await this.page.waitForTimeout(300);
    return (await hover.innerText()).trim();
  }

  /** Opens the Problems panel (Ctrl+Shift+M) and returns its rows (aria labels, else text). */
  async problems(expectRows?: (rows: string[]) => boolean, timeoutMs = 20_000): Promise<string[]> {
    const panel = this.page.locator('.markers-panel');
    if (!(await panel.isVisible().catch(() => false))) {
      await this.page.keyboard.press('Control+Shift+M');
      await panel.waitFor({ state: 'visible' });
    }
    // The list renders only the rows in view: maximize the panel while reading it.
    await this.command('View: Toggle Maximized Panel');
    await this.page.waitForTimeout(300);
    const t = Date.now();
    let rows: string[] = [];
    try {
      while (Date.now() - t < timeoutMs) {
        rows = await this.page.locator('.markers-panel .monaco-list-row').evaluateAll((els: any[]) =>
          els.map((e) => `${e.getAttribute('aria-label') || ''} || ${e.innerText.replace(/\s+/g, ' ')}`),
        );
        if (!expectRows || expectRows(rows)) break;
        await this.page.waitForTimeout(250);
      }
    } finally {
      await this.command('View: Toggle Maximized Panel');
      await this.page.waitForTimeout(300);
    }
    return rows;
  }

  /** Hides the panel (Problems, Output...) when it is shown (Ctrl+J toggles it). */
  async hidePanel(): Promise<void> {
    if (await this.page.locator('.part.panel').isVisible().catch(() => false)) {
      await this.page.keyboard.press('Control+J');
      await this.page.locator('.part.panel').waitFor({ state: 'hidden', timeout: 5000 }).catch(() => undefined);
    }
  }

  /**
   * Runs a command through the Command Palette (F1), matching its title.
   * The whole exchange is tried again (up to three times) when the palette
   * does not show or closes under us (focus moving into a webview that was
   * still loading, a notification taking the key); the command runs only
   * once, with Enter on a highlighted row that carries the title.
   */
  async command(title: string): Promise<void> {
    const widget = this.page.locator('.quick-input-widget');
    const input = widget.locator('input');
    for (let attempt = 1; ; attempt++) {
      const timeout = attempt < 3 ? 8_000 : 20_000;
      try {
        await this.page.keyboard.press('F1');
        await input.waitFor({ state: 'visible', timeout });
        await input.fill(`>${title}`, { timeout });
        await widget.locator('.monaco-list-row.focused', { hasText: title }).first().waitFor({ state: 'visible', timeout });
        await this.page.keyboard.press('Enter');
        return;
      } catch (e) {
        if (attempt === 3) throw e;
        await this.page.keyboard.press('Escape');
        await widget.waitFor({ state: 'hidden', timeout: 2_000 }).catch(() => undefined);
      }
    }
  }

  /**
   * Closes every editor and editor group, discarding unsaved changes (a
   * quick fix leaves its file dirty: the "save changes?" dialog gets
   * "Don't Save"). Waits until no editor tab is left.
   */
  async closeAllEditors(timeoutMs = 30_000): Promise<void> {
    await this.page.keyboard.press('Escape');
    await this.command('View: Close All Editor Groups');
    const dontSave = this.page.locator('.monaco-dialog-box .monaco-button', { hasText: "Don't Save" });
    const tabs = this.page.locator('.part.editor .tabs-container .tab');
    const t = Date.now();
    while ((await tabs.count()) > 0) {
      if (await dontSave.isVisible().catch(() => false)) await dontSave.click();
      if (Date.now() - t > timeoutMs) throw new Error(`editors still open ${timeoutMs / 1000} s after Close All Editor Groups`);
      await this.page.waitForTimeout(200);
    }
  }

  /** The inner frame of the (only, or last) webview on the page. */
  webview(): FrameLocator {
    return this.page.frameLocator('iframe.webview.ready').last().frameLocator('#active-frame');
  }

  /** Saves a screenshot under e2e-artifacts/; returns its path. */
  async screenshot(name: string): Promise<string> {
    fs.mkdirSync(ARTIFACTS, { recursive: true });
    const file = path.join(ARTIFACTS, `${name}.png`);
    await this.page.screenshot({ path: file });
    return file;
  }

  /**
   * A smaller picture for the documentation: the union of the boxes of the
   * visible elements `selectors` match (default: the editor area and the
   * panel), saved as e2e-artifacts/docs/<name>.png. scripts/docs-images.js
   * copies them to docs/images/.
   */
  async docShot(name: string, selectors: string[] = ['.part.editor', '.part.panel']): Promise<string> {
    const boxes = [];
    for (const sel of selectors) {
      for (const el of await this.page.locator(sel).all()) {
        if (!(await el.isVisible().catch(() => false))) continue;
        const b = await el.boundingBox();
        if (b && b.width > 0 && b.height > 0) boxes.push(b);
      }
    }
    const vp = this.page.viewportSize()!;
    const x = Math.max(0, Math.min(...boxes.map((b) => b.x)));
    const y = Math.max(0, Math.min(...boxes.map((b) => b.y)));
    const r = Math.min(vp.width, Math.max(...boxes.map((b) => b.x + b.width)));
    const bottom = Math.min(vp.height, Math.max(...boxes.map((b) => b.y + b.height)));
    const dir = path.join(ARTIFACTS, 'docs');
    fs.mkdirSync(dir, { recursive: true });
    const file = path.join(dir, `${name}.png`);
    if (boxes.length === 0) await this.page.screenshot({ path: file });
    else await this.page.screenshot({ path: file, clip: { x, y, width: r - x, height: bottom - y } });
    return file;
  }

  /** The extension host's log (exthost*.log under the user-data folder), for activation and errors. */
  extHostLog(): string {
    const logs = path.join(this.userDataDir, 'logs');
    const found: string[] = [];
    const walk = (d: string) => {
      for (const e of fs.existsSync(d) ? fs.readdirSync(d, { withFileTypes: true }) : []) {
        const p = path.join(d, e.name);
        if (e.isDirectory()) walk(p);
        else if (/exthost\.log$/i.test(e.name)) found.push(p);
      }
    };
    walk(logs);
    return found.map((f) => fs.readFileSync(f, 'utf8')).join('\n');
  }

  /** Copies the logs next to the screenshots (kept for a failed run). */
  saveLogs(): void {
    const dest = path.join(ARTIFACTS, 'logs');
    fs.rmSync(dest, { recursive: true, force: true });
    fs.mkdirSync(dest, { recursive: true });
    const cs = path.join(this.root, 'code-server.log');
    if (fs.existsSync(cs)) fs.copyFileSync(cs, path.join(dest, 'code-server.log'));
    const logs = path.join(this.userDataDir, 'logs');
    if (fs.existsSync(logs)) fs.cpSync(logs, path.join(dest, 'vscode'), { recursive: true });
  }

  async close(): Promise<void> {
    try {
      await this.browser?.close();
    } catch {
      /* already gone */
    }
    try {
      this.saveLogs();
    } catch {
      /* best effort */
    }
    await this.server?.stop();
    this.unhook?.();
    fs.rmSync(this.root, { recursive: true, force: true, maxRetries: 3 });
  }
}
