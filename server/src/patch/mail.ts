/**
 * Mail: split an mbox (git format-patch output, b4's .mbx, a mailing-list
 * archive), a single .eml, `git log -p` output or a plain diff into
 * messages, parse their headers (RFC 5322 folding, RFC 2047 encoded-words)
 * and their MIME structure (nested multiparts, quoted-printable, base64,
 * charsets), and hand out each text part decoded, with a map from every
 * decoded character back to the file. Pure: text in, data out; never throws.
 *
 * Everything is located by offsets into the file text (UTF-16 code units),
 * and lines are found through core/positions.ts.
 */
import { LineIndex } from '../core/positions';
import type { Severity, Span } from '../core/types';
import {
  type Decoded,
  decodeBase64,
  decodeEncodedWords,
  decodeIdentity,
  decodeQuotedPrintable,
  normalizeCharset,
  type RawLine,
} from './encoding';
import { identityMap, type OffsetMap } from './offsets';

export type MessageKind = 'mbox' | 'eml' | 'git-log' | 'plain';

export interface MailHeader {
  /** As spelled in the mail. */
  name: string;
  /** Unfolded, encoded-words decoded, trimmed. */
  value: string;
  /** The whole header, folded lines included. */
  span: Span;
  /** The value's raw text (after `Name: `), folded lines included. */
  valueSpan: Span;
}

/** A decoded text part of a message: what the diff parser reads. */
export interface BodyPart {
  /** Lower case `type/subtype`. */
  contentType: string;
  charset: string;
  /** Content-Transfer-Encoding, lower case ('7bit' when absent). */
  encoding: string;
  filename?: string;
  /** Decoded text, line breaks normalized to \n. */
  text: string;
  /** Decoded offset -> file offset. */
  map: OffsetMap;
  /** The part's raw body in the file. */
  span: Span;
}

export interface SeriesPosition {
  /** n of `[PATCH n/m]` (0 for a cover letter). */
  number: number;
  /** m of `[PATCH n/m]`. */
  total: number;
  /** v of `[PATCH vN ...]`, when given. */
  version?: number;
}

export interface MailDiagnostic {
  span: Span;
  message: string;
  severity: Severity;
}

export interface MailMessage {
  /** Position in the file, from 0. */
  index: number;
  kind: MessageKind;
  /** The whole message in the file (its mbox `From ` line included). */
  span: Span;
  headers: MailHeader[];
  /** The decoded Subject as sent (`[PATCH v2 3/7] drm/acme: ...`). */
  rawSubject: string;
  /** The subject without its bracketed prefixes and reply markers. */
  subject: string;
  /** The bracket contents (`PATCH v2 3/7`), several joined by `] [`. */
  subjectPrefix?: string;
  /** Where the Subject's value is in the file (for a CodeLens). */
  subjectSpan?: Span;
  /** The subject starts with Re:/Fwd:. */
  reply: boolean;
  series?: SeriesPosition;
  from?: string;
  date?: string;
  /** Without angle brackets. */
  messageId?: string;
  inReplyTo?: string;
  references: string[];
  /** Text parts in order (HTML alternatives and non-text attachments left out). */
  parts: BodyPart[];
  diagnostics: MailDiagnostic[];
}

/** `From <sha> Mon Sep 17 00:00:00 2001`, `From git@z Thu Jan  1 00:00:00 1970`, `From MAILER-DAEMON ...`. */
const FROM_LINE = /^From \S+\s+(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun)\s+(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)\s+\d{1,2}\s+\d{1,2}:\d{2}/;
const HEADER_LINE = /^([\x21-\x39\x3b-\x7e]+):[ \t]?/;
const MAIL_HEADERS = /^(from|subject|date|message-id|mime-version|received|return-path|delivered-to|to|cc|content-type|in-reply-to|references|x-mailer|list-id|x-mailing-list)$/i;
const COMMIT_LINE = /^commit [0-9a-f]{7,64}\b/;

class Lines {
  readonly idx: LineIndex;
  constructor(readonly text: string) {
    this.idx = new LineIndex(text);
  }
  get count(): number {
    return this.idx.lineCount;
  }
  start(l: number): number {
    return this.idx.lineStart(l);
  }
  end(l: number): number {
    return this.idx.lineEnd(l);
  }
  /** Offset where line l's break ends (the next line's start, or the end of the text). */
  after(l: number): number {
    return l + 1 < this.count ? this.idx.lineStart(l + 1) : this.text.length;
  }
  line(l: number): string {
    return this.text.slice(this.idx.lineStart(l), this.idx.lineEnd(l));
  }
}

/** Splits `text` into messages. A text that is not mail is one message of kind 'plain'. */
export function splitMessages(text: string): MailMessage[] {
  const L = new Lines(text);
  const ranges = messageRanges(L);
  return ranges.map((r, index) => {
    try {
      return parseMessage(L, r.from, r.to, r.kind, index);
    } catch (e) {
      // Never thrown out of the API: a message we cannot parse is an empty one with a diagnostic.
      const span = { start: L.start(r.from), end: L.after(r.to - 1) };
      return emptyMessage(index, r.kind, span, `this message could not be read: ${e instanceof Error ? e.message : String(e)}`);
    }
  });
}

/**
 * The line map of a decoded part: for each decoded line (0-based), the file
 * line (0-based) where it starts. A quoted-printable line that continues
 * after soft line breaks starts on the first of them; a base64 line on the
 * encoded line that holds its first byte. Columns: `part.map`.
 */
export function fileLines(part: BodyPart, file: LineIndex): number[] {
  const decoded = new LineIndex(part.text);
  const out = new Array<number>(decoded.lineCount);
  for (let l = 0; l < decoded.lineCount; l++) out[l] = file.lineOf(part.map.map(decoded.lineStart(l)));
  return out;
}

/** Re-reads the message at `index` (as splitMessages numbers them). */
export function messageAt(text: string, index: number): MailMessage | undefined {
  const L = new Lines(text);
  const r = messageRanges(L)[index];
  return r ? parseMessage(L, r.from, r.to, r.kind, index) : undefined;
}

function emptyMessage(index: number, kind: MessageKind, span: Span, message: string): MailMessage {
  return {
    index,
    kind,
    span,
    headers: [],
    rawSubject: '',
    subject: '',
    reply: false,
    references: [],
    parts: [],
    diagnostics: [{ span, message, severity: 'error' }],
  };
}

interface Range {
  from: number;
  to: number;
  kind: MessageKind;
}

function messageRanges(L: Lines): Range[] {
  const n = L.count;
  const blank = (l: number) => /^\s*$/.test(L.line(l));
  // mbox: From_ lines at the start or after a blank line.
  const seps: number[] = [];
  for (let l = 0; l < n; l++) {
    const s = L.text.charCodeAt(L.start(l));
    if (s !== 70 /* F */) continue;
    if ((l === 0 || blank(l - 1) || seps.length === 0) && FROM_LINE.test(L.line(l))) seps.push(l);
  }
  if (seps.length) {
    const out: Range[] = [];
    let first = 0;
    while (first < seps[0] && blank(first)) first++;
    if (first < seps[0]) out.push({ from: first, to: seps[0], kind: 'plain' });
    seps.forEach((s, i) => out.push({ from: s, to: i + 1 < seps.length ? seps[i + 1] : n, kind: 'mbox' }));
    return out;
  }
  // git log -p / git show.
  const commits: number[] = [];
  for (let l = 0; l < n; l++) {
    if (L.text.charCodeAt(L.start(l)) !== 99 /* c */) continue;
    if (COMMIT_LINE.test(L.line(l)) && l + 1 < n && /^(Author|Merge|Commit|AuthorDate):/.test(L.line(l + 1))) commits.push(l);
  }
  if (commits.length) {
    const out: Range[] = [];
    if (commits[0] > 0) out.push({ from: 0, to: commits[0], kind: 'plain' });
    commits.forEach((c, i) => out.push({ from: c, to: i + 1 < commits.length ? commits[i + 1] : n, kind: 'git-log' }));
    return out;
  }
  // A single message (.eml), or not mail at all.
  let first = 0;
  while (first < n && blank(first)) first++;
  if (first < n && looksLikeHeaderBlock(L, first)) return [{ from: first, to: n, kind: 'eml' }];
  return [{ from: 0, to: n, kind: 'plain' }];
}

function looksLikeHeaderBlock(L: Lines, from: number): boolean {
  let known = 0;
  for (let l = from; l < L.count && l < from + 200; l++) {
    const t = L.line(l);
    if (t === '') return known > 0;
    if (/^[ \t]/.test(t)) {
      if (l === from) return false;
      continue;
    }
    const m = HEADER_LINE.exec(t);
    if (!m) return false;
    if (MAIL_HEADERS.test(m[1])) known++;
  }
  return known > 0;
}

/** Header block starting at line `from`: headers, and the first line after the blank separator. */
function parseHeaders(L: Lines, from: number, to: number, diagnostics: MailDiagnostic[]): { headers: MailHeader[]; body: number } {
  const headers: MailHeader[] = [];
  let cur: { name: string; first: number; last: number; valueStart: number } | undefined;
  const close = () => {
    if (!cur) return;
    const raw: string[] = [];
    for (let l = cur.first; l <= cur.last; l++) raw.push(l === cur.first ? L.text.slice(cur.valueStart, L.end(l)) : L.line(l));
    // RFC 5322 unfolding: remove the line breaks, keep the whitespace that follows them.
    const value = decodeEncodedWords(raw.join('')).replace(/\s+/g, ' ').trim();
    headers.push({
      name: cur.name,
      value,
      span: { start: L.start(cur.first), end: L.end(cur.last) },
      valueSpan: { start: cur.valueStart, end: L.end(cur.last) },
    });
    cur = undefined;
  };
  let l = from;
  for (; l < to; l++) {
    const t = L.line(l);
    if (t === '') {
      close();
      return { headers, body: l + 1 };
    }
    if ((t[0] === ' ' || t[0] === '\t') && cur) {
      cur.last = l;
      continue;
    }
    const m = HEADER_LINE.exec(t);
    if (!m) {
      close();
      if (l > from || headers.length) {
        diagnostics.push({
          span: { start: L.start(l), end: L.end(l) },
          message: 'not a mail header line, and no blank line ended the headers before it: the body is taken to start here',
          severity: 'warning',
        });
      }
      return { headers, body: l };
    }
    close();
    cur = { name: m[1], first: l, last: l, valueStart: L.start(l) + m[0].length };
  }
  close();
  if (headers.length) {
    const end = L.text.length;
    diagnostics.push({
      span: { start: Math.max(0, L.end(to - 1)), end },
      message: 'the message ends inside its headers (truncated mail?)',
      severity: 'error',
    });
  }
  return { headers, body: to };
}

function header(headers: readonly MailHeader[], name: string): MailHeader | undefined {
  const n = name.toLowerCase();
  return headers.find((h) => h.name.toLowerCase() === n);
}

/** The value of the first header called `name` (case-insensitive). */
export function headerValue(m: Pick<MailMessage, 'headers'>, name: string): string | undefined {
  return header(m.headers, name)?.value;
}

function parseMessage(L: Lines, from: number, to: number, kind: MessageKind, index: number): MailMessage {
  const diagnostics: MailDiagnostic[] = [];
  const span = { start: L.start(from), end: to > from ? L.end(to - 1) : L.start(from) };
  // Drop the blank line(s) that separate mbox messages.
  let last = to;
  if (kind === 'mbox') while (last > from + 1 && L.line(last - 1) === '') last--;
  const msg: MailMessage = {
    index,
    kind,
    span,
    headers: [],
    rawSubject: '',
    subject: '',
    reply: false,
    references: [],
    parts: [],
    diagnostics,
  };
  if (kind === 'plain' || kind === 'git-log') {
    if (kind === 'git-log') readGitLog(L, from, to, msg);
    msg.parts.push(leaf(L, from, to, 'text/plain', 'utf-8', '7bit', undefined, false, diagnostics));
    return msg;
  }
  const { headers, body } = parseHeaders(L, kind === 'mbox' ? from + 1 : from, last, diagnostics);
  msg.headers = headers;
  const subj = header(headers, 'subject');
  if (subj) {
    msg.rawSubject = subj.value;
    msg.subjectSpan = subj.valueSpan;
    Object.assign(msg, parseSubject(subj.value));
  }
  msg.from = header(headers, 'from')?.value;
  msg.date = header(headers, 'date')?.value;
  msg.messageId = unbracket(header(headers, 'message-id')?.value);
  msg.inReplyTo = unbracket(header(headers, 'in-reply-to')?.value?.match(/<[^>]*>/)?.[0] ?? header(headers, 'in-reply-to')?.value);
  msg.references = (header(headers, 'references')?.value.match(/<[^>]*>/g) ?? []).map((r) => r.slice(1, -1));
  if (!headers.length) {
    diagnostics.push({ span: { start: span.start, end: L.end(from) }, message: 'a message without mail headers', severity: 'warning' });
  }
  entity(L, headers, body, last, kind === 'mbox', msg, 0);
  if (!msg.parts.length && body < last) {
    diagnostics.push({
      span: { start: L.start(body), end: L.end(last - 1) },
      message: 'the message has no plain-text part (HTML only, or only attachments that are not patches): nothing to analyse',
      severity: 'warning',
    });
  }
  return msg;
}

function unbracket(v: string | undefined): string | undefined {
  if (!v) return undefined;
  const t = v.trim();
  const m = /<([^>]*)>/.exec(t);
  return m ? m[1] : t || undefined;
}

/** `git log -p` entries: `commit`, `Author:`, `Date:`, a blank line, the message indented by four spaces. */
function readGitLog(L: Lines, from: number, to: number, msg: MailMessage): void {
  let l = from + 1;
  for (; l < to && L.line(l) !== ''; l++) {
    const m = /^(Author|Date|AuthorDate):\s*(.*)$/.exec(L.line(l));
    if (m?.[1] === 'Author') msg.from = m[2].trim();
    else if (m) msg.date ??= m[2].trim();
  }
  for (l++; l < to; l++) {
    const t = L.line(l);
    if (/^ {4}\S/.test(t)) {
      msg.rawSubject = t.trim();
      msg.subject = t.trim();
      msg.subjectSpan = { start: L.start(l) + 4, end: L.end(l) };
      break;
    }
    if (t !== '') break;
  }
}

/** Cleans `[PATCH v2 3/7] subject`: the prefix, the series position and the rest. */
export function parseSubject(raw: string): { subject: string; subjectPrefix?: string; series?: SeriesPosition; reply: boolean } {
  let s = raw.trim();
  let reply = false;
  const brackets: string[] = [];
  for (;;) {
    const re = /^(?:re|fwd?|aw|sv)\s*:\s*/i.exec(s);
    if (re) {
      reply = true;
      s = s.slice(re[0].length);
      continue;
    }
    const b = /^\[([^\]]*)\]\s*/.exec(s);
    if (b) {
      brackets.push(b[1].trim());
      s = s.slice(b[0].length);
      continue;
    }
    break;
  }
  const prefix = brackets.length ? brackets.join('] [') : undefined;
  let series: SeriesPosition | undefined;
  for (const b of brackets) {
    const nm = /(?:^|[\s,])0*(\d+)\s*\/\s*0*(\d+)(?=$|[\s,\]])/.exec(b);
    if (nm) {
      const v = /(?:^|\s)v(\d+)(?=$|\s)/i.exec(b);
      series = { number: +nm[1], total: +nm[2], ...(v ? { version: +v[1] } : {}) };
      break;
    }
  }
  if (!series) {
    const v = brackets.map((b) => /(?:^|\s)v(\d+)(?=$|\s)/i.exec(b)).find(Boolean);
    if (v && brackets.some((b) => /\bPATCH\b/i.test(b))) series = { number: 1, total: 1, version: +v[1] };
  }
  return { subject: s.trim(), ...(prefix !== undefined ? { subjectPrefix: prefix } : {}), ...(series ? { series } : {}), reply };
}

interface ContentType {
  type: string;
  params: Record<string, string>;
}

function parseContentType(value: string | undefined): ContentType {
  const v = value ?? 'text/plain';
  const semi = v.indexOf(';');
  const type = (semi < 0 ? v : v.slice(0, semi)).trim().toLowerCase() || 'text/plain';
  const params: Record<string, string> = {};
  const re = /;\s*([^=\s;]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;\s]*)/g;
  for (const m of v.matchAll(re)) {
    let val = m[2];
    if (val.startsWith('"')) val = val.slice(1, -1).replace(/\\(.)/g, '$1');
    const key = m[1].toLowerCase();
    if (key.endsWith('*')) {
      // RFC 2231: charset'lang'percent-encoded.
      const parts = /^([^']*)'[^']*'(.*)$/.exec(val);
      if (parts) {
        try {
          val = decodeURIComponent(parts[2]);
        } catch {
          val = parts[2];
        }
      }
      params[key.slice(0, -1)] ??= val;
    } else params[key] = val;
  }
  return { type, params };
}

function isPatchLeaf(type: string, filename: string | undefined): boolean {
  if (type === 'text/html' || type === 'text/enriched') return false;
  if (type.startsWith('text/')) return true;
  if (/^application\/(x-)?(patch|diff|mbox)$/.test(type)) return true;
  return !!filename && /\.(patch|diff|txt|c|h|mbx|mbox)$/i.test(filename);
}

/** A MIME entity whose headers are known and whose body is lines [body, to). */
function entity(L: Lines, headers: readonly MailHeader[], body: number, to: number, mbox: boolean, msg: MailMessage, depth: number): void {
  const ctHeader = header(headers, 'content-type');
  const ct = parseContentType(ctHeader?.value);
  const encoding = (header(headers, 'content-transfer-encoding')?.value ?? '7bit').trim().toLowerCase();
  const disposition = parseContentType(header(headers, 'content-disposition')?.value);
  const filename = disposition.params.filename ?? ct.params.name;
  if (ct.type.startsWith('multipart/') && depth < 16) {
    const boundary = ct.params.boundary;
    if (!boundary) {
      msg.diagnostics.push({
        span: ctHeader?.span ?? { start: L.start(body), end: L.start(body) },
        message: `${ct.type} without a boundary parameter: the body is read as plain text`,
        severity: 'warning',
      });
    } else {
      multipart(L, boundary, body, to, mbox, msg, depth);
      return;
    }
  }
  if (ct.type === 'message/rfc822' && depth < 16) {
    const inner = parseHeaders(L, body, to, msg.diagnostics);
    entity(L, inner.headers, inner.body, to, mbox, msg, depth + 1);
    return;
  }
  if (!ct.type.startsWith('multipart/') && !isPatchLeaf(ct.type, filename)) return;
  msg.parts.push(leaf(L, body, to, ct.type.startsWith('multipart/') ? 'text/plain' : ct.type, ct.params.charset ?? 'us-ascii', encoding, filename, mbox, msg.diagnostics));
}

function multipart(L: Lines, boundary: string, body: number, to: number, mbox: boolean, msg: MailMessage, depth: number): void {
  const delim = '--' + boundary;
  const starts: number[] = [];
  let closed = -1;
  for (let l = body; l < to; l++) {
    if (L.text.charCodeAt(L.start(l)) !== 45 /* - */) continue;
    const t = L.line(l).replace(/[ \t]+$/, '');
    if (t === delim + '--') {
      closed = l;
      break;
    }
    if (t === delim) starts.push(l);
  }
  const end = closed >= 0 ? closed : to;
  if (closed < 0) {
    const at = to > 0 ? L.end(to - 1) : 0;
    msg.diagnostics.push({
      span: { start: at, end: at },
      message: `the multipart body ends without its closing boundary "${delim}--" (truncated mail?); the parts read so far are analysed`,
      severity: 'error',
    });
  }
  if (!starts.length) {
    msg.diagnostics.push({
      span: { start: L.start(body), end: L.start(body) },
      message: `no part starts with the boundary "${delim}"`,
      severity: 'error',
    });
    return;
  }
  const alternatives: Array<{ headers: MailHeader[]; body: number; to: number }> = [];
  starts.forEach((s, i) => {
    const partEnd = i + 1 < starts.length ? starts[i + 1] : end;
    const h = s + 1 < partEnd && L.line(s + 1) === '' ? { headers: [], body: s + 2 } : parseHeaders(L, s + 1, partEnd, msg.diagnostics);
    alternatives.push({ headers: h.headers, body: h.body, to: partEnd });
  });
  for (const p of alternatives) entity(L, p.headers, p.body, p.to, mbox, msg, depth + 1);
}

function rawLines(L: Lines, from: number, to: number, mbox: boolean): RawLine[] {
  const out: RawLine[] = [];
  for (let l = from; l < to; l++) {
    const start = L.start(l);
    const end = L.end(l);
    let text = L.text.slice(start, end);
    let s = start;
    // mboxrd: one '>' of ^>+From is an escape added by the mbox writer.
    if (mbox && text.charCodeAt(0) === 62 && /^>+From /.test(text)) {
      text = text.slice(1);
      s++;
    }
    out.push({ text, start: s, end });
  }
  return out;
}

function leaf(
  L: Lines,
  from: number,
  to: number,
  contentType: string,
  charsetName: string,
  encoding: string,
  filename: string | undefined,
  mbox: boolean,
  diagnostics: MailDiagnostic[],
): BodyPart {
  const charset = normalizeCharset(charsetName);
  const start = from < L.count ? L.start(from) : L.text.length;
  const end = to > from ? L.end(to - 1) : start;
  let d: Decoded;
  if (encoding === 'quoted-printable') d = decodeQuotedPrintable(rawLines(L, from, to, mbox), charset);
  else if (encoding === 'base64') d = decodeBase64(rawLines(L, from, to, mbox), charset);
  else {
    if (!/^(7bit|8bit|binary)$/.test(encoding))
      diagnostics.push({
        span: { start: L.start(from), end: L.start(from) },
        message: `unknown Content-Transfer-Encoding "${encoding}": the part is read as it is`,
        severity: 'warning',
      });
    const raw = L.text.slice(start, end);
    // Fast path: the part is the file's own text (no CR, no mboxrd escape, no charset repair).
    const plain =
      !raw.includes('\r') &&
      !(mbox && /^>+From /m.test(raw)) &&
      !(charset === 'utf-8' && /[\x80-\xff]/.test(raw) && !/[\u0100-\uffff]/.test(raw));
    d = plain ? { text: raw, map: identityMap(raw.length, start), problems: [] } : decodeIdentity(rawLines(L, from, to, mbox), charset);
  }
  for (const p of d.problems) diagnostics.push({ span: { start: p.at, end: p.at + 1 }, message: p.message, severity: 'warning' });
  return {
    contentType,
    charset: charsetName.toLowerCase(),
    encoding,
    ...(filename ? { filename } : {}),
    text: d.text,
    map: d.map,
    span: { start, end },
  };
}
