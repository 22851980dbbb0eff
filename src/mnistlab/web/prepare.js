// The pad's drawing made MNIST-style in the page, as mnistlab prepares it on the server (preprocess.candidates' first
// reading of a clean drawing, photo_path's scan path, then field.to_field): the ink stretched against the
// background, its box scaled to 20 px with Pillow's Lanczos filter, its centre of mass put at (14, 14) in 28x28.

const FIELD = 28, BOX = 20, CENTRE = 14; // field.py
const MIN_STROKE = 1.6, TARGET_STROKE = 2.4, MIN_SIDE = 3, MAX_ELONGATION = 100; // field.py
const MIN_CONTRAST = 0.1, NOISE_FACTOR = 4, MIN_THRESHOLD = 0.2, MAX_THRESHOLD = 0.5; // photo_path.py
const MIN_INK = 4, SPECK_FRACTION = 0.005; // photo_path.py
const f32 = Math.fround; // the server works in float32: so does this, step by step

// ImageData -> its gray plane in [0, 1] (Pillow's RGB -> L weights, as gray.to_grayscale; the pad is opaque).
export function grayOf(image) {
  const { data, width, height } = image;
  const g = new Float32Array(width * height);
  for (let i = 0; i < g.length; i++) {
    const [r, gr, b] = [0, 1, 2].map((c) => f32(data[4 * i + c] / 255));
    g[i] = f32(f32(f32(r * 0.299) + f32(gr * 0.587)) + f32(b * 0.114));
  }
  return { a: g, h: height, w: width };
}

export function median(values) { // numpy's: the mean of the two middle values of an even count
  const s = Float64Array.from(values).sort();
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

export function pyRound(x) { // Python's round(): halves to even
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 ? r - 1 : r;
}

// The box (end-exclusive) of the non-zero pixels, cut out; null when there are none.
export function cropToInk({ a, h, w }) {
  let top = h, bottom = -1, left = w, right = -1;
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      if (a[y * w + x] > 0) { top = Math.min(top, y); bottom = y; left = Math.min(left, x); right = Math.max(right, x); }
    }
  }
  if (bottom < 0) return null;
  const ch = bottom + 1 - top, cw = right + 1 - left, out = new Float32Array(ch * cw);
  for (let y = 0; y < ch; y++) out.set(a.subarray((top + y) * w + left, (top + y) * w + left + cw), y * cw);
  return { a: out, h: ch, w: cw };
}

function strokeWidth({ a, h, w }) { // field.stroke_width: twice the ink's area over its boundary
  const at = (m, y, x) => y >= 0 && y < h && x >= 0 && x < w && m(a[y * w + x]);
  let m = (v) => v > 0.5;
  if (!a.some(m)) m = (v) => v > 0;
  let area = 0, interior = 0;
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      if (!at(m, y, x)) continue;
      area++;
      if (at(m, y - 1, x) && at(m, y + 1, x) && at(m, y, x - 1) && at(m, y, x + 1)) interior++;
    }
  }
  return (2 * area) / Math.max(area - interior, 1);
}

// field.thicken, for a crop no longer than its WORK (320 px; the pad is 280): a square grey dilation.
function thicken(c, stroke) {
  const radius = Math.ceil((TARGET_STROKE * Math.max(c.h, c.w) / BOX - stroke) / 2);
  if (radius <= 0) return c;
  const h = c.h + 2 * radius, w = c.w + 2 * radius;
  let a = new Float32Array(h * w);
  for (let y = 0; y < c.h; y++) a.set(c.a.subarray(y * c.w, (y + 1) * c.w), (y + radius) * w + radius);
  for (const [n, step, lines, across] of [[h, w, w, 1], [w, 1, h, w]]) { // down the columns, then along the rows
    const out = new Float32Array(h * w);
    for (let l = 0; l < lines; l++) {
      for (let i = 0; i < n; i++) {
        let best = 0;
        for (let j = Math.max(0, i - radius); j <= Math.min(n - 1, i + radius); j++) best = Math.max(best, a[l * across + j * step]);
        out[l * across + i * step] = best;
      }
    }
    a = out;
  }
  return cropToInk({ a, h, w });
}

function lanczos(x) {
  const sinc = (t) => (t === 0 ? 1 : Math.sin(Math.PI * t) / (Math.PI * t));
  return x >= -3 && x < 3 ? sinc(x) * sinc(x / 3) : 0;
}

function coefficients(inSize, outSize) { // Pillow's precompute_coeffs (Resample.c), Lanczos: support 3
  const scale = inSize / outSize, filterScale = Math.max(scale, 1), support = 3 * filterScale;
  const out = [];
  for (let xx = 0; xx < outSize; xx++) {
    const center = (xx + 0.5) * scale;
    const xmin = Math.max(Math.trunc(center - support + 0.5), 0);
    const xmax = Math.min(Math.trunc(center + support + 0.5), inSize);
    const k = [];
    for (let x = xmin; x < xmax; x++) k.push(lanczos((x - center + 0.5) / filterScale));
    const total = k.reduce((s, v) => s + v, 0);
    out.push([xmin, total !== 0 ? k.map((v) => v / total) : k]);
  }
  return out;
}

// Pillow's resize of a float ("F") image with LANCZOS: rows first, then columns; clipped to [0, 1] (field.resize).
function resize(c, width, height) {
  let { a, h, w } = c;
  if (width !== w) {
    const k = coefficients(w, width), out = new Float32Array(h * width);
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < width; x++) {
        const [x0, ws] = k[x];
        let s = 0;
        for (let i = 0; i < ws.length; i++) s += a[y * w + x0 + i] * ws[i];
        out[y * width + x] = s;
      }
    }
    [a, w] = [out, width];
  }
  if (height !== h) {
    const k = coefficients(h, height), out = new Float32Array(height * w);
    for (let y = 0; y < height; y++) {
      const [y0, ws] = k[y];
      for (let x = 0; x < w; x++) {
        let s = 0;
        for (let i = 0; i < ws.length; i++) s += a[(y0 + i) * w + x] * ws[i];
        out[y * w + x] = s;
      }
    }
    [a, h] = [out, height];
  }
  return { a: a.map((v) => Math.min(1, Math.max(0, v))), h, w };
}

// numpy's pairwise summation (add.reduce over contiguous values), each step rounded as the dtype rounds (`round`).
function pairwise(a, start, n, stride, round) {
  const at = (i) => a[start + i * stride];
  if (n < 8) {
    let r = 0;
    for (let i = 0; i < n; i++) r = round(r + at(i));
    return r;
  }
  if (n <= 128) {
    const r = [0, 1, 2, 3, 4, 5, 6, 7].map(at);
    let i = 8;
    for (; i < n - (n % 8); i += 8) for (let j = 0; j < 8; j++) r[j] = round(r[j] + at(i + j));
    let res = round(round(round(r[0] + r[1]) + round(r[2] + r[3])) + round(round(r[4] + r[5]) + round(r[6] + r[7])));
    for (; i < n; i++) res = round(res + at(i));
    return res;
  }
  const half = Math.floor(n / 2) - (Math.floor(n / 2) % 8);
  return round(pairwise(a, start, half, stride, round) + pairwise(a, start + half * stride, n - half, stride, round));
}

// field.to_field: cropped ink -> the 28x28 field (Float32Array, row by row); null when no ink lands in it.
export function toField(crop) {
  let c = crop, scale = BOX / Math.max(c.h, c.w);
  const stroke = strokeWidth(c);
  if (stroke * scale < MIN_STROKE) {
    c = thicken(c, stroke);
    scale = BOX / Math.max(c.h, c.w);
  }
  const dw = Math.max(1, pyRound(c.w * scale)), dh = Math.max(1, pyRound(c.h * scale));
  const d = dw === c.w && dh === c.h ? c : resize(c, dw, dh);
  // The centre of mass summed as numpy sums it (float32 pairwise sums, column sums row after row): a symmetric
  // stroke's centre falls on a half pixel, where float32's rounding decides which way it is placed.
  const mass = pairwise(d.a, 0, dh * dw, 1, f32);
  if (!(mass > 0)) return null;
  const rows = Array.from({ length: dh }, (_, y) => pairwise(d.a, y * dw, dw, 1, f32) * y);
  const cols = Array.from({ length: dw }, (_, x) => {
    let s = d.a[x];
    for (let y = 1; y < dh; y++) s = f32(s + d.a[y * dw + x]);
    return s * x;
  });
  const cy = pairwise(rows, 0, dh, 1, Number) / mass, cx = pairwise(cols, 0, dw, 1, Number) / mass;
  const top = Math.floor(CENTRE - cy + 0.5), left = Math.floor(CENTRE - cx + 0.5);
  const out = new Float32Array(FIELD * FIELD);
  let landed = false;
  for (let y = Math.max(top, 0); y < Math.min(top + dh, FIELD); y++) {
    for (let x = Math.max(left, 0); x < Math.min(left + dw, FIELD); x++) {
      out[y * FIELD + x] = d.a[(y - top) * dw + (x - left)];
      landed = true;
    }
  }
  return landed ? out : null;
}

// photo_path's scan path on a clean drawing: {kind, seen} (the 28x28 field), or {error} saying why there is none.
export function prepare(g) {
  const { a, h, w } = g;
  const border = [];
  for (let x = 0; x < w; x++) border.push(a[x], a[(h - 1) * w + x]);
  for (let y = 1; y < h - 1; y++) border.push(a[y * w], a[y * w + w - 1]);
  const background = f32(median(border));
  const ink = a.map((v) => v - background);
  if (ink.reduce((s, v) => s + v, 0) < 0) ink.forEach((v, i) => { ink[i] = -v; }); // dark ink: the other way round
  ink.forEach((v, i) => { ink[i] = Math.max(v, 0); });
  const noise = 1.4826 * median(border.map((v) => Math.abs(v - background)));
  const peak = ink.reduce((m, v) => Math.max(m, v), 0);
  if (peak < Math.max(MIN_CONTRAST, NOISE_FACTOR * noise)) return { error: "no ink found: draw a digit" };
  const level = f32(median(ink.filter((v) => v >= 0.5 * peak)));
  const threshold = Math.min(MAX_THRESHOLD, Math.max(MIN_THRESHOLD, (3 * noise) / level));
  ink.forEach((v, i) => { ink[i] = Math.min(1, Math.max(0, f32(f32(f32(v / level) - threshold) / f32(1 - threshold)))); });
  const crop = cropToInk({ a: ink, h, w });
  if (!crop) return { error: "no ink found: draw a digit" };
  const longer = Math.max(crop.h, crop.w), shorter = Math.min(crop.h, crop.w);
  if (longer < Math.max(MIN_INK, SPECK_FRACTION * Math.min(h, w)) || longer > MAX_ELONGATION * shorter || Math.min(h, w) < MIN_SIDE) {
    return { error: "no digit found: the ink is a speck or a line" };
  }
  const seen = toField(crop);
  return seen ? { kind: "photo path", seen } : { error: "no ink found: draw a digit" };
}
