/**
 * The capabilities the language server announces, from one initialize
 * handshake over stdio: which features the suite can test (CodeLens for
 * patches, code actions). Runs the server with the editor's own Node
 * (VS Code's Electron as Node, or code-server's Node).
 */
import { spawn } from 'node:child_process';

export async function probeCapabilities(script: string): Promise<Record<string, unknown>> {
  const child = spawn(process.execPath, [script, '--stdio'], {
    stdio: ['pipe', 'pipe', 'ignore'],
    env: { ...process.env, ELECTRON_RUN_AS_NODE: '1' },
  });
  const send = (m: unknown) => {
    const body = Buffer.from(JSON.stringify(m), 'utf8');
    child.stdin.write(`Content-Length: ${body.length}\r\n\r\n`);
    child.stdin.write(body);
  };
  try {
    return await new Promise<Record<string, unknown>>((resolve, reject) => {
      let buf = Buffer.alloc(0);
      const timer = setTimeout(() => reject(new Error('the language server did not answer initialize')), 20_000);
      child.on('exit', (code) => reject(new Error(`the language server exited (${code})`)));
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
            resolve((msg.result && msg.result.capabilities) || {});
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
              codeLens: {},
              codeAction: { codeActionLiteralSupport: { codeActionKind: { valueSet: ['', 'quickfix'] } } },
            },
          },
        },
      });
    });
  } finally {
    child.kill();
  }
}
