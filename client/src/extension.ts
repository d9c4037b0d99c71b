/**
 * The DMA Lens VS Code extension: a thin client that starts the language
 * server (server/dist/server.js, over IPC) for C files and patches and shows
 * its state, shows the model's runs in a webview (./runPanel.ts), and has the
 * patch review commands (./patch.ts).
 * Everything about analysis lives in the server.
 */
import * as vscode from 'vscode';
import type { LanguageClient, LanguageClientOptions } from 'vscode-languageclient/node';
import type * as LanguageClientModule from './languageClient';
import { PATCH_LANGUAGES, registerPatchCommands } from './patch';
import { RunPanels, trustShowRunLinks } from './runPanel';

const CLIENT_ID = 'dmalens'; // also the settings section: `dmalens.trace.server` is honoured by the client
const CLIENT_NAME = 'DMA Lens';

let client: LanguageClient | undefined;
let output: vscode.LogOutputChannel | undefined;
let status: vscode.LanguageStatusItem | undefined;

export async function activate(context: vscode.ExtensionContext): Promise<void> {
  output = vscode.window.createOutputChannel(CLIENT_NAME, { log: true });
  context.subscriptions.push(output);

  status = vscode.languages.createLanguageStatusItem('dmalens.status', [{ language: 'c' }, { language: 'diff' }, { language: 'kernel-mail' }]);
  status.name = CLIENT_NAME;
  status.text = 'DMA Lens';
  context.subscriptions.push(status);
  setStatus('starting');

  context.subscriptions.push(
    vscode.commands.registerCommand('dmalens.showOutput', () => output?.show(true)),
    vscode.commands.registerCommand('dmalens.restartServer', () => restart(context)),
    ...new RunPanels(context, () => client, output).register(),
    ...registerPatchCommands(() => client, output),
  );

  // Not awaited: activation stays cheap; the status item shows progress.
  void start(context);
  // Trust granted later: restart so the server reads the project file and topology.
  context.subscriptions.push(vscode.workspace.onDidGrantWorkspaceTrust(() => void restart(context)));
}

export async function deactivate(): Promise<void> {
  const c = client;
  client = undefined;
  if (c) await c.stop().catch(() => undefined);
}

/**
 * vscode-languageclient (most of the extension's code) lives in its own bundle,
 * client/dist/languageClient.js, loaded when the server starts, after
 * activate() has returned: activation only registers commands and the status
 * item, and the extension host goes on with the next extension meanwhile.
 */
let languageClientModule: typeof LanguageClientModule | undefined;
function languageClient(): typeof LanguageClientModule {
  // A plain require: esbuild leaves './languageClient' to the runtime (scripts/build.js marks it external).
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return (languageClientModule ??= require('./languageClient') as typeof LanguageClientModule);
}

function createClient(context: vscode.ExtensionContext): LanguageClient {
  const clientOptions: LanguageClientOptions = {
    documentSelector: [
      { scheme: 'file', language: 'c' },
      { scheme: 'untitled', language: 'c' },
      // Patch review: diffs, patch mail and series, and plain text the server finds to be a patch.
      ...PATCH_LANGUAGES.flatMap((language) => [
        { scheme: 'file', language },
        { scheme: 'untitled', language },
      ]),
      { scheme: 'file', pattern: '**/.dmalens.json' },
    ],
    synchronize: {
      configurationSection: 'dmalens',
      // The project file and the topology it names: re-read when they change on disk.
      fileEvents: vscode.workspace.createFileSystemWatcher('**/.dmalens.json'),
    },
    outputChannel: output,
    traceOutputChannel: traceChannel(context, output!),
    initializationOptions: {
      docsBaseUri: vscode.Uri.file(context.asAbsolutePath('docs/rules')).toString() + '/',
      // This client registers dmalens.showRun: hovers may link to it.
      commandLinks: true,
      // Untrusted workspaces: the server reads no project file and no topology file.
      trusted: vscode.workspace.isTrusted,
    },
    // Plain markdown: hovers quote text from the user's files.
    markdown: { isTrusted: false, supportHtml: false },
    middleware: {
      // The one exception: a hover's "Show the model's run" link may run dmalens.showRun, and only that.
      provideHover: async (document, position, token, next) => {
        const hover = await next(document, position, token);
        trustShowRunLinks(hover);
        return hover;
      },
    },
  };
  return languageClient().newClient(CLIENT_ID, CLIENT_NAME, context.asAbsolutePath('server/dist/server.js'), clientOptions, setStatus);
}

async function start(context: vscode.ExtensionContext): Promise<void> {
  try {
    // After activate() returns (see languageClient()).
    await new Promise<void>((resolve) => setImmediate(resolve));
    client = createClient(context);
    await client.start();
  } catch (e) {
    setStatus('failed', e);
    output?.error(`DMA Lens language server failed to start: ${message(e)}`);
  }
}

async function restart(context: vscode.ExtensionContext): Promise<void> {
  setStatus('starting');
  const old = client;
  client = undefined;
  if (old) {
    try {
      await old.stop();
    } catch (e) {
      output?.warn(`stopping the server: ${message(e)}`);
    }
  }
  await start(context);
}

/**
 * vscode-languageclient 10 traces only while its trace channel's log level is
 * Trace, and only then reads `<id>.trace.server`. To make `dmalens.trace.server`
 * alone switch tracing on and off, the trace channel is this view of the
 * output channel whose log level follows the setting (falling back to the
 * channel's own level, so "Developer: Set Log Level... > Trace" still works).
 * Trace lines go to the DMA Lens output channel.
 */
function traceChannel(context: vscode.ExtensionContext, out: vscode.LogOutputChannel): vscode.LogOutputChannel {
  const changed = new vscode.EventEmitter<vscode.LogLevel>();
  const level = (): vscode.LogLevel => {
    const setting = vscode.workspace.getConfiguration('dmalens').get<string>('trace.server', 'off');
    return setting === 'messages' || setting === 'verbose' ? vscode.LogLevel.Trace : out.logLevel;
  };
  let last = level();
  const fire = () => {
    const now = level();
    if (now !== last) {
      last = now;
      changed.fire(now);
    }
  };
  context.subscriptions.push(
    changed,
    out.onDidChangeLogLevel(fire),
    vscode.workspace.onDidChangeConfiguration((e) => {
      if (e.affectsConfiguration('dmalens.trace.server')) fire();
    }),
  );
  return {
    get name() {
      return out.name;
    },
    get logLevel() {
      return level();
    },
    onDidChangeLogLevel: changed.event,
    trace: (message: string, ...args: unknown[]) => out.info(message, ...args),
    debug: (message: string, ...args: unknown[]) => out.debug(message, ...args),
    info: (message: string, ...args: unknown[]) => out.info(message, ...args),
    warn: (message: string, ...args: unknown[]) => out.warn(message, ...args),
    error: (error: string | Error, ...args: unknown[]) => out.error(error, ...args),
    append: (value: string) => out.append(value),
    appendLine: (value: string) => out.appendLine(value),
    replace: (value: string) => out.replace(value),
    clear: () => out.clear(),
    show: (preserveFocus?: boolean) => out.show(preserveFocus),
    hide: () => out.hide(),
    dispose: () => undefined, // the output channel is disposed with the extension
  } as vscode.LogOutputChannel;
}

type StatusState = 'starting' | 'running' | 'stopped' | 'failed';

function setStatus(state: StatusState, error?: unknown): void {
  if (!status) return;
  status.busy = state === 'starting';
  status.command =
    state === 'stopped' || state === 'failed'
      ? { title: 'Restart', command: 'dmalens.restartServer' }
      : { title: 'Show Output', command: 'dmalens.showOutput' };
  switch (state) {
    case 'starting':
      status.detail = 'starting';
      status.severity = vscode.LanguageStatusSeverity.Information;
      break;
    case 'running':
      status.detail = 'analysing C files';
      status.severity = vscode.LanguageStatusSeverity.Information;
      break;
    case 'stopped':
      status.detail = 'server stopped';
      status.severity = vscode.LanguageStatusSeverity.Warning;
      break;
    case 'failed':
      status.detail = `server failed: ${message(error)}`;
      status.severity = vscode.LanguageStatusSeverity.Error;
      break;
  }
}

function message(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
