/**
 * The DMA Lens language server: wires the protocol to the document store, the
 * per-language analysers and the translators (diagnostics, hover, the
 * model's runs through the `dmalens/explain` request).
 *
 * Architecture invariants kept here:
 * - this layer translates; which findings exist and how severe they are is
 *   decided by the core and the rules (settings go in as AnalyzeOptions);
 * - offsets <-> positions only through LineIndex (core/positions.ts);
 * - no handler throws: failures are logged to the client's console, and a
 *   failed analysis publishes no diagnostics (a malformed custom request gets
 *   an InvalidParams error response).
 */
import {
  ErrorCodes,
  MessageType,
  ResponseError,
  ShowMessageNotification,
  TextDocumentSyncKind,
  type Connection,
  type Diagnostic,
  type InitializeParams,
  type InitializeResult,
} from 'vscode-languageserver/node';
import { Analyzer } from '../core/analyzer';
import { LineIndex, utf8Length } from '../core/positions';
import { decodeBytes } from '../core/text';
import type { AnalysisNotice, RuleInfo } from '../core/types';
import { scenarioRules } from '../model/explain';
import { loadWasm } from '../node/assets';
import { RuleDocs } from '../node/docs';
import { AnalyserRegistry, CAnalyser } from './analysers';
import { type AnalysedVersion, DocumentStore, type OpenDocument } from './documents';
import {
  ExplainRequest,
  findingForRange,
  ModelRulesRequest,
  parseExplainParams,
  referenceResult,
  RunCache,
  stepLines,
  type ExplainResult,
  type ModelRule,
} from './explain';
import { hoverAt } from './hover';
import { KernelRoots } from './paths';
import { PatchFeatures, problemToDiagnostic } from './patch';
import { CodeActions } from './actions';
import { isConfigUri, type Project, Projects } from './project';
import { WorkspaceScan } from './workspaceScan';
import { analyzeOptions, DEFAULT_SETTINGS, parseInitOptions, parseSettings, type Settings } from './settings';
import { findingToDiagnostic, isShownNotice, noticeToDiagnostic } from './translate';

declare const __DMALENS_VERSION__: string | undefined;
export const SERVER_VERSION: string = typeof __DMALENS_VERSION__ === 'string' ? __DMALENS_VERSION__ : 'dev';

export interface ServerOptions {
  /** Delay between the last edit and the analysis (ms). */
  debounceMs?: number;
  /** The analyzer to use (tests); default: created from the bundled wasm images. */
  analyzer?: () => Promise<Analyzer>;
  /** Analyses slower than this are logged (ms). */
  slowMs?: number;
}

/** Custom request for tests and troubleshooting: what the server holds for a document. */
export const DocumentInfoRequest = 'dmalens/documentInfo';
export interface DocumentInfoParams {
  uri: string;
  includeText?: boolean;
}
export interface DocumentInfo {
  uri: string;
  languageId: string;
  version: number;
  analysed: boolean;
  analysedVersion?: number;
  findings?: number;
  errorNodes?: number;
  text?: string;
}

export class DmaLensServer {
  private readonly analysers = new AnalyserRegistry();
  private readonly store = new DocumentStore((id) => this.analysers.forLanguage(id));
  private readonly roots = new KernelRoots();
  private readonly projects = new Projects(() => new Set(this.ruleInfo.keys()));
  /** Patch review: the patch analyser's readTarget, CodeLenses, dmalens/draftReply (./patch.ts). */
  private readonly patch = new PatchFeatures({
    document: (uri) => this.store.get(uri),
    analysedNow: (d) => this.analysedNow(d),
    projects: this.projects,
    error: (m) => this.error(m),
  });
  /** Quick fixes, fix all, explain and disable-rule code actions (./actions.ts). */
  private readonly actions = new CodeActions({
    document: (uri) => this.store.get(uri),
    analysedNow: (d) => this.analysedNow(d),
    analyzer: () => this.analyzerReady,
    options: async (d) => this.projects.merge(analyzeOptions(await this.settingsFor(d.uri), this.roots.relativePath(d.uri)), this.projects.projectFor(d.uri), d.uri),
    projects: this.projects,
    commandLinks: () => this.commandLinks,
    hasRun: (f, uri) => !!this.runs.runFor(f, this.worlds.get(uri)),
    error: (m) => this.error(m),
  });
  /** Cross-file lock facts of a kernel tree open as a workspace folder (background scan). */
  private readonly scan = new WorkspaceScan();
  /** Config files whose problems are currently published. */
  private readonly publishedConfigs = new Set<string>();
  /** The world the model's runs use, per document (from dmalens.topology). */
  private readonly worlds = new Map<string, import('../model/world').WorldOptions | undefined>();
  private readonly analyzerReady: Promise<Analyzer | undefined>;
  private ruleInfo = new Map<string, RuleInfo>();
  private docs: RuleDocs = RuleDocs.create();
  /** Whether hovers carry the `dmalens.showRun` command link (initializationOptions.commandLinks). */
  private commandLinks = false;
  private readonly runs = new RunCache((rule, e) => this.error(`the model's ${rule} scenario failed: ${describe(e)}`));
  private hasConfiguration = false;
  private globalSettings: Settings = { ...DEFAULT_SETTINGS };
  private readonly settingsCache = new Map<string, Promise<Settings>>();
  private readonly loggedProblems = new Set<string>();
  private readonly debounceMs: number;
  /** When each document last changed (the leading-edge debounce, changeDelay). */
  private readonly changedAt = new WeakMap<OpenDocument, number>();
  private readonly slowMs: number;
  private shuttingDown = false;
  /** Set once the client sent `initialized`; messages to the client wait for it. */
  private initialized = false;
  private readonly afterInit: (() => void)[] = [];

  constructor(
    private readonly connection: Connection,
    options: ServerOptions = {},
  ) {
    this.debounceMs = options.debounceMs ?? 40;
    this.slowMs = options.slowMs ?? 1000;
    const create = options.analyzer ?? (async () => Analyzer.create(loadWasm()));
    this.analyzerReady = (async () => {
      try {
        const analyzer = await create();
        this.analysers.register(new CAnalyser(analyzer));
        this.analysers.register(this.patch.createAnalyser(analyzer));
        this.ruleInfo = new Map(analyzer.rules().map((r) => [r.id, r]));
        return analyzer;
      } catch (e) {
        // Told once the client is ready to hear it (the protocol forbids talking first).
        this.whenInitialized(() => {
          this.error(`cannot start the analyser: ${describe(e)}`);
          // A notification: showErrorMessage() is a request, and needs no answer here.
          this.connection
            .sendNotification(ShowMessageNotification.type, {
              type: MessageType.Error,
              message: `DMA Lens cannot analyse files: ${describe(e)}`,
            })
            .catch(() => undefined);
        });
        return undefined;
      }
    })();
  }

  listen(): void {
    const c = this.connection;
    c.onInitialize((params) => this.initialize(params));
    c.onInitialized(() => {
      this.initialized = true;
      this.log(`DMA Lens language server ${SERVER_VERSION} ready`);
      for (const fn of this.afterInit.splice(0)) this.safely('initialized', undefined, fn);
      void this.startWorkspaceScan();
    });

    c.onDidOpenTextDocument(
      this.guard('didOpen', (p) => {
        const { uri, languageId, version, text } = p.textDocument;
        const d = this.store.open(uri, languageId, version, text);
        if (isConfigUri(uri)) this.configEdited(uri, text);
        this.schedule(d, 0);
      }),
    );
    c.onDidChangeTextDocument(
      this.guard('didChange', (p) => {
        const d = this.store.change(p.textDocument.uri, p.textDocument.version, p.contentChanges);
        if (d && isConfigUri(d.uri)) this.configEdited(d.uri, d.text);
        if (d) this.schedule(d, this.changeDelay(d));
      }),
    );
    c.onDidCloseTextDocument(
      this.guard('didClose', (p) => {
        const uri = p.textDocument.uri;
        const d = this.store.close(uri);
        this.settingsCache.delete(uri);
        this.worlds.delete(uri);
        if (isConfigUri(uri)) this.configEdited(uri, undefined);
        else if (d) this.publish(uri, d.version, []);
      }),
    );
    c.onDidChangeConfiguration(this.guard('didChangeConfiguration', (p) => this.configurationChanged(p.settings)));
    c.onDidChangeWatchedFiles(
      this.guard('didChangeWatchedFiles', () => {
        this.projects.invalidate();
        for (const d of this.store.all()) this.schedule(d, 0);
      }),
    );

    c.onHover((p) =>
      this.safely('hover', null, () => {
        const d = this.store.get(p.textDocument.uri);
        if (!d?.last || d.last.findings.length === 0) return null;
        return hoverAt(d.last.findings, p.position, {
          rules: this.ruleInfo,
          docs: this.docs,
          index: d.last.index,
          uri: d.uri,
          explain: (f) => this.runs.runFor(f, this.worlds.get(d.uri)),
          commandLinks: this.commandLinks,
        });
      }),
    );

    c.onRequest(ExplainRequest, (p: unknown) => this.explainRequest(p));
    this.patch.listen(c);
    this.actions.listen(c);
    c.onRequest(ModelRulesRequest, () =>
      this.safely('modelRules', [] as ModelRule[], () =>
        scenarioRules()
          .map((id): ModelRule => {
            const info = this.ruleInfo.get(id);
            return info ? { id, summary: info.summary, severity: info.severity } : { id };
          })
          .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0)),
      ),
    );

    c.onRequest(DocumentInfoRequest, (p: DocumentInfoParams) =>
      this.safely('documentInfo', null, (): DocumentInfo | null => {
        const d = p && typeof p.uri === 'string' ? this.store.get(p.uri) : undefined;
        if (!d) return null;
        const info: DocumentInfo = { uri: d.uri, languageId: d.languageId, version: d.version, analysed: !!d.analyser && (!d.analyser.accepts || d.analyser.accepts(d.text, d.languageId)) };
        if (d.last) {
          info.analysedVersion = d.last.version;
          info.findings = d.last.findings.length;
          info.errorNodes = d.last.errorNodes;
        }
        if (p.includeText) info.text = d.text;
        return info;
      }),
    );

    c.onShutdown(() => {
      this.shuttingDown = true;
      this.scan.cancel();
      this.safely('shutdown', undefined, () => this.store.disposeAll());
    });

    c.listen();
  }

  private initialize(params: InitializeParams): InitializeResult {
    return this.safely<InitializeResult>(
      'initialize',
      { capabilities: {} },
      () => {
        const ws = params.capabilities?.workspace;
        this.hasConfiguration = !!ws?.configuration;
        const init = parseInitOptions(params.initializationOptions);
        for (const p of init.problems) this.whenInitialized(() => this.warn(p));
        this.projects.trusted = init.options.trusted;
        const folders = params.workspaceFolders?.map((f) => f.uri) ?? (params.rootUri ? [params.rootUri] : []);
        this.projects.setWorkspaceFolders(folders);
        this.docs = RuleDocs.create(init.options.docsBaseUri);
        this.commandLinks = init.options.commandLinks;
        return {
          capabilities: {
            textDocumentSync: { openClose: true, change: TextDocumentSyncKind.Incremental },
            hoverProvider: true,
            ...this.patch.capabilities(params.capabilities),
            ...this.actions.capabilities(params.capabilities),
          },
          serverInfo: { name: 'dmalens-language-server', version: SERVER_VERSION },
        };
      },
    );
  }

  // ---- settings -----------------------------------------------------------

  /** Scans the kernel tree open as a workspace folder for cross-file lock facts, then re-analyses open documents. */
  private async startWorkspaceScan(): Promise<void> {
    const root = this.projects.kernelRoot();
    if (!root || !this.projects.trusted) return;
    const analyzer = await this.analyzerReady;
    if (!analyzer || this.shuttingDown) return;
    this.log(`scanning ${root} for cross-file lock facts in the background`);
    this.scan.start(
      analyzer,
      root,
      {},
      (stats) => {
        this.log(`workspace scan: ${stats.filesScanned} files in ${stats.seconds.toFixed(1)} s; ${stats.calledLocked} functions always called with the reservation lock held`);
        for (const d of this.store.all()) this.schedule(d, 0);
      },
      (e) => this.error(`workspace scan failed: ${describe(e)}`),
    );
  }

  /** A `.dmalens.json` was opened, edited or closed: its text wins over the disk while open. */
  private configEdited(uri: string, text: string | undefined): void {
    this.projects.setOpenConfig(uri, text);
    for (const d of this.store.all()) if (!isConfigUri(d.uri)) this.schedule(d, this.debounceMs);
    if (text !== undefined && this.projects.trusted) {
      const project = this.projects.projectFor(uri);
      if (project) this.publishConfigProblems(project, true);
    }
  }

  /** Problems of a project file, as diagnostics on the file itself. */
  private publishConfigProblems(project: Project, force = false): void {
    if (!project.configUri || project.configText === undefined) return;
    if (!force && this.publishedConfigs.has(project.configUri) && !project.configProblems.length) return;
    const index = new LineIndex(project.configText);
    const diagnostics: Diagnostic[] = project.configProblems.map((p) => ({
      range: { start: index.position(p.span.start), end: index.position(p.span.end) },
      severity: p.severity === 'error' ? 1 : 2,
      source: 'DMA Lens',
      message: p.message,
    }));
    this.publishedConfigs.add(project.configUri);
    this.connection.sendDiagnostics({ uri: project.configUri, diagnostics }).catch((e) => this.error(`cannot publish diagnostics for ${project.configUri}: ${describe(e)}`));
  }

  private configurationChanged(settings: unknown): void {
    this.settingsCache.clear();
    this.roots.clear();
    this.projects.invalidate();
    if (!this.hasConfiguration) {
      const section = settings && typeof settings === 'object' ? (settings as Record<string, unknown>).dmalens : undefined;
      this.globalSettings = this.checked(parseSettings(section));
    }
    for (const d of this.store.all()) this.schedule(d, 0);
  }

  private settingsFor(uri: string): Promise<Settings> {
    if (!this.hasConfiguration) return Promise.resolve(this.globalSettings);
    let p = this.settingsCache.get(uri);
    if (!p) {
      p = this.connection.workspace.getConfiguration({ scopeUri: uri, section: 'dmalens' }).then(
        (raw) => this.checked(parseSettings(raw)),
        (e) => {
          this.warn(`cannot read the dmalens settings for ${uri}: ${describe(e)}; using defaults`);
          this.settingsCache.delete(uri);
          return { ...DEFAULT_SETTINGS };
        },
      );
      this.settingsCache.set(uri, p);
    }
    return p;
  }

  private warnOnce(p: string): void {
    if (this.loggedProblems.has(p)) return;
    this.loggedProblems.add(p);
    this.warn(p);
  }

  private checked(r: { settings: Settings; problems: string[] }): Settings {
    for (const p of r.problems) {
      if (this.loggedProblems.has(p)) continue;
      this.loggedProblems.add(p);
      this.warn(p);
    }
    return r.settings;
  }

  // ---- analysis -----------------------------------------------------------

  /**
   * The debounce after an edit, on its leading edge: an edit that comes
   * debounceMs or more after the previous one (typing at up to 25 keys a
   * second), with no analysis pending, is analysed at once, so it costs no
   * wait; edits closer together wait, and a burst of them is analysed once.
   */
  private changeDelay(d: OpenDocument): number {
    const now = Date.now();
    const last = this.changedAt.get(d);
    this.changedAt.set(d, now);
    if (d.timer) return this.debounceMs;
    return last !== undefined && now - last < this.debounceMs ? this.debounceMs : 0;
  }

  private schedule(d: OpenDocument, delayMs: number): void {
    if (this.shuttingDown) return;
    const gen = ++d.generation;
    if (d.timer) clearTimeout(d.timer);
    d.timer = setTimeout(() => {
      d.timer = undefined;
      this.validate(d, gen).catch((e) => this.error(`analysis of ${d.uri} failed: ${describe(e)}`));
    }, delayMs);
  }

  private current(d: OpenDocument, gen: number): boolean {
    return !this.shuttingDown && gen === d.generation && this.store.get(d.uri) === d;
  }

  private async validate(d: OpenDocument, gen: number): Promise<void> {
    const analyzer = await this.analyzerReady;
    if (!this.current(d, gen)) return;
    // The registry fills in once the analyzer has loaded.
    d.analyser ??= this.analysers.forLanguage(d.languageId);
    const analyser = d.analyser;
    if (!analyzer || !analyser) return;
    const settings = await this.settingsFor(d.uri);
    if (!this.current(d, gen)) return;

    const version = d.version;
    const text = d.text;
    if (analyser.accepts && !analyser.accepts(text, d.languageId)) {
      // Not for this analyser after all (plain text that is not a patch): no diagnostics, no notice.
      d.dropState();
      d.last = undefined;
      this.publish(d.uri, version, []);
      return;
    }
    if (!settings.enable) {
      d.dropState();
      d.last = undefined;
      this.publish(d.uri, version, []);
      return;
    }
    const skip = notAnalysedReason(text, settings);
    if (skip) {
      d.dropState();
      d.last = undefined;
      this.publish(d.uri, version, [noticeToDiagnostic(skip, text, version)]);
      return;
    }

    const project = this.projects.projectFor(d.uri);
    if (project) this.publishConfigProblems(project);
    if (this.projects.excluded(d.uri, project)) {
      d.dropState();
      d.last = undefined;
      this.publish(d.uri, version, []);
      return;
    }
    const topo = this.projects.topology(settings.topology, project);
    if (topo.error) this.warnOnce(topo.error);
    this.worlds.set(d.uri, topo.world);

    const started = Date.now();
    let out;
    const previous = d.state;
    d.state = undefined; // consumed by analyze(), whatever happens
    try {
      const options = this.projects.merge(analyzeOptions(settings, this.roots.relativePath(d.uri)), project, d.uri);
      if (this.scan.facts && project && this.projects.kernelRoot() === project.root) options.workspace = this.scan.facts;
      out = analyser.analyze(text, previous, options, { uri: d.uri, languageId: d.languageId, patchShowExisting: settings.patchShowExisting, maxFileSize: settings.maxFileSize });
    } catch (e) {
      d.last = undefined;
      this.error(`analysis of ${d.uri} (version ${version}) failed: ${describe(e)}`);
      this.publish(d.uri, version, []);
      return;
    }
    if (!this.current(d, gen) || d.analyser !== analyser) {
      // Superseded while running (cannot happen for the synchronous C analyser, can for others).
      analyser.dispose(out.state);
      return;
    }
    d.state = out.state;
    const elapsed = Date.now() - started;
    if (elapsed > this.slowMs) this.log(`analysed ${d.uri} in ${elapsed} ms`);

    const { result } = out;
    const index = new LineIndex(text);
    const ctx = { uri: d.uri, version, index, docs: this.docs };
    const diagnostics: Diagnostic[] = result.findings.map((f, i) => findingToDiagnostic(f, i, ctx));
    for (const n of result.notices) {
      if (isShownNotice(n)) diagnostics.push(noticeToDiagnostic(n, text, version, index));
      else this.warn(`${d.uri}: ${n.rule ? n.rule + ': ' : ''}${n.message}`);
    }
    for (const p of out.problems ?? []) diagnostics.push(problemToDiagnostic(p, index));
    d.last = { version, text, index, findings: result.findings, errorNodes: result.errorNodes };
    const state = out.state;
    this.publish(d.uri, version, diagnostics, () => {
      // The analyser may ask to analyse the same text again (a first, lazy parse that may read broken code otherwise).
      if (analyser.published?.(state) === true && this.current(d, gen) && d.state === state) this.schedule(d, 0);
    });
  }

  /**
   * The analysis of the document's current version: the stored one when it is
   * current, else a new one now (the pending debounced run, brought forward).
   * May be older when the document keeps changing meanwhile, or undefined when
   * the document is not analysed.
   */
  private async analysedNow(d: OpenDocument): Promise<AnalysedVersion | undefined> {
    if (d.last && d.last.version === d.version) return d.last;
    const gen = ++d.generation;
    if (d.timer) clearTimeout(d.timer);
    d.timer = undefined;
    await this.validate(d, gen);
    return d.last;
  }

  // ---- the model's runs ---------------------------------------------------

  private async explainRequest(raw: unknown): Promise<ExplainResult | null> {
    const p = parseExplainParams(raw);
    if (!p) throw new ResponseError(ErrorCodes.InvalidParams, 'dmalens/explain: expected {rule} or {uri, rule, range}');
    try {
      if (p.uri === undefined || p.range === undefined) return referenceResult(p.rule);
      const d = this.store.get(p.uri);
      if (!d) return null;
      const last = await this.analysedNow(d);
      if (!last) return null;
      const f = findingForRange(last.findings, last.index, p.rule, p.range);
      const run = f ? this.runs.runFor(f, this.worlds.get(d.uri)) : undefined;
      if (!run) return null;
      return { run, lines: stepLines(run, last.text, last.index), version: last.version };
    } catch (e) {
      this.error(`explain failed: ${describe(e)}`);
      return null;
    }
  }

  /** Sends a document's diagnostics; `then` runs once they are written (or could not be). */
  private publish(uri: string, version: number, diagnostics: Diagnostic[], then?: () => void): void {
    this.connection
      .sendDiagnostics({ uri, version, diagnostics })
      .catch((e) => this.error(`cannot publish diagnostics for ${uri}: ${describe(e)}`))
      .finally(() => {
        if (then && !this.shuttingDown) then();
      });
  }

  // ---- plumbing -----------------------------------------------------------

  private whenInitialized(fn: () => void): void {
    if (this.initialized) fn();
    else this.afterInit.push(fn);
  }

  private guard<P>(name: string, fn: (p: P) => void): (p: P) => void {
    return (p: P) => {
      try {
        fn(p);
      } catch (e) {
        this.error(`${name} failed: ${describe(e)}`);
      }
    };
  }

  private safely<T>(name: string, fallback: T, fn: () => T): T {
    try {
      return fn();
    } catch (e) {
      this.error(`${name} failed: ${describe(e)}`);
      return fallback;
    }
  }

  log(m: string): void {
    this.connection.console.log(m);
  }
  warn(m: string): void {
    this.connection.console.warn(m);
  }
  error(m: string): void {
    this.connection.console.error(m);
  }
}

/** Why a document is not analysed (binary, too large), as a notice; undefined when it is analysed. */
export function notAnalysedReason(
  text: string,
  settings: Pick<Settings, 'maxFileSize'>,
): { kind: AnalysisNotice['kind']; message: string } | undefined {
  // The client decoded the file already; UTF-8 re-encoding a prefix keeps every
  // control character as its own byte, which is what the core's check looks at.
  const sample = decodeBytes(Buffer.from(text.slice(0, 8192), 'utf8'));
  if ('binary' in sample) {
    return { kind: 'not-text', message: `DMA Lens did not analyse this file: it ${sample.reason}.` };
  }
  const max = settings.maxFileSize;
  // UTF-8 never takes fewer bytes than UTF-16 code units, so only count when it could matter.
  if (text.length > max || (text.length * 3 > max && utf8Length(text) > max)) {
    const size = utf8Length(text);
    return {
      kind: 'too-large',
      message: `DMA Lens did not analyse this file: it is ${size} bytes, more than dmalens.maxFileSize (${max}).`,
    };
  }
  return undefined;
}

export function describe(e: unknown): string {
  if (e instanceof Error) return e.message || e.name;
  return String(e);
}
