/**
 * Content transfer encodings (quoted-printable, base64), charsets and
 * RFC 2047 encoded-words, with a record of where every decoded character
 * came from in the mail file. Pure: strings and numbers in, strings and
 * offset maps out.
 *
 * How decoded characters map back (what the faces show):
 * - 7bit/8bit: one to one; the line break the decoder writes maps to the
 *   line break in the file.
 * - quoted-printable: literal characters one to one; `=3D` and every other
 *   escape maps to its `=` (a character spelled `=C3=A9` in UTF-8 maps to
 *   the first `=`, and spans six source characters); soft line breaks are
 *   followed, so a decoded line may continue on the next line of the file.
 * - base64: each decoded character maps to the base64 character where its
 *   first byte starts (byte k of a 3-byte group starts in character k of the
 *   4-character group), so a finding lands on the encoded line, and near the
 *   column, that holds its bytes.
 */
import { OffsetMap } from './offsets';

/** One physical line of the raw mail, as the decoders see it. */
export interface RawLine {
  /** The line's text, without its line break (and, in an mbox, without the mboxrd escape `>`). */
  text: string;
  /** File offset of text[0]. */
  start: number;
  /** File offset of the line break (or of the end of the file). */
  end: number;
}

export interface Decoded {
  /** Decoded text, line breaks normalized to \n. */
  text: string;
  /** Decoded offset -> file offset. */
  map: OffsetMap;
  /** Something did not decode cleanly (bad base64, an unknown charset). */
  problems: Array<{ at: number; message: string }>;
}

/** Bytes with, for each byte, the file offset of its source and the source width. */
interface Bytes {
  b: number[];
  src: number[];
  w: number[];
}

// ---------------------------------------------------------------------------
// Charsets

export type Charset = 'utf-8' | 'latin-1' | 'us-ascii' | { label: string; table?: string[] };

export function normalizeCharset(name: string | undefined): Charset {
  const n = (name ?? '').trim().replace(/^"|"$/g, '').toLowerCase();
  if (!n || n === 'utf-8' || n === 'utf8') return 'utf-8';
  if (/^(us-?ascii|ascii|ansi_x3\.4-1968|iso646-us|cp367|us)$/.test(n)) return 'us-ascii';
  if (/^(iso[-_]?8859-1|iso_8859-1(:1987)?|latin-?1|l1|ibm819|cp819|iso-ir-100)$/.test(n)) return 'latin-1';
  return { label: n, table: singleByteTable(n) };
}

const tables = new Map<string, string[] | undefined>();

/** A byte -> character table when `label` names a single-byte charset TextDecoder knows. */
function singleByteTable(label: string): string[] | undefined {
  if (tables.has(label)) return tables.get(label);
  let table: string[] | undefined;
  try {
    const dec = new TextDecoder(label);
    const chars: string[] = [];
    let ok = true;
    for (let i = 0; i < 256 && ok; i++) {
      const s = dec.decode(new Uint8Array([i]));
      if (s.length !== 1) ok = false;
      chars.push(s);
    }
    // Multi-byte charsets decode lead bytes alone as U+FFFD; treat them as not single-byte.
    if (ok && chars.slice(0x80).filter((c) => c === '\ufffd').length > 16) ok = false;
    table = ok ? chars : undefined;
  } catch {
    table = undefined;
  }
  tables.set(label, table);
  return table;
}

function knownLabel(label: string): boolean {
  try {
    new TextDecoder(label);
    return true;
  } catch {
    return false;
  }
}

/** Strict UTF-8 validity of a byte sequence (no replacement needed). */
function validUtf8(b: readonly number[], from = 0, to = b.length): boolean {
  for (let i = from; i < to; ) {
    const c = b[i];
    const n = c < 0x80 ? 1 : c >= 0xc2 && c < 0xe0 ? 2 : c >= 0xe0 && c < 0xf0 ? 3 : c >= 0xf0 && c < 0xf5 ? 4 : 0;
    if (!n || i + n > to) return false;
    for (let k = 1; k < n; k++) if ((b[i + k] & 0xc0) !== 0x80) return false;
    i += n;
  }
  return true;
}

/**
 * Decodes bytes in `charset`; every character keeps the source offset of its
 * first byte and the width of its bytes in the source.
 */
function decodeCharset(bytes: Bytes, charset: Charset, problems: Decoded['problems']): { chars: string[]; src: number[]; w: number[] } {
  const { b, src, w } = bytes;
  const chars: string[] = [];
  const csrc: number[] = [];
  const cw: number[] = [];
  const push = (ch: string, i: number, j: number) => {
    chars.push(ch);
    csrc.push(src[i]);
    const width = src[j] + w[j] - src[i];
    cw.push(width > 0 ? width : w[i]);
  };
  let cs = charset;
  if (cs === 'us-ascii') cs = validUtf8(b) ? 'utf-8' : 'latin-1';
  if (cs === 'latin-1') {
    for (let i = 0; i < b.length; i++) push(String.fromCharCode(b[i]), i, i);
    return { chars, src: csrc, w: cw };
  }
  if (cs === 'utf-8') {
    for (let i = 0; i < b.length; ) {
      const c = b[i];
      const n = c < 0x80 ? 1 : c >= 0xc2 && c < 0xe0 ? 2 : c >= 0xe0 && c < 0xf0 ? 3 : c >= 0xf0 && c < 0xf5 ? 4 : 0;
      let ok = n > 0 && i + n <= b.length;
      for (let k = 1; ok && k < n; k++) if ((b[i + k] & 0xc0) !== 0x80) ok = false;
      if (!ok) {
        push('\ufffd', i, i);
        i++;
        continue;
      }
      let cp = n === 1 ? c : n === 2 ? c & 0x1f : n === 3 ? c & 0x0f : c & 0x07;
      for (let k = 1; k < n; k++) cp = (cp << 6) | (b[i + k] & 0x3f);
      if ((n === 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) || (n === 4 && (cp < 0x10000 || cp > 0x10ffff))) {
        push('\ufffd', i, i);
        i++;
        continue;
      }
      if (cp > 0xffff) {
        const s = String.fromCodePoint(cp);
        push(s[0], i, i + n - 1);
        push(s[1], i, i + n - 1);
      } else push(String.fromCharCode(cp), i, i + n - 1);
      i += n;
    }
    return { chars, src: csrc, w: cw };
  }
  if (cs.table) {
    for (let i = 0; i < b.length; i++) push(cs.table[b[i]], i, i);
    return { chars, src: csrc, w: cw };
  }
  // A multi-byte charset other than UTF-8: decode line by line, map characters approximately.
  if (!knownLabel(cs.label)) {
    problems.push({ at: src[0] ?? 0, message: `unknown charset "${cs.label}"; decoded as UTF-8` });
    return decodeCharset(bytes, 'utf-8', problems);
  }
  const dec = new TextDecoder(cs.label);
  let lineStart = 0;
  for (let i = 0; i <= b.length; i++) {
    if (i < b.length && b[i] !== 10) continue;
    const text = dec.decode(new Uint8Array(b.slice(lineStart, i)));
    for (let k = 0; k < text.length; k++) {
      const bi = Math.min(lineStart + k, Math.max(lineStart, i - 1));
      push(text[k], bi, bi);
    }
    if (i < b.length) push('\n', i, i);
    lineStart = i + 1;
  }
  return { chars, src: csrc, w: cw };
}

/** Decoded characters -> text (CRLF normalized to LF) and offset map. */
function finish(ch: { chars: string[]; src: number[]; w: number[] }, problems: Decoded['problems']): Decoded {
  const map = new OffsetMap();
  const out: string[] = [];
  const { chars, src, w } = ch;
  for (let i = 0; i < chars.length; i++) {
    const c = chars[i];
    if (c === '\r' && chars[i + 1] === '\n') continue;
    map.add(out.length, src[i], 1, 1, w[i]);
    out.push(c);
  }
  return { text: out.join(''), map, problems };
}

function pushText(bytes: Bytes, s: string, start: number): void {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x100) {
      bytes.b.push(c);
      bytes.src.push(start + i);
      bytes.w.push(1);
    } else {
      // Not a byte: the face decoded the file as UTF-8. Re-encode it.
      const enc = utf8Bytes(s.codePointAt(i)!);
      for (const e of enc) {
        bytes.b.push(e);
        bytes.src.push(start + i);
        bytes.w.push(1);
      }
      if (c >= 0xd800 && c <= 0xdbff) i++;
    }
  }
}

function utf8Bytes(cp: number): number[] {
  if (cp < 0x80) return [cp];
  if (cp < 0x800) return [0xc0 | (cp >> 6), 0x80 | (cp & 0x3f)];
  if (cp < 0x10000) return [0xe0 | (cp >> 12), 0x80 | ((cp >> 6) & 0x3f), 0x80 | (cp & 0x3f)];
  return [0xf0 | (cp >> 18), 0x80 | ((cp >> 12) & 0x3f), 0x80 | ((cp >> 6) & 0x3f), 0x80 | (cp & 0x3f)];
}

// ---------------------------------------------------------------------------
// Transfer encodings

/**
 * 7bit/8bit/binary: the text as the face decoded the file. When the part
 * says UTF-8 but the file was read as latin-1 (an mbox that mixes charsets
 * is not valid UTF-8 as a whole), the part's characters are its bytes and
 * are decoded again as UTF-8.
 */
export function decodeIdentity(lines: readonly RawLine[], charset: Charset): Decoded {
  const problems: Decoded['problems'] = [];
  let wide = false;
  let high = false;
  for (const l of lines) {
    for (let i = 0; i < l.text.length; i++) {
      const c = l.text.charCodeAt(i);
      if (c > 0xff) wide = true;
      else if (c >= 0x80) high = true;
    }
  }
  if (charset === 'utf-8' && high && !wide) {
    const bytes: Bytes = { b: [], src: [], w: [] };
    for (const l of lines) {
      pushText(bytes, l.text, l.start);
      bytes.b.push(10);
      bytes.src.push(l.end);
      bytes.w.push(1);
    }
    if (validUtf8(bytes.b)) {
      bytes.b.pop();
      bytes.src.pop();
      bytes.w.pop();
      return finish(decodeCharset(bytes, 'utf-8', problems), problems);
    }
  }
  const map = new OffsetMap();
  const parts: string[] = [];
  let at = 0;
  lines.forEach((l, k) => {
    map.add(at, l.start, l.text.length);
    parts.push(l.text);
    at += l.text.length;
    if (k < lines.length - 1) {
      map.add(at, l.end, 1);
      parts.push('\n');
      at++;
    }
  });
  return { text: parts.join(''), map, problems };
}

const HEX = /^[0-9A-Fa-f]{2}$/;

/** Quoted-printable (RFC 2045 6.7): soft line breaks, `=XX` escapes, trailing blanks dropped. */
export function decodeQuotedPrintable(lines: readonly RawLine[], charset: Charset): Decoded {
  const problems: Decoded['problems'] = [];
  const bytes: Bytes = { b: [], src: [], w: [] };
  lines.forEach((l, k) => {
    const t = l.text;
    let end = t.length;
    while (end > 0 && (t.charCodeAt(end - 1) === 32 || t.charCodeAt(end - 1) === 9)) end--;
    const soft = end > 0 && t.charCodeAt(end - 1) === 61; /* '=' at the end: a soft line break */
    const stop = soft ? end - 1 : end;
    let runStart = 0;
    const flush = (to: number) => {
      if (to > runStart) pushText(bytes, t.slice(runStart, to), l.start + runStart);
    };
    for (let i = 0; i < stop; i++) {
      if (t.charCodeAt(i) !== 61) continue;
      const hex = t.slice(i + 1, i + 3);
      if (HEX.test(hex) && i + 3 <= stop) {
        flush(i);
        bytes.b.push(parseInt(hex, 16));
        bytes.src.push(l.start + i);
        bytes.w.push(3);
        i += 2;
        runStart = i + 1;
      }
      // A lone '=' that escapes nothing is kept literally (what lenient decoders do).
    }
    flush(stop);
    if (!soft && k < lines.length - 1) {
      bytes.b.push(10);
      bytes.src.push(l.end);
      bytes.w.push(1);
    }
  });
  return finish(decodeCharset(bytes, charset, problems), problems);
}

const B64 = new Int16Array(128).fill(-1);
'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/'.split('').forEach((c, i) => (B64[c.charCodeAt(0)] = i));

/** Base64 (RFC 2045 6.8): characters outside the alphabet are skipped; padding ends a group. */
export function decodeBase64(lines: readonly RawLine[], charset: Charset): Decoded {
  const problems: Decoded['problems'] = [];
  const vals: number[] = [];
  const offs: number[] = [];
  let bad = -1;
  let ended = false;
  for (const l of lines) {
    const t = l.text;
    for (let i = 0; i < t.length; i++) {
      const c = t.charCodeAt(i);
      if (c === 61 /* = */) {
        // Padding: completes the current group. More data after it is a new group (concatenated base64).
        if (vals.length % 4 !== 0) {
          while (vals.length % 4 !== 0) {
            vals.push(-2);
            offs.push(l.start + i);
          }
        }
        ended = true;
        continue;
      }
      const v = c < 128 ? B64[c] : -1;
      if (v < 0) {
        if (c !== 32 && c !== 9 && bad < 0) bad = l.start + i;
        continue;
      }
      if (ended) ended = false;
      vals.push(v);
      offs.push(l.start + i);
    }
  }
  if (bad >= 0) problems.push({ at: bad, message: 'base64 part holds characters outside the base64 alphabet (skipped)' });
  const bytes: Bytes = { b: [], src: [], w: [] };
  for (let g = 0; g + 1 < vals.length; g += 4) {
    const v0 = vals[g];
    const v1 = vals[g + 1];
    const v2 = g + 2 < vals.length ? vals[g + 2] : -2;
    const v3 = g + 3 < vals.length ? vals[g + 3] : -2;
    if (v0 < 0 || v1 < 0) break;
    const emit = (byte: number, k: number) => {
      bytes.b.push(byte & 0xff);
      bytes.src.push(offs[g + k]);
      bytes.w.push(1);
    };
    emit((v0 << 2) | (v1 >> 4), 0);
    if (v2 >= 0) emit(((v1 & 15) << 4) | (v2 >> 2), 1);
    if (v2 >= 0 && v3 >= 0) emit(((v2 & 3) << 6) | v3, 2);
  }
  if (vals.length % 4 === 1) problems.push({ at: offs[offs.length - 1], message: 'base64 part ends in the middle of a group (truncated?)' });
  return finish(decodeCharset(bytes, charset, problems), problems);
}

// ---------------------------------------------------------------------------
// RFC 2047 encoded-words

const ENCODED_WORD = /=\?([^?\s]+)\?([bBqQ])\?([^?\s]*)\?=/g;

/** Decodes the encoded-words of a header value (`=?UTF-8?q?...?=`, `=?iso-8859-1?b?...?=`). */
export function decodeEncodedWords(value: string): string {
  if (!value.includes('=?')) return value;
  // Whitespace between two adjacent encoded-words is not displayed (RFC 2047 6.2).
  const joined = value.replace(/(\?=)\s+(?==\?[^?\s]+\?[bBqQ]\?)/g, '$1');
  return joined.replace(ENCODED_WORD, (whole, cs: string, enc: string, data: string) => {
    const charset = normalizeCharset(cs.split('*')[0]);
    const bytes: Bytes = { b: [], src: [], w: [] };
    if (enc === 'q' || enc === 'Q') {
      for (let i = 0; i < data.length; i++) {
        const c = data[i];
        if (c === '_') bytes.b.push(32);
        else if (c === '=' && HEX.test(data.slice(i + 1, i + 3))) {
          bytes.b.push(parseInt(data.slice(i + 1, i + 3), 16));
          i += 2;
        } else bytes.b.push(data.charCodeAt(i) & 0xff);
      }
    } else {
      const d = decodeBase64([{ text: data, start: 0, end: data.length }], 'latin-1').text;
      for (let i = 0; i < d.length; i++) bytes.b.push(d.charCodeAt(i));
    }
    if (!bytes.b.length) return '';
    for (let i = 0; i < bytes.b.length; i++) {
      bytes.src.push(i);
      bytes.w.push(1);
    }
    if (typeof charset === 'object' && !charset.table && !knownLabel(charset.label)) return whole;
    return decodeCharset(bytes, charset, []).chars.join('');
  });
}
