/**
 * The part of the extension that needs vscode-languageclient, bundled apart
 * (client/dist/languageClient.js) and loaded by ./extension.ts when it starts
 * the server, after activation.
 */
import { LanguageClient, State, TransportKind, type LanguageClientOptions, type ServerOptions } from 'vscode-languageclient/node';

/** A client for the language server bundle at `module` (over IPC), reporting its state to `onState`. */
export function newClient(
  id: string,
  name: string,
  module: string,
  clientOptions: LanguageClientOptions,
  onState: (state: 'starting' | 'running' | 'stopped') => void,
): LanguageClient {
  const serverOptions: ServerOptions = {
    run: { module, transport: TransportKind.ipc },
    debug: { module, transport: TransportKind.ipc, options: { execArgv: ['--nolazy', '--inspect=6009'] } },
  };
  const c = new LanguageClient(id, name, serverOptions, clientOptions);
  c.onDidChangeState((e) => {
    if (e.newState === State.Running) onState('running');
    else if (e.newState === State.Starting) onState('starting');
    else onState('stopped');
  });
  return c;
}
