/**
 * Offset maps: where each character of a derived text (a decoded mail body,
 * a rebuilt hunk fragment) came from in its source text. Offsets to offsets
 * only; lines and columns are core/positions.ts's business.
 *
 * A map is a sorted list of segments. A segment says that `len` characters
 * starting at `from` in the derived text come from `to` in the source,
 * one source character per derived character (stride 1: plain text, the
 * literal runs of quoted-printable), or all from the same place (stride 0:
 * text the engine made up, anchored on something the user can see). A
 * single character can have a source `width` larger than one: `=3D` in
 * quoted-printable is one derived character from three source characters.
 *
 * Offsets not covered by any segment (a line break the decoder inserted)
 * map to the end of the preceding segment.
 */
import type { Span } from '../core/types';

export class OffsetMap {
  private readonly from: number[] = [];
  private readonly to: number[] = [];
  private readonly len: number[] = [];
  private readonly stride: number[] = [];
  private readonly width: number[] = [];

  /**
   * Adds a segment; segments must be added in increasing `from` order.
   * Adjacent stride-1 runs that continue each other are merged.
   */
  add(from: number, to: number, len: number, stride: 0 | 1 = 1, width = 1): void {
    if (len <= 0) return;
    const n = this.from.length;
    if (n > 0 && stride === 1 && width === 1) {
      const i = n - 1;
      if (
        this.stride[i] === 1 &&
        this.width[i] === 1 &&
        this.from[i] + this.len[i] === from &&
        this.to[i] + this.len[i] === to
      ) {
        this.len[i] += len;
        return;
      }
    }
    this.from.push(from);
    this.to.push(to);
    this.len.push(len);
    this.stride.push(stride);
    this.width.push(width);
  }

  get size(): number {
    return this.from.length;
  }

  /** Index of the last segment starting at or before `offset`, or -1. */
  private seg(offset: number): number {
    const f = this.from;
    let lo = 0;
    let hi = f.length - 1;
    if (hi < 0 || offset < f[0]) return -1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (f[mid] <= offset) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }

  /** Source offset of the derived character at `offset`. */
  map(offset: number): number {
    const i = this.seg(offset);
    if (i < 0) return this.from.length ? this.to[0] : offset;
    const rel = offset - this.from[i];
    if (rel < this.len[i]) return this.to[i] + rel * this.stride[i];
    return this.to[i] + (this.len[i] - 1) * this.stride[i] + this.width[i];
  }

  /** Source offset just past the derived character before `offset` (for exclusive span ends). */
  mapEnd(offset: number): number {
    if (offset <= 0) return this.map(0);
    const i = this.seg(offset - 1);
    if (i < 0) return this.map(offset);
    const rel = offset - 1 - this.from[i];
    if (rel < this.len[i]) return this.to[i] + rel * this.stride[i] + this.width[i];
    return this.to[i] + (this.len[i] - 1) * this.stride[i] + this.width[i];
  }

  /** Whether the derived character at `offset` comes from the source one to one (not made up). */
  exact(offset: number): boolean {
    const i = this.seg(offset);
    return i >= 0 && offset - this.from[i] < this.len[i] && this.stride[i] === 1;
  }

  mapSpan(span: Span): Span {
    const start = this.map(span.start);
    const end = span.end > span.start ? this.mapEnd(span.end) : start;
    return { start, end: Math.max(start, end) };
  }
}

/** The identity map over `[0, length)` shifted by `base`. */
export function identityMap(length: number, base = 0): OffsetMap {
  const m = new OffsetMap();
  m.add(0, base, Math.max(1, length));
  return m;
}
