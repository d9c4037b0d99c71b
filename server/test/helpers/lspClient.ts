/**
 * A minimal LSP client for tests: spawns the real server over stdio and speaks
 * JSON-RPC to it, answers workspace/configuration from `settings`, and records
 * publishDiagnostics and log messages.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  ConfigurationRequest,
  createProtocolConnection,
  DidChangeConfigurationNotification,
  DidChangeTextDocumentNotification,
  DidCloseTextDocumentNotification,
  DidOpenTextDocumentNotification,
  ExitNotification,
  HoverRequest,
  InitializedNotification,
  InitializeRequest,
  PublishDiagnosticsNotification,
  ShutdownRequest,
  StreamMessageReader,
  StreamMessageWriter,
  type ConfigurationParams,
  type Hover,
  type InitializeResult,
  type Position,
  type ProtocolConnection,
  type PublishDiagnosticsParams,
  type TextDocumentContentChangeEvent,
} from 'vscode-languageserver/node';

export const REPO = path.resolve(__dirname, '..', '..', '..', '..');
export const SHIM = path.join(REPO, 'server', 'bin', 'dmalens-language-server.js');

function newestMtime(dir: string): number {
  let newest = 0;
  if (!fs.existsSync(dir)) return 0;
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) newest = Math.max(newest, newestMtime(p));
    else if (e.name.endsWith('.js')) newest = Math.max(newest, fs.statSync(p).mtimeMs);
  }
  return newest;
}

/**
 * Which build the shim should start: the bundle (server/dist) unless the tsc
 * output is newer (someone ran `tsc -b` without `npm run build`), or as
 * DMALENS_SERVER_BUILD says.
 */
export function serverBuild(): 'dist' | 'out' {
  const forced = process.env.DMALENS_SERVER_BUILD;
  if (forced === 'dist' || forced === 'out') return forced;
  const bundle = path.join(REPO, 'server', 'dist', 'server.js');
  if (!fs.existsSync(bundle)) return 'out';
  return fs.statSync(bundle).mtimeMs >= newestMtime(path.join(REPO, 'server', 'out', 'src')) ? 'dist' : 'out';
}

export interface Waiter<T> {
  pred: (v: T) => boolean;
  resolve: (v: T) => void;
}

export class TestClient {
  readonly proc: ChildProcessWithoutNullStreams;
  readonly conn: ProtocolConnection;
  readonly published: PublishDiagnosticsParams[] = [];
  readonly logs: string[] = [];
  readonly configurationRequests: ConfigurationParams[] = [];
  stderr = '';
  /** What workspace/configuration answers for section 'dmalens' (any scope). */
  settings: Record<string, unknown> = {};
  private waiters: Waiter<PublishDiagnosticsParams>[] = [];
  readonly exited: Promise<number | null>;

  /** `script`: a server entry to run instead of the shim (it gets --stdio). */
  constructor(
    readonly build: 'dist' | 'out' = serverBuild(),
    script: string = SHIM,
  ) {
    this.proc = spawn(process.execPath, [script, '--stdio'], {
      cwd: REPO,
      env: { ...process.env, DMALENS_SERVER_BUILD: build },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    this.proc.stderr.setEncoding('utf8');
    this.proc.stderr.on('data', (s: string) => (this.stderr += s));
    this.exited = new Promise((resolve) => this.proc.on('exit', (code) => resolve(code)));
    this.conn = createProtocolConnection(
      new StreamMessageReader(this.proc.stdout),
      new StreamMessageWriter(this.proc.stdin),
    );
    this.conn.onNotification(PublishDiagnosticsNotification.type, (p) => {
      this.published.push(p);
      this.waiters = this.waiters.filter((w) => {
        if (!w.pred(p)) return true;
        w.resolve(p);
        return false;
      });
    });
    this.conn.onNotification('window/logMessage', (p: { message: string }) => {
      this.logs.push(p.message);
    });
    this.conn.onNotification('window/showMessage', (p: { message: string }) => {
      this.logs.push('[shown] ' + p.message);
    });
    this.conn.onRequest(ConfigurationRequest.type, (p) => {
      this.configurationRequests.push(p);
      return p.items.map((item) => (item.section === 'dmalens' ? structuredClone(this.settings) : null));
    });
    this.conn.onError(() => undefined);
    this.conn.listen();
  }

  async initialize(initializationOptions?: unknown, workspaceFolders: { uri: string; name: string }[] | null = null): Promise<InitializeResult> {
    const r = await this.conn.sendRequest(InitializeRequest.type, {
      processId: process.pid,
      rootUri: null,
      workspaceFolders,
      initializationOptions,
      capabilities: {
        workspace: { configuration: true, didChangeConfiguration: { dynamicRegistration: false } },
        textDocument: {
          synchronization: { dynamicRegistration: false },
          publishDiagnostics: { relatedInformation: true, versionSupport: true, codeDescriptionSupport: true, dataSupport: true },
          hover: { contentFormat: ['markdown', 'plaintext'] },
        },
      },
    });
    await this.conn.sendNotification(InitializedNotification.type, {});
    return r;
  }

  /** The next publishDiagnostics (already received or future) matching `pred`. */
  waitForDiagnostics(pred: (p: PublishDiagnosticsParams) => boolean, timeoutMs = 15000, since = 0): Promise<PublishDiagnosticsParams> {
    const seen = this.published.slice(since).find(pred);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        reject(
          new Error(
            `no matching publishDiagnostics within ${timeoutMs} ms; got ${JSON.stringify(this.published.slice(since))}; ` +
              `log: ${JSON.stringify(this.logs)}; stderr: ${this.stderr}`,
          ),
        );
      }, timeoutMs);
      const waiter: Waiter<PublishDiagnosticsParams> = {
        pred,
        resolve: (p) => {
          clearTimeout(timer);
          resolve(p);
        },
      };
      this.waiters.push(waiter);
    });
  }

  /** Diagnostics for `uri` at `version` (published after index `since`). */
  diagnosticsFor(uri: string, version: number, since = 0): Promise<PublishDiagnosticsParams> {
    return this.waitForDiagnostics((p) => p.uri === uri && p.version === version, 15000, since);
  }

  open(uri: string, text: string, version = 1, languageId = 'c'): Promise<void> {
    return this.conn.sendNotification(DidOpenTextDocumentNotification.type, {
      textDocument: { uri, languageId, version, text },
    });
  }

  change(uri: string, version: number, contentChanges: TextDocumentContentChangeEvent[]): Promise<void> {
    return this.conn.sendNotification(DidChangeTextDocumentNotification.type, {
      textDocument: { uri, version },
      contentChanges,
    });
  }

  close(uri: string): Promise<void> {
    return this.conn.sendNotification(DidCloseTextDocumentNotification.type, { textDocument: { uri } });
  }

  configurationChanged(): Promise<void> {
    return this.conn.sendNotification(DidChangeConfigurationNotification.type, { settings: null });
  }

  hover(uri: string, position: Position): Promise<Hover | null> {
    return this.conn.sendRequest(HoverRequest.type, { textDocument: { uri }, position });
  }

  documentInfo(uri: string, includeText = false): Promise<any> {
    return this.conn.sendRequest('dmalens/documentInfo', { uri, includeText });
  }

  /** shutdown + exit; resolves with the exit code. */
  async stop(): Promise<number | null> {
    await this.conn.sendRequest(ShutdownRequest.type);
    await this.conn.sendNotification(ExitNotification.type);
    let timer: NodeJS.Timeout | undefined;
    const code = await Promise.race([
      this.exited,
      new Promise<'timeout'>((r) => (timer = setTimeout(() => r('timeout'), 5000))),
    ]);
    clearTimeout(timer);
    if (code === 'timeout') {
      this.kill();
      throw new Error('server did not exit after shutdown/exit');
    }
    this.conn.dispose();
    return code;
  }

  kill(): void {
    this.conn.dispose();
    if (this.proc.exitCode === null) this.proc.kill();
  }
}
