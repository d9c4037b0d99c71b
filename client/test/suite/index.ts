/**
 * The VS Code API test suite: the checks of the end-to-end test
 * (server/test/e2e.vscode.test.ts) through the extension API instead of
 * the DOM, for contributors with VS Code desktop.
 *
 *   npm run test:vscode                 VS Code from @vscode/test-electron (downloads it once)
 *   npm run test:vscode -- --code-server the same suite inside code-server (no download; CI machines)
 *
 * `run()` is what @vscode/test-electron calls (extensionTestsPath); a tiny
 * runner of our own (no mocha): tests run in order, each with a time limit;
 * failures are collected and `run()` rejects with all of them.
 *
 * Environment: DMALENS_TEST_REPO (the repository: examples/README.md, the
 * rule list) and DMALENS_TEST_WS (the workspace folder VS Code has open, a
 * copy of examples/ with the patch fixture under review/).
 */
import { tests } from './extension.test';

export interface TestResult {
  name: string;
  ok: boolean;
  skipped?: string;
  ms: number;
  error?: string;
}

export async function runTests(log: (m: string) => void = (m) => console.log(m)): Promise<TestResult[]> {
  const results: TestResult[] = [];
  for (const t of tests) {
    const t0 = Date.now();
    let timer: NodeJS.Timeout | undefined;
    try {
      const skipped = await Promise.race([
        t.fn(),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`timed out after ${t.timeoutMs / 1000} s`)), t.timeoutMs);
        }),
      ]);
      results.push({ name: t.name, ok: true, ms: Date.now() - t0, ...(typeof skipped === 'string' ? { skipped } : {}) });
      log(`${typeof skipped === 'string' ? '-' : '✔'} ${t.name} (${Date.now() - t0} ms)${typeof skipped === 'string' ? ' # SKIP ' + skipped : ''}`);
    } catch (e) {
      const error = e instanceof Error ? e.stack || e.message : String(e);
      results.push({ name: t.name, ok: false, ms: Date.now() - t0, error });
      log(`✖ ${t.name} (${Date.now() - t0} ms)\n${error}`);
    } finally {
      if (timer) clearTimeout(timer);
    }
  }
  return results;
}

/** The entry point @vscode/test-electron loads. */
export async function run(): Promise<void> {
  const results = await runTests();
  const failed = results.filter((r) => !r.ok);
  console.log(`${results.length - failed.length} passed, ${failed.length} failed`);
  if (failed.length) throw new Error(`${failed.length} test(s) failed: ${failed.map((f) => f.name).join('; ')}`);
}
