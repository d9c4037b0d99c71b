/**
 * Where people see the model's runs: a complete HTML document for a webview
 * (VS Code's run panel, `dmalens explain --format html`) and plain text for
 * terminals. Pure functions: no editor, no protocol, no node modules.
 *
 * Everything a run holds may come from the user's files or topology (function
 * and field names, lspci labels), so every string goes through `escapeHtml`
 * (text and attributes alike) or `escapeTerminal`. Both also neutralise
 * control and bidirectional formatting characters (shown as a visible `\uXXXX`),
 * so a crafted string can neither inject markup nor reorder what is shown.
 *
 * The HTML document carries a strict Content-Security-Policy: nothing loads
 * but the document itself; the one style block and the one script carry the
 * nonce; there are no inline event handlers and no style attributes.
 */
import type { Span } from '../core/types';
import type { Run, Step, TopoNode, TopologyPicture } from '../model/types';

/** Where a step's location is, for links: zero-based LSP line and UTF-16 column, and the line's text. */
export interface SourceLine {
  /** Zero-based line. */
  line: number;
  /** Zero-based column (UTF-16 code units, the LSP default). */
  column: number;
  /** The source line itself, shown under the step. */
  text?: string;
}

export interface RunHtmlOptions {
  /** Fresh per render; goes into the CSP and on the style and script elements. */
  nonce: string;
  /** `webview.cspSource` (or `'self'` for a standalone file). */
  cspSource: string;
  /** The document's title and headline. */
  title: string;
  /** The step's place in the analysed file; steps without one get no link. */
  sourceLines?: (span: Span, stepIndex: number) => SourceLine | undefined;
  /** File name shown in the step links ("file:line"). */
  fileName?: string;
  /** One line under the title (the finding's message, "reference scenario"). */
  subtitle?: string;
}

// Control characters (but tab and newline), C1 controls, bidi embeddings,
// overrides, isolates and marks, zero-width characters and the BOM.
const INVISIBLE =
  /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u00ad\u061c\u115f\u1160\u180e\u200b-\u200f\u2028-\u202e\u2060-\u206f\u3164\ufe00-\ufe0f\ufeff\ufff9-\ufffb]/g;

function visibleEscape(c: string): string {
  return '\\u' + c.charCodeAt(0).toString(16).padStart(4, '0');
}

/** Replaces invisible and direction-changing characters with a visible `\uXXXX`. */
export function neutralise(text: string): string {
  return text.replace(INVISIBLE, visibleEscape);
}

/**
 * Text -> HTML text or attribute value (double- or single-quoted): the five
 * markup characters become entities; invisible and bidi characters become a
 * visible `\uXXXX`.
 */
export function escapeHtml(value: unknown): string {
  return neutralise(String(value ?? '')).replace(/[&<>"']/g, (c) => {
    switch (c) {
      case '&':
        return '&amp;';
      case '<':
        return '&lt;';
      case '>':
        return '&gt;';
      case '"':
        return '&quot;';
      default:
        return '&#39;';
    }
  });
}

/** Text for a terminal: one line, no escape sequences, no bidi reordering. */
export function escapeTerminal(value: unknown): string {
  return neutralise(String(value ?? '').replace(/\r\n|[\r\n]/g, ' ')).replace(/\t/g, ' ');
}

/** A class-name fragment from a fixed vocabulary (actor, outcome kind); anything else becomes "x". */
function token(s: string): string {
  const t = String(s).toLowerCase();
  return /^[a-z0-9_-]{1,40}$/.test(t) ? t : 'x';
}

const NONCE = /^[A-Za-z0-9+/_=-]{8,128}$/;

function checkOptions(o: RunHtmlOptions): void {
  if (!NONCE.test(o.nonce)) throw new Error('renderRunHtml: the nonce must be 8-128 base64 characters');
  // A CSP source list: no directive separators, no quotes but those of keywords, no controls.
  if (!/^[^;,\s"<>&\\]+( [^;,\s"<>&\\]+)*$/.test(o.cspSource)) throw new Error('renderRunHtml: invalid cspSource');
}

// ---------------------------------------------------------------- HTML

const STYLE = `
:root { color-scheme: light dark; }
body {
  font-family: var(--vscode-font-family, system-ui, sans-serif);
  font-size: var(--vscode-font-size, 13px);
  color: var(--vscode-foreground, CanvasText);
  background: var(--vscode-editor-background, Canvas);
  margin: 0; padding: 12px 20px 32px; line-height: 1.45;
}
h1 { font-size: 1.35em; margin: 0.2em 0 0.1em; font-weight: 600; }
h2 { font-size: 1.05em; margin: 1.4em 0 0.5em; font-weight: 600; text-transform: uppercase; letter-spacing: 0.04em;
  color: var(--vscode-descriptionForeground, GrayText); }
.subtitle { margin: 0; color: var(--vscode-descriptionForeground, GrayText); }
.text { unicode-bidi: isolate; overflow-wrap: anywhere; }
code, .mono { font-family: var(--vscode-editor-font-family, ui-monospace, monospace); font-size: 0.95em; }
.outcome { margin: 14px 0 4px; padding: 10px 14px; border-left: 4px solid var(--vscode-editorError-foreground, #d33);
  background: var(--vscode-textBlockQuote-background, rgba(127,127,127,0.1)); }
.outcome.kind-ok { border-left-color: var(--vscode-testing-iconPassed, #3a3); }
.outcome.kind-warn, .outcome.kind-leak, .outcome.kind-io_error { border-left-color: var(--vscode-editorWarning-foreground, #c90); }
.outcome .kind { font-family: var(--vscode-editor-font-family, ui-monospace, monospace); font-weight: 700;
  color: var(--vscode-editorError-foreground, #d33); }
.outcome.kind-ok .kind { color: var(--vscode-testing-iconPassed, #3a3); }
.outcome.kind-warn .kind, .outcome.kind-leak .kind, .outcome.kind-io_error .kind { color: var(--vscode-editorWarning-foreground, #c90); }
.outcome .summary { margin: 0.3em 0 0; font-size: 1.05em; }
.outcome .target { margin: 0.3em 0 0; color: var(--vscode-descriptionForeground, GrayText); }
.world ul { margin: 0.4em 0 0; padding-left: 1.3em; }
.steps { list-style: none; margin: 0; padding: 0; border-left: 2px solid var(--vscode-panel-border, rgba(127,127,127,0.4)); }
.step { display: grid; grid-template-columns: 5.5em 1fr; gap: 4px 12px; padding: 6px 0 6px 10px; position: relative; }
.step + .step { border-top: 1px solid var(--vscode-panel-border, rgba(127,127,127,0.2)); }
.step .actor { font-family: var(--vscode-editor-font-family, ui-monospace, monospace); font-size: 0.9em; font-weight: 600;
  padding-top: 1px; color: var(--vscode-symbolIcon-functionForeground, var(--vscode-textLink-foreground, LinkText)); }
.step.actor-device .actor, .step.actor-bus .actor { color: var(--vscode-symbolIcon-eventForeground, var(--vscode-charts-orange, #d80)); }
.step.actor-iommu .actor { color: var(--vscode-charts-purple, #a5d); }
.step.actor-cpu .actor { color: var(--vscode-charts-blue, #38c); }
.step.final .action { font-weight: 600; }
.step .action { margin: 0; }
.step .n { color: var(--vscode-descriptionForeground, GrayText); font-size: 0.85em; margin-right: 0.4em; }
table.state { border-collapse: collapse; margin-top: 4px; font-size: 0.92em; }
table.state th, table.state td { text-align: left; padding: 1px 10px 1px 0; vertical-align: top; }
table.state th { font-weight: normal; color: var(--vscode-descriptionForeground, GrayText);
  font-family: var(--vscode-editor-font-family, ui-monospace, monospace); }
table.state td { font-family: var(--vscode-editor-font-family, ui-monospace, monospace); }
.where { margin-top: 3px; display: flex; gap: 10px; align-items: baseline; flex-wrap: wrap; }
a.loc { color: var(--vscode-textLink-foreground, LinkText); text-decoration: none;
  font-family: var(--vscode-editor-font-family, ui-monospace, monospace); font-size: 0.92em; }
a.loc:hover, a.loc:focus { text-decoration: underline; color: var(--vscode-textLink-activeForeground, LinkText); }
a.loc:focus-visible { outline: 1px solid var(--vscode-focusBorder, Highlight); }
.src { white-space: pre; overflow-x: auto; max-width: 100%; padding: 1px 6px;
  background: var(--vscode-textCodeBlock-background, rgba(127,127,127,0.12)); border-radius: 3px; }
.topology { overflow-x: auto; }
.topology svg { display: block; max-width: none; }
.topology .edge { fill: none; stroke: var(--vscode-panel-border, rgba(127,127,127,0.6)); stroke-width: 1.2; }
.topology .edge.on-path { stroke: var(--vscode-charts-blue, #38c); stroke-width: 3; }
.topology .node rect { fill: var(--vscode-editorWidget-background, Canvas); stroke: var(--vscode-panel-border, rgba(127,127,127,0.7)); stroke-width: 1; }
.topology .node.on-path rect { stroke: var(--vscode-charts-blue, #38c); stroke-width: 2; }
.topology .node.broken rect { stroke: var(--vscode-editorError-foreground, #d33); stroke-width: 2.5; stroke-dasharray: 5 3; }
.topology .node.virtual rect { stroke-dasharray: 2 3; }
.topology text { fill: var(--vscode-foreground, CanvasText); font-family: var(--vscode-font-family, system-ui, sans-serif); font-size: 11px; }
.topology text.note { fill: var(--vscode-descriptionForeground, GrayText); font-size: 9.5px;
  font-family: var(--vscode-editor-font-family, ui-monospace, monospace); }
.topology text.role { fill: var(--vscode-charts-blue, #38c); font-size: 9.5px; font-weight: 600; }
.topology .break-mark circle { fill: var(--vscode-editorError-foreground, #d33); }
.topology .break-mark path { stroke: var(--vscode-editor-background, Canvas); stroke-width: 2; }
.topology .break-reason { color: var(--vscode-editorError-foreground, #d33); margin: 6px 0 0; }
.topology .legend { color: var(--vscode-descriptionForeground, GrayText); font-size: 0.9em; margin: 4px 0 0; }
.empty { color: var(--vscode-descriptionForeground, GrayText); }
`;

/**
 * The run's webview document. Every step with a location that `sourceLines`
 * resolves gets a "file:line" link; clicking it posts
 * `{command: 'reveal', line, column}` (zero-based numbers) to the extension.
 */
export function renderRunHtml(run: Run, options: RunHtmlOptions): string {
  checkOptions(options);
  const { nonce, cspSource } = options;
  const csp =
    `default-src 'none'; img-src ${cspSource} data:; style-src ${cspSource} 'nonce-${nonce}'; ` +
    `script-src 'nonce-${nonce}'; base-uri 'none'; form-action 'none'`;
  const parts: string[] = [];
  parts.push('<!DOCTYPE html>');
  parts.push('<html lang="en">');
  parts.push('<head>');
  parts.push('<meta charset="utf-8">');
  // Built from the checked nonce and source list only (no '"', '<', '>' or '&'), so it goes in as is.
  parts.push(`<meta http-equiv="Content-Security-Policy" content="${csp}">`);
  parts.push('<meta name="viewport" content="width=device-width, initial-scale=1">');
  parts.push(`<title>${escapeHtml(options.title)}</title>`);
  parts.push(`<style nonce="${escapeHtml(nonce)}">${STYLE}</style>`);
  parts.push('</head>');
  parts.push('<body>');
  parts.push('<header>');
  parts.push(`<h1 class="text">${escapeHtml(options.title)}</h1>`);
  if (options.subtitle) parts.push(`<p class="subtitle text">${escapeHtml(options.subtitle)}</p>`);
  parts.push('</header>');
  parts.push(outcomeHtml(run));
  parts.push(worldHtml(run));
  if (run.topology) parts.push(topologyHtml(run.topology));
  parts.push(stepsHtml(run, options));
  parts.push(`<script nonce="${escapeHtml(nonce)}">${SCRIPT}</script>`);
  parts.push('</body>');
  parts.push('</html>');
  return parts.join('\n') + '\n';
}

function outcomeHtml(run: Run): string {
  const o = run.outcome;
  const out = [`<section class="outcome kind-${token(o.kind)}" aria-label="Outcome">`];
  out.push(`<div><span class="kind">${escapeHtml(o.kind)}</span></div>`);
  out.push(`<p class="summary text">${escapeHtml(o.summary)}</p>`);
  if (o.target) out.push(`<p class="target text">Hits: ${escapeHtml(o.target)}</p>`);
  if (run.failsIn) out.push(`<p class="target text">Fails in ${escapeHtml(run.failsIn.world)}: ${escapeHtml(run.failsIn.outcome.kind)} (${escapeHtml(run.failsIn.outcome.summary)})</p>`);
  out.push('</section>');
  return out.join('\n');
}

function worldHtml(run: Run): string {
  const out = ['<section class="world">', '<h2>World</h2>', `<p class="text">${escapeHtml(run.world)}</p>`];
  if (run.worldNotes && run.worldNotes.length > 0) {
    out.push('<ul>');
    for (const n of run.worldNotes) out.push(`<li class="text">${escapeHtml(n)}</li>`);
    out.push('</ul>');
  }
  out.push('</section>');
  return out.join('\n');
}

function stepsHtml(run: Run, o: RunHtmlOptions): string {
  const out = ['<section class="timeline">', '<h2>Steps</h2>'];
  if (run.steps.length === 0) {
    out.push('<p class="empty">The run has no steps.</p>');
  } else {
    out.push('<ol class="steps">');
    run.steps.forEach((s, i) => out.push(stepHtml(s, i, i === run.steps.length - 1 && run.outcome.kind !== 'OK', o)));
    out.push('</ol>');
  }
  out.push('</section>');
  return out.join('\n');
}

function stepHtml(s: Step, i: number, final: boolean, o: RunHtmlOptions): string {
  const cls = `step actor-${token(s.actor)}${final ? ' final' : ''}`;
  const out = [`<li class="${cls}">`];
  out.push(`<span class="actor">${escapeHtml(s.actor)}</span>`);
  out.push('<div class="body">');
  out.push(`<p class="action text"><span class="n">${i + 1}.</span>${escapeHtml(s.action)}</p>`);
  const state = s.state ? Object.entries(s.state) : [];
  if (state.length > 0) {
    out.push('<table class="state">');
    for (const [k, v] of state) out.push(`<tr><th scope="row">${escapeHtml(k)}</th><td class="text">${escapeHtml(v)}</td></tr>`);
    out.push('</table>');
  }
  const where = s.location && o.sourceLines ? safeSourceLine(o.sourceLines, s.location, i) : undefined;
  if (where) {
    const label = `${o.fileName ?? 'line'}${o.fileName ? ':' : ' '}${where.line + 1}`;
    out.push('<div class="where">');
    out.push(
      `<a href="#" class="loc" data-line="${where.line}" data-column="${where.column}" ` +
        `title="${escapeHtml(`Go to ${label}`)}">${escapeHtml(label)}</a>`,
    );
    if (where.text !== undefined && where.text.trim() !== '') {
      out.push(`<code class="src">${escapeHtml(clip(where.text.trim(), 200))}</code>`);
    }
    out.push('</div>');
  }
  out.push('</div>');
  out.push('</li>');
  return out.join('\n');
}

/** The step's line, when the callback gives one made of sane numbers. */
function safeSourceLine(f: NonNullable<RunHtmlOptions['sourceLines']>, span: Span, i: number): SourceLine | undefined {
  const l = f(span, i);
  if (!l || !isIndex(l.line) || !isIndex(l.column)) return undefined;
  return { line: l.line, column: l.column, text: typeof l.text === 'string' ? l.text : undefined };
}

function isIndex(n: unknown): n is number {
  return typeof n === 'number' && Number.isInteger(n) && n >= 0 && n < 1e9;
}

function clip(s: string, n: number): string {
  return s.length > n ? s.slice(0, n - 1) + '…' : s;
}

/**
 * Wires the step links: a click (or Enter) on `a.loc` posts the line and
 * column it carries. Outside a webview (a file opened in a browser) it does nothing.
 */
const SCRIPT = `
(function () {
  'use strict';
  var api = typeof acquireVsCodeApi === 'function' ? acquireVsCodeApi() : undefined;
  document.addEventListener('click', function (event) {
    var t = event.target;
    var a = t && typeof t.closest === 'function' ? t.closest('a.loc') : null;
    if (!a) return;
    event.preventDefault();
    var line = Number(a.getAttribute('data-line'));
    var column = Number(a.getAttribute('data-column'));
    if (!api || !Number.isInteger(line) || !Number.isInteger(column) || line < 0 || column < 0) return;
    api.postMessage({ command: 'reveal', line: line, column: column });
  });
})();
`;

// ---------------------------------------------------------------- topology SVG

const NODE_W = 176;
const NODE_H = 54;
const GAP_X = 18;
const ROW_H = 86;
const PAD = 14;
const MAX_NODES = 400;

const VIRTUAL_ROOT = '\u0000cpu';

interface Placed {
  id: string;
  node: TopoNode;
  virtual: boolean;
  parent?: string;
  children: string[];
  depth: number;
  x: number;
  y: number;
}

/** The topology section: the drawing, what the highlight means, and the break's reason. */
function topologyHtml(t: TopologyPicture): string {
  const out = ['<section class="topology">', '<h2>Topology</h2>'];
  const svg = topologySvg(t);
  if (svg) out.push(svg);
  else out.push(`<p class="empty">The topology has ${t.nodes.length} nodes, too many to draw.</p>`);
  if (t.path.length > 0) {
    const label = (id: string) => t.nodes.find((n) => n.id === id)?.label ?? id;
    out.push(
      `<p class="legend text">DMA path (highlighted): ${t.path.map((id) => escapeHtml(label(id))).join(' → ')}</p>`,
    );
  }
  if (t.breakAt) {
    const at = t.nodes.find((n) => n.id === t.breakAt!.node)?.label ?? t.breakAt.node;
    out.push(`<p class="break-reason text">✕ The path breaks at ${escapeHtml(at)}: ${escapeHtml(t.breakAt.reason)}</p>`);
  }
  out.push('</section>');
  return out.join('\n');
}

/**
 * The topology as a tree: CPU on top (drawn when the picture has none), host
 * bridges, root ports, switches, endpoints. Nodes without a parent hang under
 * the host bridge (root ports) or the CPU (the rest). The DMA path is drawn
 * along the tree (through the common ancestor of each hop), the break point
 * gets a red mark and its reason as a tooltip. Undefined when too large.
 */
export function topologySvg(t: TopologyPicture): string | undefined {
  if (t.nodes.length > MAX_NODES) return undefined;
  const placed = layoutTree(t);
  const byId = placed.byId;
  const onPathNodes = new Set<string>();
  const onPathEdges = new Set<string>(); // child ids whose edge to the parent is on the path
  const known = t.path.filter((id) => byId.has(id));
  for (const id of known) onPathNodes.add(id);
  for (let i = 0; i + 1 < known.length; i++) {
    for (const id of treePath(byId, known[i], known[i + 1])) onPathNodes.add(id);
    for (const child of treeEdges(byId, known[i], known[i + 1])) onPathEdges.add(child);
  }
  const initiator = known[0];
  const target = known.length > 1 ? known[known.length - 1] : undefined;
  const broken = t.breakAt && byId.has(t.breakAt.node) ? t.breakAt.node : undefined;

  const width = Math.max(NODE_W + 2 * PAD, placed.width + 2 * PAD);
  const height = (placed.maxDepth + 1) * ROW_H - (ROW_H - NODE_H) + 2 * PAD + 12;
  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" role="img" aria-labelledby="topo-title" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}">`,
  );
  out.push('<title id="topo-title">PCIe topology with the DMA path</title>');
  // Edges first, path edges last (on top).
  const edges = [...byId.values()].filter((p) => p.parent !== undefined);
  edges.sort((a, b) => Number(onPathEdges.has(a.id)) - Number(onPathEdges.has(b.id)));
  for (const p of edges) {
    const parent = byId.get(p.parent!)!;
    const x1 = PAD + parent.x + NODE_W / 2;
    const y1 = PAD + 12 + parent.y + NODE_H;
    const x2 = PAD + p.x + NODE_W / 2;
    const y2 = PAD + 12 + p.y;
    const mid = (y1 + y2) / 2;
    const cls = onPathEdges.has(p.id) ? 'edge on-path' : 'edge';
    out.push(`<path class="${cls}" d="M${x1} ${y1} V${mid} H${x2} V${y2}"/>`);
  }
  for (const p of byId.values()) {
    const classes = ['node'];
    if (onPathNodes.has(p.id)) classes.push('on-path');
    if (p.id === broken) classes.push('broken');
    if (p.virtual) classes.push('virtual');
    const x = PAD + p.x;
    const y = PAD + 12 + p.y;
    out.push(`<g class="${classes.join(' ')}">`);
    const tip = [p.node.label, ...(p.node.notes ?? [])].join(' — ') + (p.id === broken ? ` — path breaks here: ${t.breakAt!.reason}` : '');
    out.push(`<title>${escapeHtml(tip)}</title>`);
    out.push(`<rect x="${x}" y="${y}" width="${NODE_W}" height="${NODE_H}" rx="5" ry="5"/>`);
    const lines = wrap(p.node.label, 28, 2);
    lines.forEach((l, i) => out.push(`<text x="${x + 8}" y="${y + 16 + i * 13}">${escapeHtml(l)}</text>`));
    const note = (p.node.notes ?? []).join(' · ');
    if (note) out.push(`<text class="note" x="${x + 8}" y="${y + NODE_H - 7}">${escapeHtml(clip(note, 34))}</text>`);
    const role = p.id === initiator ? 'initiator' : p.id === target ? 'target' : undefined;
    if (role) out.push(`<text class="role" x="${x + 2}" y="${y - 4}">${role}</text>`);
    if (p.id === broken) {
      const cx = x + NODE_W - 2;
      const cy = y + 2;
      out.push(
        `<g class="break-mark"><circle cx="${cx}" cy="${cy}" r="9"/>` +
          `<path d="M${cx - 4} ${cy - 4} L${cx + 4} ${cy + 4} M${cx + 4} ${cy - 4} L${cx - 4} ${cy + 4}"/></g>`,
      );
    }
    out.push('</g>');
  }
  out.push('</svg>');
  return out.join('\n');
}

const KIND_ORDER: Record<TopoNode['kind'], number> = {
  cpu: 0,
  hostbridge: 1,
  iommu: 2,
  ram: 3,
  rootport: 4,
  'switch-up': 5,
  'switch-down': 6,
  endpoint: 7,
};

function layoutTree(t: TopologyPicture): { byId: Map<string, Placed>; width: number; maxDepth: number } {
  const byId = new Map<string, Placed>();
  for (const n of t.nodes) {
    if (byId.has(n.id)) continue; // the first of duplicate ids wins
    byId.set(n.id, { id: n.id, node: n, virtual: false, children: [], depth: 0, x: 0, y: 0 });
  }
  let root = [...byId.values()].find((p) => p.node.kind === 'cpu' && (!p.node.parent || !byId.has(p.node.parent)));
  if (!root) {
    root = { id: VIRTUAL_ROOT, node: { id: VIRTUAL_ROOT, kind: 'cpu', label: 'CPU' }, virtual: true, children: [], depth: 0, x: 0, y: 0 };
    byId.set(root.id, root);
  }
  const rootId = root.id;
  const hostBridge = [...byId.values()].find((p) => p.node.kind === 'hostbridge');
  // Effective parents: the node's own when known, else by kind.
  const fallbackParent = (p: Placed): string | undefined => {
    if (p.id === rootId) return undefined;
    if (p.node.kind === 'rootport' && hostBridge && hostBridge.id !== p.id) return hostBridge.id;
    return rootId;
  };
  for (const p of byId.values()) {
    if (p.id === rootId) continue;
    const own = p.node.parent;
    p.parent = own !== undefined && own !== p.id && byId.has(own) ? own : fallbackParent(p);
  }
  // Nodes caught in a parent cycle never reach the root: hang them under it.
  for (const p of byId.values()) {
    const seen = new Set<string>();
    let q: Placed | undefined = p;
    while (q && q.parent !== undefined && !seen.has(q.id)) {
      seen.add(q.id);
      q = byId.get(q.parent);
    }
    if (q && q.id !== rootId) q.parent = rootId;
  }
  const order = new Map(t.nodes.map((n, i) => [n.id, i]));
  for (const p of byId.values()) if (p.parent !== undefined) byId.get(p.parent)!.children.push(p.id);
  for (const p of byId.values()) {
    p.children.sort((a, b) => {
      const na = byId.get(a)!.node;
      const nb = byId.get(b)!.node;
      return (KIND_ORDER[na.kind] ?? 9) - (KIND_ORDER[nb.kind] ?? 9) || (order.get(a) ?? 0) - (order.get(b) ?? 0);
    });
  }
  // Leaves left to right; a parent centred over its children.
  let nextX = 0;
  let maxDepth = 0;
  const place = (id: string, depth: number): void => {
    const p = byId.get(id)!;
    p.depth = depth;
    p.y = depth * ROW_H;
    maxDepth = Math.max(maxDepth, depth);
    if (p.children.length === 0) {
      p.x = nextX;
      nextX += NODE_W + GAP_X;
      return;
    }
    for (const c of p.children) place(c, depth + 1);
    const first = byId.get(p.children[0])!;
    const last = byId.get(p.children[p.children.length - 1])!;
    p.x = (first.x + last.x) / 2;
  };
  place(rootId, 0);
  return { byId, width: Math.max(0, nextX - GAP_X), maxDepth };
}

function ancestors(byId: Map<string, Placed>, id: string): string[] {
  const out: string[] = [];
  const seen = new Set<string>();
  for (let p = byId.get(id); p && !seen.has(p.id); p = p.parent !== undefined ? byId.get(p.parent) : undefined) {
    seen.add(p.id);
    out.push(p.id);
  }
  return out;
}

/** Node ids from `a` to `b` along the tree, both included. */
function treePath(byId: Map<string, Placed>, a: string, b: string): string[] {
  const up = ancestors(byId, a);
  const down = ancestors(byId, b);
  const meet = up.find((x) => down.includes(x));
  if (meet === undefined) return [a, b];
  return [...up.slice(0, up.indexOf(meet) + 1), ...down.slice(0, down.indexOf(meet)).reverse()];
}

/** The edges (as child ids) between `a` and `b` along the tree. */
function treeEdges(byId: Map<string, Placed>, a: string, b: string): string[] {
  const up = ancestors(byId, a);
  const down = ancestors(byId, b);
  const meet = up.find((x) => down.includes(x));
  if (meet === undefined) return [];
  return [...up.slice(0, up.indexOf(meet)), ...down.slice(0, down.indexOf(meet))];
}

/** Word-wraps `s` into at most `maxLines` lines of `width` characters, with an ellipsis when cut. */
function wrap(s: string, width: number, maxLines: number): string[] {
  const words = s.split(/\s+/).filter((w) => w.length > 0);
  const lines: string[] = [];
  let cur = '';
  for (const w of words) {
    if (cur === '') cur = w;
    else if (cur.length + 1 + w.length <= width) cur += ' ' + w;
    else {
      lines.push(cur);
      cur = w;
    }
  }
  if (cur !== '') lines.push(cur);
  const out = lines.slice(0, maxLines).map((l) => clip(l, width));
  if (lines.length > maxLines) out[maxLines - 1] = clip(out[maxLines - 1] + ' …', width);
  return out;
}

// ---------------------------------------------------------------- text

/** Where a step is in a terminal: the file as the user named it and a one-based line. */
export interface TextLocation {
  file?: string;
  /** One-based line. */
  line: number;
}

/**
 * A run for terminals:
 *
 *   world: an x86 server, IOMMU translated, ...
 *   driver  the GPU driver exports a 2 MiB buffer ...
 *   kernel  dma_buf_map_attachment() ...  [drv.c:42]
 *   => SILENT_CORRUPTION: the NIC writes a frame into ...
 *      hits: VRAM reused by another BO
 *      with GPU and NIC behind one PCIe switch: it works
 *
 * `lines[i]` locates step i (steps without one get no bracket).
 */
export function renderRunText(run: Run, lines?: ReadonlyArray<TextLocation | null | undefined>): string {
  const width = Math.max(0, ...run.steps.map((s) => escapeTerminal(s.actor).length));
  let out = `world: ${escapeTerminal(run.world)}\n`;
  run.steps.forEach((s, i) => {
    const l = lines?.[i];
    const where = l && Number.isInteger(l.line) && l.line > 0 ? `  [${l.file !== undefined ? escapeTerminal(l.file) + ':' : 'line '}${l.line}]` : '';
    out += `${escapeTerminal(s.actor).padEnd(width)}  ${escapeTerminal(s.action)}${where}\n`;
  });
  out += `=> ${escapeTerminal(run.outcome.kind)}: ${escapeTerminal(run.outcome.summary)}\n`;
  if (run.outcome.target) out += `   hits: ${escapeTerminal(run.outcome.target)}\n`;
  if (run.failsIn) out += `   fails in ${escapeTerminal(run.failsIn.world)}: ${escapeTerminal(run.failsIn.outcome.kind)}\n`;
  for (const n of run.worldNotes ?? []) out += `   ${escapeTerminal(n)}\n`;
  if (run.topology?.breakAt) {
    const t = run.topology;
    const at = t.nodes.find((n) => n.id === t.breakAt!.node)?.label ?? t.breakAt!.node;
    out += `   path breaks at ${escapeTerminal(at)}: ${escapeTerminal(t.breakAt!.reason)}\n`;
  }
  return out;
}

/** A run without source locations (a reference scenario has no file to point into). */
export function withoutLocations(run: Run): Run {
  return { ...run, steps: run.steps.map(({ location: _location, ...rest }) => rest) };
}
