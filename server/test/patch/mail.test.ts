/** Mail: splitting, headers, encoded-words, MIME, transfer encodings and the map back to the file. */
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { LineIndex } from '../../src/core/positions';
import { decodeBytes } from '../../src/core/text';
import { decodeEncodedWords } from '../../src/patch/encoding';
import { fileLines, headerValue, parseSubject, splitMessages } from '../../src/patch/mail';

const FIX = path.resolve(__dirname, '../../../test/fixtures/patch');
const read = (name: string): string => {
  const d = decodeBytes(fs.readFileSync(path.join(FIX, name)));
  if ('binary' in d) throw new Error(`${name} is binary`);
  return d.text;
};

/** One-based line of a file offset. */
const lineOf = (text: string, offset: number) => new LineIndex(text).lineOf(offset) + 1;

test('an mbox from b4 splits into the cover letter and three patches', () => {
  const text = read('acme-v2.mbx');
  const ms = splitMessages(text);
  assert.equal(ms.length, 4);
  assert.deepEqual(
    ms.map((m) => [m.kind, m.subjectPrefix, m.series?.number, m.series?.total, m.series?.version]),
    [
      ['mbox', 'PATCH v2 0/3', 0, 3, 2],
      ['mbox', 'PATCH v2 1/3', 1, 3, 2],
      ['mbox', 'PATCH v2 2/3', 2, 3, 2],
      ['mbox', 'PATCH v2 3/3', 3, 3, 2],
    ],
  );
  // A folded Subject (RFC 5322) is unfolded; the prefix is kept apart.
  assert.equal(ms[1].rawSubject, '[PATCH v2 1/3] drm/acme: keep the pages of imported buffers for CPU readback');
  assert.equal(ms[1].subject, 'drm/acme: keep the pages of imported buffers for CPU readback');
  // The subject range covers both physical lines of the folded header.
  const sr = ms[1].subjectSpan!;
  assert.equal(text.slice(sr.start, sr.end), '[PATCH v2 1/3] drm/acme: keep the pages of imported buffers for CPU\n readback');
  assert.equal(lineOf(text, sr.start), 39);
  assert.equal(ms[1].from, 'Jane Doe <jane.doe@acme.example>');
  assert.equal(ms[1].date, 'Tue, 14 Jan 2025 10:21:33 +0100');
  assert.equal(ms[1].messageId, '20250114092133.4172-2-jane.doe@acme.example');
  assert.equal(ms[1].inReplyTo, '20250114092132.4172-1-jane.doe@acme.example');
  assert.deepEqual(ms[1].references, ['20250114092132.4172-1-jane.doe@acme.example']);
  // RFC 2047 in a folded Cc.
  assert.equal(headerValue(ms[1], 'cc'), 'Christian König <christian.koenig@amd.example>, linux-media@vger.kernel.org, linux-pci@vger.kernel.org');
  // mboxrd: one '>' of ">From " is the escape; the map still points at the real "From" in the file.
  const cover = ms[0].parts[0];
  const at = cover.text.indexOf('From the review of v1');
  assert.ok(at > 0 && cover.text[at - 1] === '\n', 'the escape is removed');
  assert.equal(text.slice(cover.map.map(at), cover.map.map(at) + 4), 'From');
  assert.equal(text[cover.map.map(at) - 1], '>');
  for (const m of ms) assert.deepEqual(m.diagnostics, []);
});

test('subjects: prefixes, series positions, versions and reply markers', () => {
  assert.deepEqual(parseSubject('[PATCH v2 3/7] mm: x'), { subject: 'mm: x', subjectPrefix: 'PATCH v2 3/7', series: { number: 3, total: 7, version: 2 }, reply: false });
  assert.deepEqual(parseSubject('[RFC PATCH net-next 02/10] net: y'), {
    subject: 'net: y',
    subjectPrefix: 'RFC PATCH net-next 02/10',
    series: { number: 2, total: 10 },
    reply: false,
  });
  assert.deepEqual(parseSubject('Re: [PATCH 1/2] a'), { subject: 'a', subjectPrefix: 'PATCH 1/2', series: { number: 1, total: 2 }, reply: true });
  assert.deepEqual(parseSubject('[PATCH v3] single'), { subject: 'single', subjectPrefix: 'PATCH v3', series: { number: 1, total: 1, version: 3 }, reply: false });
  assert.deepEqual(parseSubject('[PATCH] [RESEND] z'), { subject: 'z', subjectPrefix: 'PATCH] [RESEND', reply: false });
  assert.deepEqual(parseSubject('no prefix'), { subject: 'no prefix', reply: false });
});

test('RFC 2047 encoded-words: Q and B, UTF-8 and latin-1, adjacent words joined', () => {
  assert.equal(decodeEncodedWords('=?UTF-8?q?Christian_K=C3=B6nig?= <ck@x>'), 'Christian König <ck@x>');
  assert.equal(decodeEncodedWords('=?iso-8859-1?q?Jos=E9_M=FCller?='), 'José Müller');
  assert.equal(decodeEncodedWords('=?iso-8859-1?b?Sm9z6SBN/GxsZXI=?='), 'José Müller');
  assert.equal(decodeEncodedWords('=?UTF-8?q?=5BPATCH=5D_a?= =?UTF-8?q?b?='), '[PATCH] ab');
  assert.equal(decodeEncodedWords('plain =?x-unknown-charset?q?abc?= text'), 'plain =?x-unknown-charset?q?abc?= text');
});

test('quoted-printable: soft line breaks and =3D map back to the encoded lines', () => {
  const text = read('acme-1-qp.eml');
  const [m] = splitMessages(text);
  assert.equal(m.kind, 'eml');
  assert.equal(m.subject, 'drm/acme: keep the pages of imported buffers for CPU readback');
  const part = m.parts[0];
  assert.equal(part.encoding, 'quoted-printable');
  // A UTF-8 name spelled =C3=B6.
  assert.ok(part.text.includes('Suggested-by: Christian König <christian.koenig@amd.example>'));
  const ko = part.text.indexOf('ö');
  assert.equal(text.slice(part.map.map(ko), part.map.mapEnd(ko + 1)), '=C3=B6');
  // `=3D` is one character.
  const eq = part.text.indexOf('sgt = dma_buf_map_attachment(');
  const f = part.map.map(eq + 'sgt = '.length);
  assert.equal(text.slice(f, f + 'dma_buf_map_attachment('.length), 'dma_buf_map_attachment(');
  assert.equal(text.slice(part.map.map(eq + 4), part.map.mapEnd(eq + 5)), '=3D');
  // A soft break: the decoded `diff --git` line continues on the next line of the file.
  const dg = part.text.indexOf('diff --git a/drivers/gpu/drm/acme/acme_dmabuf.c b/drivers/gpu/drm/acme/acme_dmabuf.c\n');
  assert.ok(dg > 0);
  const tail = dg + 'diff --git a/drivers/gpu/drm/acme/acme_dmabuf.c b/drivers/gpu/drm/acme/acme'.length;
  assert.equal(lineOf(text, part.map.map(dg)), 30);
  assert.equal(lineOf(text, part.map.map(tail)), 31, 'the rest of the line is after the soft break');
  assert.equal(text.slice(part.map.map(tail), part.map.map(tail) + 9), '_dmabuf.c');
  // The line map: decoded line -> file line (0-based), soft breaks included.
  const map = fileLines(part, new LineIndex(text));
  const decodedDiffLine = new LineIndex(part.text).lineOf(dg);
  assert.equal(map[decodedDiffLine], 29);
  assert.equal(map[decodedDiffLine + 1], 31, 'the next decoded line starts after the continuation line');
  // =20 on an otherwise empty context line decodes to a space.
  assert.ok(part.text.includes('\n \n\tattach = dma_buf_dynamic_attach') || part.text.includes('\n \n \tattach'));
});

test('base64 inside nested multiparts: text parts kept, HTML left out, positions on the encoded line', () => {
  const text = read('acme-1-base64.eml');
  const [m] = splitMessages(text);
  assert.deepEqual(m.diagnostics, []);
  assert.deepEqual(
    m.parts.map((p) => [p.contentType, p.encoding, p.filename]),
    [
      ['text/plain', '7bit', undefined],
      ['text/x-patch', 'base64', '0001-drm-acme-keep-the-pages.patch'],
    ],
  );
  const part = m.parts[1];
  const at = part.text.indexOf('dma_buf_map_attachment(imp->attach, DMA_BIDIRECTIONAL)');
  assert.ok(at > 0);
  // The encoded character where the decoded byte starts: byte k of a group starts in character k.
  const f = part.map.map(at);
  const body = text.slice(part.span.start, part.span.end);
  const alphabet = /[A-Za-z0-9+/]/;
  let chars = 0;
  for (let i = part.span.start; i < f; i++) if (alphabet.test(text[i])) chars++;
  const byte = Math.floor(chars / 4) * 3 + (chars % 4);
  const decoded = Buffer.from(body.replace(/\s+/g, ''), 'base64').toString('latin1');
  assert.ok(decoded.slice(byte).startsWith('dma_buf_map_attachment('), `byte ${byte} starts the call`);
});

test('CRLF line endings: decoded text has LF, positions are the file\'s', () => {
  const text = read('acme-1-crlf.eml');
  const [m] = splitMessages(text);
  assert.equal(m.subject, 'drm/acme: keep the pages of imported buffers for CPU readback');
  const part = m.parts[0];
  assert.ok(!part.text.includes('\r'));
  const at = part.text.indexOf('+\tsgt = dma_buf_map_attachment(');
  assert.equal(text.slice(part.map.map(at), part.map.map(at) + 8), '+\tsgt = ');
  assert.equal(lineOf(text, part.map.map(at)), 56);
});

test('latin-1: encoded-words and an 8bit ISO-8859-1 body', () => {
  const text = read('acme-1-latin1.eml');
  const [m] = splitMessages(text);
  assert.equal(m.from, 'José Müller <jose.mueller@acme.example>');
  assert.equal(m.rawSubject, '[PATCH v2 1/3] drm/acme: keep the pages of imported buffers for CPU readback');
  assert.ok(m.parts[0].text.includes('Tested-by: José Müller <jose.mueller@acme.example>'));
  assert.equal(m.parts[0].charset, 'iso-8859-1');
});

test('an mbox read as latin-1 (mixed charsets) gets its UTF-8 parts decoded again', () => {
  const utf8Msg = 'From a Mon Jan  1 00:00:00 2024\nSubject: a\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\nAcked-by: Zoë\n+x = 1;\n';
  const latinMsg = '\nFrom b Mon Jan  1 00:00:00 2024\nSubject: b\nContent-Type: text/plain; charset=iso-8859-1\nContent-Transfer-Encoding: 8bit\n\nAcked-by: Zoë\n';
  const bytes = Buffer.concat([Buffer.from(utf8Msg, 'utf8'), Buffer.from(latinMsg, 'latin1')]);
  const d = decodeBytes(bytes);
  assert.ok(!('binary' in d) && d.encoding === 'latin-1');
  const text = (d as { text: string }).text;
  const ms = splitMessages(text);
  assert.equal(ms.length, 2);
  assert.ok(ms[0].parts[0].text.includes('Acked-by: Zoë\n'), JSON.stringify(ms[0].parts[0].text));
  assert.ok(ms[1].parts[0].text.includes('Acked-by: Zoë'));
  // After the two-byte ë, positions still land on the file's characters.
  const p = ms[0].parts[0];
  const x = p.text.indexOf('+x = 1;');
  assert.equal(text.slice(p.map.map(x), p.map.map(x) + 7), '+x = 1;');
});

test('git log -p output and plain diffs', () => {
  const log = [
    'commit 0123456789abcdef0123456789abcdef01234567',
    'Author: Jane Doe <jane.doe@acme.example>',
    'Date:   Tue Jan 14 10:21:33 2025 +0100',
    '',
    '    drm/acme: first',
    '',
    'diff --git a/x.c b/x.c',
    'commit 89abcdef0123456789abcdef0123456789abcdef',
    'Author: Jane Doe <jane.doe@acme.example>',
    'Date:   Tue Jan 14 10:21:34 2025 +0100',
    '',
    '    drm/acme: second',
    '',
  ].join('\n');
  const ms = splitMessages(log);
  assert.deepEqual(
    ms.map((m) => [m.kind, m.subject, m.from]),
    [
      ['git-log', 'drm/acme: first', 'Jane Doe <jane.doe@acme.example>'],
      ['git-log', 'drm/acme: second', 'Jane Doe <jane.doe@acme.example>'],
    ],
  );
  const plain = read('acme-1.diff');
  const [p] = splitMessages(plain);
  assert.equal(p.kind, 'plain');
  assert.equal(p.parts[0].text, plain);
});

test('broken mail: truncated multipart, headers without a body, garbage', () => {
  const truncated = [
    'From: a@b',
    'Subject: [PATCH] x',
    'Content-Type: multipart/mixed; boundary="B"',
    '',
    '--B',
    'Content-Type: text/plain',
    '',
    'some text',
  ].join('\n');
  const [m] = splitMessages(truncated);
  assert.equal(m.parts.length, 1);
  assert.equal(m.parts[0].text, 'some text');
  assert.ok(m.diagnostics.some((d) => /closing boundary/.test(d.message) && d.severity === 'error'));

  const headersOnly = 'From: a@b\nSubject: [PATCH] cut off\nContent-Type: text/pla';
  const [h] = splitMessages(headersOnly);
  assert.equal(h.subject, 'cut off');
  assert.ok(h.diagnostics.some((d) => /ends inside its headers/.test(d.message)));

  for (const junk of ['', '\n\n', '\u0000\u0001\u0002\ufffd garbage', 'From: \nSubject: =?utf-8?b?###?=\n\n', '--\n--B--\n']) {
    assert.doesNotThrow(() => splitMessages(junk));
  }
});
