/**
 * A review reply in the style of the kernel's mailing lists: plain text,
 * `Re:` subject, threading headers, an attribution line, and only the
 * parts of the patch that matter quoted with `> ` (the file's diff header,
 * the hunk header, a few lines before each finding and the finding's own
 * lines), `[...]` where lines were left out, and each finding written below
 * the line it concerns, wrapped at 72 columns. Pure; never throws.
 */
import type { Span } from '../core/types';
import { type DiffLine, type FileDiff, type Hunk, parseDiff } from './diff';
import { type BodyPart, headerValue, type MailMessage, messageAt, splitMessages } from './mail';
import type { PatchFinding, ReviewedPatch } from './review';

export interface ReplyOptions {
  /** Hunk lines quoted before a finding's first line (default 3). */
  contextBefore?: number;
  /** Hunk lines quoted after a finding's last line (default 0). */
  contextAfter?: number;
  /** Column at which comments are wrapped (default 72). */
  width?: number;
  /** The reviewer, for a `From:` header (left out when not given). */
  from?: string;
  /** Path components to strip, as given to the review. */
  strip?: number;
}

interface Located {
  finding: PatchFinding;
  file: number;
  hunk: number;
  /** First and last hunk line of the finding; -1 when it is not on a hunk line (anchored on the header). */
  first: number;
  last: number;
}

interface QuotedFile {
  part: BodyPart;
  file: FileDiff;
}

/**
 * Drafts the reply to `patch` (one of reviewPatchText(fileText).patches)
 * about `findings` (usually some of patch.findings). `fileText` is the text
 * the review read; the quoted lines are its decoded lines.
 */
export function draftReply(patch: ReviewedPatch, findings: readonly PatchFinding[], fileText: string, options: ReplyOptions = {}): string {
  try {
    return draft(patch, findings, fileText, options);
  } catch (e) {
    return `${headersOf(patch, undefined, options).join('\n')}\n\n(DMA Lens could not draft this reply: ${e instanceof Error ? e.message : String(e)})\n`;
  }
}

function findMessage(patch: ReviewedPatch, fileText: string): MailMessage | undefined {
  const m = messageAt(fileText, patch.index);
  if (m && m.span.start === patch.span.start) return m;
  return splitMessages(fileText).find((x) => x.span.start === patch.span.start);
}

function draft(patch: ReviewedPatch, findings: readonly PatchFinding[], fileText: string, o: ReplyOptions): string {
  const before = o.contextBefore ?? 3;
  const after = o.contextAfter ?? 0;
  const width = o.width ?? 72;
  const msg = findMessage(patch, fileText);
  const out: string[] = [...headersOf(patch, msg, o), ''];
  const who = patch.from ?? 'the author';
  out.push(patch.date ? `On ${patch.date}, ${who} wrote:` : `${who} wrote:`);

  const files: QuotedFile[] = [];
  for (const part of msg?.parts ?? []) {
    const parsed = parseDiff(part.text, o.strip !== undefined ? { strip: o.strip } : {});
    for (const file of parsed.files) files.push({ part, file });
  }

  // Locate every finding on a hunk line (through the file spans of the decoded lines).
  const located: Located[] = [];
  const loose: PatchFinding[] = [];
  const sorted = [...findings].sort((a, b) => a.span.start - b.span.start || a.rule.localeCompare(b.rule));
  for (const f of sorted) {
    const at = locate(files, f);
    if (at) located.push(at);
    else loose.push(f);
  }

  let lastFile = -1;
  let lastHunkOfFile = -1;
  for (let fi = 0; fi < files.length; fi++) {
    const mine = located.filter((l) => l.file === fi);
    if (!mine.length) continue;
    const { part, file } = files[fi];
    const text = part.text;
    if (lastFile !== -1) ellipsis(out);
    for (const line of spanLines(text, file.span)) out.push(quote(line));
    lastFile = fi;
    lastHunkOfFile = -1;
    for (let hi = 0; hi < file.hunks.length; hi++) {
      const inHunk = mine.filter((l) => l.hunk === hi);
      if (!inHunk.length) continue;
      const hunk = file.hunks[hi];
      if (lastHunkOfFile !== -1 || hi > 0) ellipsis(out);
      out.push(quote(text.slice(hunk.span.start, hunk.span.end)));
      lastHunkOfFile = hi;
      writeHunk(out, text, hunk, inHunk, before, after, width);
    }
  }
  if (loose.length) {
    if (lastFile !== -1) ellipsis(out);
    out.push('');
    for (const f of loose) {
      out.push(...comment(f, width), '');
    }
  }
  while (out.length && out[out.length - 1] === '') out.pop();
  return out.join('\n') + '\n';
}

function headersOf(patch: ReviewedPatch, msg: MailMessage | undefined, o: ReplyOptions): string[] {
  const h: string[] = [];
  if (o.from) h.push(`From: ${o.from}`);
  if (patch.from) h.push(`To: ${patch.from}`);
  const cc = msg ? [headerValue(msg, 'to'), headerValue(msg, 'cc')].filter((v): v is string => !!v).join(', ') : '';
  if (cc) h.push(foldAddresses('Cc', cc));
  const subject = patch.rawSubject || patch.subject || (patch.files[0] ? patch.files[0].path : 'your patch');
  h.push(`Subject: ${/^re:/i.test(subject) ? subject : 'Re: ' + subject}`);
  if (patch.messageId) {
    h.push(`In-Reply-To: <${patch.messageId}>`);
    const refs = patch.references.length ? patch.references : patch.inReplyTo ? [patch.inReplyTo] : [];
    h.push(fold('References', [...refs, patch.messageId].map((r) => `<${r}>`)));
  }
  return h;
}

/** `Name: a, b, c` folded after commas to keep lines within 78 columns (RFC 5322 2.1.1). */
function foldAddresses(name: string, value: string): string {
  const items = value.split(/,\s*(?=(?:[^"]*"[^"]*")*[^"]*$)/).map((x) => x.trim()).filter(Boolean);
  return fold(name, items.map((x, i) => (i < items.length - 1 ? x + ',' : x)));
}

function fold(name: string, items: readonly string[]): string {
  const lines: string[] = [];
  let cur = `${name}:`;
  for (const piece of items) {
    if (cur.length + 1 + piece.length > 78 && cur !== `${name}:`) {
      lines.push(cur);
      cur = ' ' + piece;
    } else cur += ' ' + piece;
  }
  lines.push(cur);
  return lines.join('\n');
}

/** The hunk and hunk lines a finding's span covers. */
function locate(files: readonly QuotedFile[], f: PatchFinding): Located | undefined {
  for (let fi = 0; fi < files.length; fi++) {
    const { part, file } = files[fi];
    for (let hi = 0; hi < file.hunks.length; hi++) {
      const hunk = file.hunks[hi];
      const lineAt = (offset: number): number =>
        hunk.lines.findIndex((l) => {
          const s = part.map.map(l.start);
          const e = part.map.mapEnd(l.end);
          return offset >= s && offset <= e;
        });
      const first = lineAt(f.span.start);
      if (first >= 0) {
        const endAt = lineAt(Math.max(f.span.start, f.span.end - 1));
        return { finding: f, file: fi, hunk: hi, first, last: Math.max(first, endAt) };
      }
      const hs = part.map.mapSpan(hunk.span);
      if (f.span.start >= hs.start && f.span.start <= hs.end) return { finding: f, file: fi, hunk: hi, first: -1, last: -1 };
    }
  }
  return undefined;
}

function writeHunk(out: string[], text: string, hunk: Hunk, found: readonly Located[], before: number, after: number, width: number): void {
  const onLines = found.filter((l) => l.first >= 0);
  const onHeader = found.filter((l) => l.first < 0);
  // Windows of lines to quote, merged when they touch.
  const windows: Array<{ from: number; to: number }> = [];
  for (const l of [...onLines].sort((a, b) => a.first - b.first)) {
    const from = Math.max(0, l.first - before);
    const to = Math.min(hunk.lines.length - 1, l.last + after);
    const prev = windows[windows.length - 1];
    if (prev && from <= prev.to + 1) prev.to = Math.max(prev.to, to);
    else windows.push({ from, to });
  }
  // Findings not on a hunk line (outside the hunks) right under the hunk header.
  for (const l of onHeader) out.push('', ...comment(l.finding, width), '');
  const commentsAfter = new Map<number, Located[]>();
  for (const l of onLines) commentsAfter.set(l.last, [...(commentsAfter.get(l.last) ?? []), l]);
  let next = 0;
  for (const w of windows) {
    if (w.from > next) ellipsis(out);
    for (let i = w.from; i <= w.to; i++) {
      out.push(quote(lineText(text, hunk.lines[i])));
      const cs = commentsAfter.get(i);
      if (cs) {
        for (const c of cs) out.push('', ...comment(c.finding, width));
        out.push('');
      }
    }
    next = w.to + 1;
  }
  if (next < hunk.lines.length) ellipsis(out);
}

/** `[...]` for lines left out, unless the last thing written already says so. */
function ellipsis(out: string[]): void {
  for (let i = out.length - 1; i >= 0; i--) {
    if (out[i] === '') continue;
    if (out[i] === '[...]') return;
    break;
  }
  out.push('[...]');
}

function lineText(text: string, l: DiffLine): string {
  return text.slice(l.start, l.end);
}

function spanLines(text: string, span: Span): string[] {
  return text.slice(span.start, span.end).split('\n');
}

function quote(line: string): string {
  return ('> ' + line).replace(/\s+$/, '');
}

function comment(f: PatchFinding, width: number): string[] {
  let text = `${f.rule} (${f.severity}): ${f.message}`;
  if (f.on === 'outside') text = `In ${f.target.file} at line ${f.target.line}, which this patch does not show: ${text}`;
  if (f.existing) text += ' (This was already so before the patch.)';
  if (f.partial) text += ' (Judged from the hunk alone: the function is not entirely in the patch.)';
  return wrap(text, width);
}

/** Greedy word wrap; a word longer than the width gets a line of its own. */
export function wrap(text: string, width: number): string[] {
  const lines: string[] = [];
  let cur = '';
  for (const word of text.split(/\s+/).filter(Boolean)) {
    if (!cur) cur = word;
    else if (cur.length + 1 + word.length <= width) cur += ' ' + word;
    else {
      lines.push(cur);
      cur = word;
    }
  }
  if (cur) lines.push(cur);
  return lines;
}
