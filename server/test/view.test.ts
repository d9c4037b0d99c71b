/**
 * The run renderer (server/src/view/runView.ts): the webview document keeps a
 * strict CSP, has one nonce'd script and no inline handlers, and shows text
 * from the user's files and the run only escaped (markup, attributes, bidi
 * controls); the topology becomes an SVG with the path and the break; the
 * terminal text is one line per step.
 */
import { describe, test } from 'node:test';
import * as assert from 'node:assert/strict';
import { referenceRun, scenarioRules } from '../src/model/explain';
import type { Run } from '../src/model/types';
import { escapeHtml, renderRunHtml, renderRunText, withoutLocations } from '../src/view/runView';

const NONCE = 'dGVzdC1ub25jZS0xMjM0NQ==';
const CSP_SOURCE = 'https://*.vscode-cdn.net';

const HOSTILE = [
  '<script>alert(1)</script>',
  '</script>',
  '<img src=x onerror=alert(1)>',
  '"><svg onload=alert(1)>',
  "'><iframe src=javascript:alert(1)>",
  '[x](command:evil)',
  'abc\u202Edcba\u2066x\u2069\u200F',
  '&lt;already escaped&gt;',
  'esc\u001b[31mred\u0007',
].join(' ');

const BIDI = /[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/;

function hostileRun(): Run {
  return {
    rule: `RULE ${HOSTILE}`,
    world: `world ${HOSTILE}`,
    worldNotes: [`note ${HOSTILE}`],
    failsIn: { world: `elsewhere ${HOSTILE}`, outcome: { kind: 'UR_AER', summary: `fails ${HOSTILE}` } },
    steps: [
      { actor: 'driver', action: `action ${HOSTILE}`, state: { [`key ${HOSTILE}`]: `value ${HOSTILE}` }, location: { start: 10, end: 20 } },
      { actor: 'device', action: 'the device writes', location: { start: 30, end: 40 } },
      // An actor outside the vocabulary must not reach a class attribute unfiltered.
      { actor: `cpu" onclick="alert(1)` as never, action: 'no location' },
    ],
    outcome: { kind: 'SILENT_CORRUPTION', summary: `summary ${HOSTILE}`, target: `target ${HOSTILE}` },
    topology: {
      nodes: [
        { id: 'hb', kind: 'hostbridge', label: `host bridge ${HOSTILE}`, notes: [`0000:00:00.0 ${HOSTILE}`] },
        { id: 'rpA', kind: 'rootport', label: 'root port A' },
        { id: 'rpB', kind: 'rootport', label: 'root port B' },
        { id: 'sw', kind: 'switch-up', label: 'switch', parent: 'rpA' },
        { id: 'dA', kind: 'switch-down', label: 'down A', parent: 'sw' },
        { id: 'gpu', kind: 'endpoint', label: `GPU ${HOSTILE}`, parent: 'dA' },
        { id: 'nic', kind: 'endpoint', label: 'NIC', parent: 'rpB' },
        // Cycles and dangling parents do not break the layout.
        { id: 'c1', kind: 'endpoint', label: 'cycle 1', parent: 'c2' },
        { id: 'c2', kind: 'endpoint', label: 'cycle 2', parent: 'c1' },
        { id: 'lost', kind: 'endpoint', label: 'lost', parent: 'nowhere' },
      ],
      path: ['nic', 'rpB', 'rpA', 'sw', 'dA', 'gpu'],
      breakAt: { node: 'hb', reason: `reason ${HOSTILE}` },
    },
  };
}

function render(run: Run, extra: Partial<Parameters<typeof renderRunHtml>[1]> = {}): string {
  return renderRunHtml(run, {
    nonce: NONCE,
    cspSource: CSP_SOURCE,
    title: `DMA Lens: ${run.rule} run`,
    subtitle: `subtitle ${HOSTILE}`,
    fileName: `drv${HOSTILE}.c`,
    sourceLines: (span) => ({ line: span.start === 10 ? 4 : 7, column: 2, text: `\tline text ${HOSTILE}` }),
    ...extra,
  });
}

/** Start tags: `<name attrs>` (escaped text has no '<', so these are the real ones). */
function tags(html: string): string[] {
  return [...html.matchAll(/<[A-Za-z][^>]*>/g)].map((m) => m[0]);
}

/** A start tag's attributes, names lowercased (escaped values hold no quotes, so quoting delimits them). */
function attributes(tag: string): [string, string][] {
  const inner = tag.replace(/^<[A-Za-z][\w-]*/, '').replace(/\/?>$/, '');
  const out: [string, string][] = [];
  for (const m of inner.matchAll(/\s*([^\s=>"'\/]+)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s>]+)))?/g)) {
    out.push([m[1].toLowerCase(), m[2] ?? m[3] ?? m[4] ?? '']);
  }
  return out;
}

const VOID = new Set(['meta', 'link', 'br', 'img', 'input', 'hr', 'col', 'source', 'wbr']);

/** Element nesting is balanced (SVG self-closing tags and HTML void elements aside). */
function assertBalanced(html: string): void {
  const body = html.replace(/<style[^>]*>[\s\S]*?<\/style>/, '<style></style>').replace(/<script[^>]*>[\s\S]*?<\/script>/, '<script></script>');
  const stack: string[] = [];
  for (const m of body.matchAll(/<(\/?)([A-Za-z][\w-]*)[^>]*?(\/?)>/g)) {
    const [, close, name, self] = m;
    const n = name.toLowerCase();
    if (self || VOID.has(n)) continue;
    if (close) {
      assert.equal(stack.pop(), n, `unbalanced </${n}>`);
    } else stack.push(n);
  }
  assert.deepEqual(stack, []);
}

describe('renderRunHtml', () => {
  const html = render(hostileRun());

  test('a strict Content-Security-Policy with the nonce', () => {
    const metas = tags(html).filter((t) => /^<meta\b/i.test(t) && /http-equiv="Content-Security-Policy"/i.test(t));
    assert.equal(metas.length, 1);
    const csp = /content="([^"]*)"/.exec(metas[0])![1];
    const directives = new Map(csp.split(';').map((d) => d.trim().split(/\s+/)).map(([k, ...v]) => [k, v]));
    assert.deepEqual(directives.get('default-src'), ["'none'"]);
    assert.deepEqual(directives.get('script-src'), [`'nonce-${NONCE}'`]);
    assert.deepEqual(directives.get('style-src'), [CSP_SOURCE, `'nonce-${NONCE}'`]);
    assert.deepEqual(directives.get('img-src'), [CSP_SOURCE, 'data:']);
    // The CSP comes before anything it governs.
    assert.ok(html.indexOf('Content-Security-Policy') < html.indexOf('<style'));
  });

  test('one script, with the nonce; styles with the nonce; no inline handlers, style attributes or javascript: URLs', () => {
    const scripts = tags(html).filter((t) => /^<script\b/i.test(t));
    assert.equal(scripts.length, 1);
    assert.equal(scripts[0], `<script nonce="${NONCE}">`);
    assert.equal((html.match(/<script/gi) ?? []).length, 1);
    assert.equal((html.match(/<\/script/gi) ?? []).length, 1);
    for (const t of tags(html).filter((t) => /^<style\b/i.test(t))) assert.equal(t, `<style nonce="${NONCE}">`);
    for (const t of tags(html)) {
      assert.doesNotMatch(t, /^<(iframe|img|object|embed|base|form|link)\b/i, t);
      for (const [name, value] of attributes(t)) {
        assert.ok(!name.startsWith('on'), `inline handler ${name} in ${t}`);
        assert.notEqual(name, 'style', t);
        if (['href', 'src', 'action', 'xlink:href'].includes(name)) assert.equal(value, '#', t);
      }
    }
    for (const m of html.matchAll(/\shref="([^"]*)"/g)) assert.equal(m[1], '#');
    // The script only posts messages; it builds no markup.
    const script = /<script[^>]*>([\s\S]*?)<\/script>/.exec(html)![1];
    assert.match(script, /acquireVsCodeApi\(\)/);
    assert.match(script, /postMessage\(/);
    assert.doesNotMatch(script, /innerHTML|outerHTML|insertAdjacentHTML|document\.write|eval\(|Function\(/);
  });

  test('hostile text from the run and the file appears only escaped', () => {
    for (const raw of ['<script>alert(1)', '<img src=x', '<svg onload', '"><svg', "'><iframe", 'onerror=alert(1)>']) {
      assert.ok(!html.includes(raw), `raw ${raw} in the output`);
    }
    assert.ok(html.includes('&lt;script&gt;alert(1)&lt;/script&gt;'));
    assert.ok(html.includes('&lt;img src=x onerror=alert(1)&gt;'));
    assert.ok(html.includes('&quot;&gt;&lt;svg onload=alert(1)&gt;'));
    assert.ok(html.includes('&amp;lt;already escaped&amp;gt;'));
    // No markdown is rendered, so the link stays text; and it is nowhere a link.
    assert.ok(html.includes('[x](command:evil)'));
    assert.doesNotMatch(html, /href="command:/);
    // Bidi controls, escape sequences and bells are neutralised into visible escapes.
    assert.doesNotMatch(html, BIDI);
    assert.doesNotMatch(html, /[\u0000-\u0008\u000b-\u001f\u007f]/);
    assert.ok(html.includes('abc\\u202edcba\\u2066x\\u2069\\u200f'));
    assert.ok(html.includes('esc\\u001b[31mred\\u0007'));
    // A bogus actor does not escape its class attribute.
    const classes = tags(html).flatMap((t) => attributes(t).filter(([n]) => n === 'class').map(([, v]) => v));
    assert.ok(classes.every((c) => /^[a-z0-9 _-]+$/.test(c)), classes.join('\n'));
    assert.match(html, /<li class="step actor-x( final)?">/);
    assertBalanced(html);
  });

  test('the headline, the world, the notes and the steps', () => {
    const text = html.replace(/<[^>]*>/g, '');
    assert.match(text, /SILENT_CORRUPTION/);
    assert.match(text, /summary &lt;script&gt;/);
    assert.match(text, /Hits: target/);
    assert.match(text, /world &lt;script&gt;/);
    assert.match(text, /note &lt;script&gt;/);
    assert.match(text, /Fails in elsewhere &lt;script&gt;.*: UR_AER \(fails &lt;script&gt;/);
    assert.equal((html.match(/<li class="step /g) ?? []).length, 3);
    assert.match(html, /<table class="state">\s*<tr><th scope="row">key &lt;script&gt;/);
  });

  test('located steps link to "file:line" with the line and column as data; the others have no link', () => {
    const links = tags(html).filter((t) => /^<a\b/.test(t));
    assert.equal(links.length, 2);
    assert.match(links[0], /data-line="4" data-column="2"/);
    assert.match(links[1], /data-line="7" data-column="2"/);
    assert.ok(html.includes('.c:5</a>'));
    assert.ok(html.includes('line text &lt;script&gt;'));
    const bare = render(hostileRun(), { sourceLines: undefined });
    assert.equal(tags(bare).filter((t) => /^<a\b/.test(t)).length, 0);
    // A callback that answers nonsense gets no link either.
    const nonsense = render(hostileRun(), { sourceLines: () => ({ line: -1, column: 1.5 }) });
    assert.equal(tags(nonsense).filter((t) => /^<a\b/.test(t)).length, 0);
  });

  test('the topology becomes one SVG: a tree with the path highlighted and the break marked', () => {
    assert.equal((html.match(/<svg\b/g) ?? []).length, 1);
    const svg = /<svg\b[\s\S]*?<\/svg>/.exec(html)![0];
    // A CPU on top (the picture has none), every node drawn once.
    assert.match(svg, /<text[^>]*>CPU<\/text>/);
    assert.equal((svg.match(/<g class="node/g) ?? []).length, hostileRun().topology!.nodes.length + 1);
    // nic -> rpB -> hb -> rpA -> sw -> dA -> gpu: six edges on the path.
    assert.equal((svg.match(/class="edge on-path"/g) ?? []).length, 6);
    assert.equal((svg.match(/<g class="node on-path broken"/g) ?? []).length, 1);
    assert.match(svg, /class="break-mark"/);
    assert.match(svg, /path breaks here: reason &lt;script&gt;/);
    assert.match(html, /class="break-reason text">✕ The path breaks at host bridge &lt;script&gt;/);
    assert.match(svg, />initiator</);
    assert.match(svg, />target</);
    assert.doesNotMatch(svg, BIDI);
  });

  test('no topology, no SVG', () => {
    const run = hostileRun();
    delete run.topology;
    assert.doesNotMatch(render(run), /<svg/);
  });

  test('the nonce and the CSP source are checked, not escaped into place', () => {
    assert.throws(() => render(hostileRun(), { nonce: `x'; script-src *` }));
    assert.throws(() => render(hostileRun(), { nonce: 'short' }));
    assert.throws(() => render(hostileRun(), { cspSource: "https://x; script-src 'unsafe-inline'" }));
    assert.throws(() => render(hostileRun(), { cspSource: '"><script>' }));
    assert.doesNotThrow(() => render(hostileRun(), { cspSource: "'self'" }));
  });

  test('every rule\'s reference run renders to balanced markup with its outcome', () => {
    for (const rule of scenarioRules()) {
      const run = withoutLocations(referenceRun(rule)!);
      const page = render(run, { sourceLines: undefined, title: `DMA Lens: ${rule} run` });
      assertBalanced(page);
      assert.ok(page.includes(`<span class="kind">${run.outcome.kind}</span>`), rule);
      assert.equal(/<svg\b/.test(page), !!run.topology, rule);
    }
  });
});

describe('escapeHtml', () => {
  test('markup characters, quotes, controls and bidi', () => {
    assert.equal(escapeHtml(`<a href="x" title='y'>&</a>`), '&lt;a href=&quot;x&quot; title=&#39;y&#39;&gt;&amp;&lt;/a&gt;');
    assert.equal(escapeHtml('a\u202eb\u200bc\u0000d\te\nf'), 'a\\u202eb\\u200bc\\u0000d\te\nf');
    assert.equal(escapeHtml(undefined), '');
    assert.equal(escapeHtml(42), '42');
  });
});

describe('renderRunText', () => {
  test('one line per step with its place, then the outcome', () => {
    const run = hostileRun();
    const text = renderRunText(run, [{ file: 'drv.c', line: 5 }, null]);
    const lines = text.trimEnd().split('\n');
    assert.match(lines[0], /^world: world /);
    assert.match(lines[1], /^driver +action .*\[drv\.c:5\]$/);
    assert.match(lines[2], /^device +the device writes$/);
    assert.equal(lines.filter((l) => l.startsWith('=> ')).length, 1);
    assert.match(text, /^=> SILENT_CORRUPTION: summary /m);
    assert.match(text, /^ {3}hits: target /m);
    assert.match(text, /^ {3}note /m);
    assert.match(text, /^ {3}fails in elsewhere .*: UR_AER$/m);
    // Terminal escapes and bidi controls never reach the terminal.
    assert.doesNotMatch(text, /\u001b|\u0007/);
    assert.doesNotMatch(text, BIDI);
    assert.ok(text.includes('esc\\u001b[31mred'));
    // Every step is one line, whatever its text holds.
    const multi: Run = { ...run, steps: [{ actor: 'cpu', action: 'two\nlines\rhere' }] };
    assert.equal(renderRunText(multi).split('\n').filter((l) => l.startsWith('cpu')).length, 1);
  });

  test('every rule\'s reference run prints its outcome', () => {
    for (const rule of scenarioRules()) {
      const run = referenceRun(rule)!;
      assert.match(renderRunText(withoutLocations(run)), new RegExp(`^=> ${run.outcome.kind}: `, 'm'), rule);
    }
  });
});
