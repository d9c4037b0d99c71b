/** .dmalens.json "overrides": per-file rule settings, validated with spans. */
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { parseProjectConfig, rulesForPath } from '../../src/core/config';
import { RULES } from '../../src/rules/registry';

const KNOWN = new Set(RULES.map((r) => r.id));

test('overrides apply to the files they name, after "rules"', () => {
  const text = `{
  "rules": { "disabled": ["P2P-CPU-MEMCPY"], "severity": { "DMABUF-LOCKING": "warning" } },
  // one file, and a glob
  "overrides": [
    { "files": ["drivers/gpu/drm/acme/acme_dmabuf.c"], "disabled": ["DMABUF-ERRPTR"] },
    { "files": ["drivers/staging/**"], "disabled": ["DMABUF-LOCKING"], "severity": { "MIG-FAULT-PAGE": "info" } },
  ],
}`;
  const { config, problems } = parseProjectConfig(text, KNOWN);
  assert.deepEqual(problems, []);
  assert.equal(config.overrides.length, 2);
  assert.deepEqual(rulesForPath(config, 'drivers/gpu/drm/acme/acme_dmabuf.c'), {
    disabledRules: ['P2P-CPU-MEMCPY', 'DMABUF-ERRPTR'],
    severity: { 'DMABUF-LOCKING': 'warning' },
  });
  assert.deepEqual(rulesForPath(config, 'drivers/staging/x/y.c'), {
    disabledRules: ['P2P-CPU-MEMCPY', 'DMABUF-LOCKING'],
    severity: { 'DMABUF-LOCKING': 'warning', 'MIG-FAULT-PAGE': 'info' },
  });
  assert.deepEqual(rulesForPath(config, 'drivers/gpu/drm/acme/other.c').disabledRules, ['P2P-CPU-MEMCPY']);
  assert.deepEqual(rulesForPath(config, undefined).disabledRules, ['P2P-CPU-MEMCPY']);
});

test('broken overrides are reported at their spans; the valid ones still apply', () => {
  const text = '{ "overrides": [ 3, { "disabled": ["DMABUF-ERRPTR"] }, { "files": ["../x.c"] }, { "files": ["a.c"], "disabled": ["NO-SUCH-RULE", "DMABUF-ERRPTR"], "bogus": 1 } ] }';
  const { config, problems } = parseProjectConfig(text, KNOWN);
  const at = (p: { span: { start: number; end: number } }) => text.slice(p.span.start, p.span.end);
  const msgs = problems.map((p) => `${at(p)} => ${p.message}`);
  assert.ok(msgs.some((m) => m.startsWith('3 => an override is an object')), msgs.join('\n'));
  assert.ok(msgs.some((m) => /"files" must be a non-empty array/.test(m)), msgs.join('\n'));
  assert.ok(msgs.some((m) => m.startsWith('"../x.c" => override file patterns are relative')), msgs.join('\n'));
  assert.ok(msgs.some((m) => m.startsWith('"NO-SUCH-RULE" => unknown rule id')), msgs.join('\n'));
  assert.ok(msgs.some((m) => m.startsWith('"bogus" => unknown key "bogus" in an override')), msgs.join('\n'));
  assert.deepEqual(config.overrides, [{ files: ['a.c'], disabled: ['DMABUF-ERRPTR'], severity: {} }]);
  assert.deepEqual(parseProjectConfig('{ "overrides": {} }', KNOWN).problems.map((p) => p.message), ['"overrides" must be an array of {files, disabled?, severity?}']);
});
