/**
 * Entry point of the language server (bundled to server/dist/server.js).
 *
 *   node server/dist/server.js --stdio       (or --node-ipc, --socket=N, --pipe=NAME)
 *   npx dmalens-language-server --stdio
 *
 * `createConnection(ProposedFeatures.all)` picks the transport from argv.
 */
import { createConnection, ProposedFeatures, type Connection } from 'vscode-languageserver/node';
import { DmaLensServer, describe, type ServerOptions } from './server';

export { DmaLensServer, SERVER_VERSION } from './server';

export function startServer(options: ServerOptions = {}, connection?: Connection): DmaLensServer {
  const c = connection ?? createConnection(ProposedFeatures.all);
  const server = new DmaLensServer(c, options);
  // Never crash on a stray error: say so in the client's log and carry on.
  // Bounded, so a broken connection cannot turn reporting into a loop.
  let reported = 0;
  const report = (what: string, e: unknown) => {
    if (++reported > 50) return;
    try {
      const stack = e instanceof Error && e.stack ? '\n' + e.stack : '';
      void Promise.resolve(c.console.error(`${what}: ${describe(e)}${stack}`)).catch(() => undefined);
    } catch {
      /* the connection itself is gone; nothing left to tell */
    }
  };
  process.on('uncaughtException', (e) => report('uncaught exception', e));
  process.on('unhandledRejection', (e) => report('unhandled rejection', e));
  server.listen();
  return server;
}

if (require.main === module) startServer();
