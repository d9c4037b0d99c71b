#!/usr/bin/env node
'use strict';
/**
 * Draws the extension icon (images/icon.png, 128x128 RGBA): a lens over a
 * grid of memory pages. A tiny PNG encoder on node:zlib; no dependencies.
 *
 *   node scripts/make-icon.js [out.png]
 */
const fs = require('node:fs');
const path = require('node:path');
const zlib = require('node:zlib');

const SIZE = 128;
const SS = 4; // supersampling per axis

const BG = [27, 42, 65];
const PAGE = [240, 173, 78];
const PAGE_DIM = [96, 112, 138];
const LENS = [60, 207, 207];

function insideRoundedSquare(x, y, r) {
  const cx = Math.min(Math.max(x, r), SIZE - r);
  const cy = Math.min(Math.max(y, r), SIZE - r);
  return (x - cx) ** 2 + (y - cy) ** 2 <= r * r;
}

function distToSegment(px, py, ax, ay, bx, by) {
  const dx = bx - ax;
  const dy = by - ay;
  const t = Math.max(0, Math.min(1, ((px - ax) * dx + (py - ay) * dy) / (dx * dx + dy * dy)));
  return Math.hypot(px - (ax + t * dx), py - (ay + t * dy));
}

/** Colour (RGBA, 0-255) of one sample point. */
function sample(x, y) {
  if (!insideRoundedSquare(x, y, 22)) return [0, 0, 0, 0];
  let c = BG;
  const lx = 54;
  const ly = 54;
  const lr = 33;
  const inLens = Math.hypot(x - lx, y - ly) < lr - 4;
  // A 4x4 grid of pages; the ones under the lens light up.
  const cell = 18;
  const origin = 22;
  const gx = Math.floor((x - origin) / cell);
  const gy = Math.floor((y - origin) / cell);
  if (gx >= 0 && gx < 4 && gy >= 0 && gy < 4) {
    const ox = x - origin - gx * cell;
    const oy = y - origin - gy * cell;
    if (ox > 2 && ox < cell - 2 && oy > 2 && oy < cell - 2) c = inLens ? PAGE : PAGE_DIM;
  }
  const d = Math.hypot(x - lx, y - ly);
  if (Math.abs(d - lr) < 5) c = LENS;
  if (distToSegment(x, y, 78, 78, 106, 106) < 7) c = LENS;
  return [...c, 255];
}

function render() {
  const px = Buffer.alloc(SIZE * SIZE * 4);
  for (let y = 0; y < SIZE; y++) {
    for (let x = 0; x < SIZE; x++) {
      const acc = [0, 0, 0, 0];
      for (let sy = 0; sy < SS; sy++) {
        for (let sx = 0; sx < SS; sx++) {
          const s = sample(x + (sx + 0.5) / SS, y + (sy + 0.5) / SS);
          // Premultiplied accumulation keeps the edges clean.
          acc[0] += s[0] * s[3];
          acc[1] += s[1] * s[3];
          acc[2] += s[2] * s[3];
          acc[3] += s[3];
        }
      }
      const i = (y * SIZE + x) * 4;
      const a = acc[3];
      px[i] = a ? Math.round(acc[0] / a) : 0;
      px[i + 1] = a ? Math.round(acc[1] / a) : 0;
      px[i + 2] = a ? Math.round(acc[2] / a) : 0;
      px[i + 3] = Math.round(a / (SS * SS));
    }
  }
  return px;
}

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

function crc32(buf) {
  let c = 0xffffffff;
  for (const b of buf) c = CRC_TABLE[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function chunk(type, data) {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  const body = Buffer.concat([Buffer.from(type, 'ascii'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(body));
  return Buffer.concat([len, body, crc]);
}

function encodePng(rgba, w, h) {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0);
  ihdr.writeUInt32BE(h, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 6; // RGBA
  ihdr[10] = 0;
  ihdr[11] = 0;
  ihdr[12] = 0;
  const raw = Buffer.alloc((w * 4 + 1) * h);
  for (let y = 0; y < h; y++) {
    raw[y * (w * 4 + 1)] = 0; // filter: none
    rgba.copy(raw, y * (w * 4 + 1) + 1, y * w * 4, (y + 1) * w * 4);
  }
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr),
    chunk('IDAT', zlib.deflateSync(raw, { level: 9 })),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

const out = process.argv[2] || path.join(__dirname, '..', 'images', 'icon.png');
fs.mkdirSync(path.dirname(out), { recursive: true });
fs.writeFileSync(out, encodePng(render(), SIZE, SIZE));
process.stdout.write(`${path.relative(process.cwd(), out)} ${fs.statSync(out).size} bytes\n`);
