// Every digit in a picture, found and read in the page as mnistlab.reading reads it (frame.py, read.py): the picture
// as the finder sees it (prepare), the finder (finder.onnx on onnxruntime-web), its outputs as boxes (decode,
// distinct), each box's ink cut from the full-size picture (inkOf), made MNIST-style (prepare.js's toField) and read
// by the classifier (model.js), in reading order (readingOrder) as a number (numberOf). The constants are
// mnistlab's own, written into constants.js by export --web. Step by step in float32, as NumPy works there.
import { READING as K } from "./constants.js";
import { cropToInk, median, pyRound, toField } from "./prepare.js";

const f32 = Math.fround;
const CORE = [0.3, 0.7]; // read.ink_of: the middle of a crop (as a share of its side) that kept ink reaches into

// ImageData -> its grey plane {a, h, w} in [0, 1], as gray.to_grayscale makes it: ITU-R 601 luma band by band, and
// a varying alpha composited onto white under dark ink, onto black under light ink (gray._composite).
export function greyOf({ data, width, height }) {
  const [wr, wg, wb] = K.GREY.map(f32), n = width * height;
  const a = new Float32Array(n), alpha = new Float32Array(n);
  let lo = 1, hi = 0;
  for (let i = 0; i < n; i++) {
    const [r, g, b] = [0, 1, 2].map((c) => f32(data[4 * i + c] / 255));
    a[i] = f32(f32(f32(r * wr) + f32(g * wg)) + f32(b * wb));
    alpha[i] = f32(data[4 * i + 3] / 255);
    lo = Math.min(lo, alpha[i]);
    hi = Math.max(hi, alpha[i]);
  }
  if (hi - lo > K.ALPHA_VARIATION) {
    let weight = 0, ink = 0;
    for (let i = 0; i < n; i++) { weight += alpha[i]; ink += a[i] * alpha[i]; }
    const paper = ink / weight < 0.5 ? 1 : 0;
    for (let i = 0; i < n; i++) a[i] = f32(a[i] * alpha[i] + paper * (1 - alpha[i]));
  }
  return { a, h: height, w: width };
}

// frame._area along one axis: `rows` rows of `cols` values (row i at i * rs, value j at j * cs) shrunk to n rows,
// row i the mean of rows floor(i m / n) .. ceil((i + 1) m / n) - 1 (torch's adaptive average pooling).
function area(a, rows, cols, n, rs, cs) {
  const out = new Float32Array(n * cols); // [n, cols], row by row
  for (let i = 0; i < n; i++) {
    const start = Math.floor((i * rows) / n), end = Math.ceil(((i + 1) * rows) / n), count = f32(end - start);
    for (let j = 0; j < cols; j++) {
      let s = 0;
      for (let r = start; r < end; r++) s = f32(s + a[r * rs + j * cs]);
      out[i * cols + j] = f32(s / count);
    }
  }
  return out;
}

// frame._bilinear's weights, m samples to n (torch's bilinear, align_corners False): [lo, hi, weight of hi] each.
function bilinear(m, n) {
  return Array.from({ length: n }, (_, i) => {
    const src = Math.max((i + 0.5) * (m / n) - 0.5, 0), lo = Math.min(Math.floor(src), m - 1);
    return [lo, Math.min(lo + 1, m - 1), f32(src - lo)];
  });
}

// frame.prepare: grey {a, h, w} -> {input: Float32Array [2, S, S], scale} (input px per picture px), S INPUT or given.
export function prepare({ a, h, w }, S = K.INPUT) {
  const scale = S / Math.max(h, w);
  const nh = Math.max(1, pyRound(h * scale)), nw = Math.max(1, pyRound(w * scale));
  let small; // [nh, nw]
  if (scale < 1) {
    const rows = area(a, h, w, nh, w, 1); // [nh, w]
    small = area(rows, w, nh, nw, 1, w); // [nw, nh]: columns shrunk, read back transposed below
    small = Float32Array.from({ length: nh * nw }, (_, k) => small[(k % nw) * nh + Math.floor(k / nw)]);
  } else {
    const ky = bilinear(h, nh), kx = bilinear(w, nw), rows = new Float64Array(nh * w);
    ky.forEach(([lo, hi, t], y) => { for (let x = 0; x < w; x++) rows[y * w + x] = (1 - t) * a[lo * w + x] + t * a[hi * w + x]; });
    small = new Float32Array(nh * nw);
    for (let y = 0; y < nh; y++) kx.forEach(([lo, hi, t], x) => { small[y * nw + x] = (1 - t) * rows[y * w + lo] + t * rows[y * w + hi]; });
  }
  const middle = Float32Array.from(small).sort()[(small.length - 1) >> 1]; // the lower median, as torch's
  const input = new Float32Array(2 * S * S);
  for (let y = 0; y < nh; y++) {
    for (let x = 0; x < nw; x++) {
      input[y * S + x] = f32(small[y * nw + x] - middle);
      input[S * S + y * S + x] = 1;
    }
  }
  return { input, scale };
}

// frame.decode for one picture: the finder's outputs (heat logits [g * g], log size and offset [2, g * g]) -> the
// top MAX_FOUND 3x3 peaks of the heatmap, highest first: {boxes: [x0, y0, x1, y1] in input px, scores}.
export function decode(heat, size, offset, g) {
  const n = g * g, p = Float32Array.from(heat, (v) => f32(1 / f32(1 + f32(Math.exp(-v)))));
  const peaks = new Float32Array(n);
  for (let y = 0; y < g; y++) {
    for (let x = 0; x < g; x++) {
      let top = 0; // the 3x3 maximum, edges repeated (maximum_filter's mode "nearest")
      for (let dy = -1; dy <= 1; dy++) {
        for (let dx = -1; dx <= 1; dx++) top = Math.max(top, p[Math.min(g - 1, Math.max(0, y + dy)) * g + Math.min(g - 1, Math.max(0, x + dx))]);
      }
      peaks[y * g + x] = top === p[y * g + x] ? p[y * g + x] : 0;
    }
  }
  const order = [...peaks.keys()].sort((i, j) => peaks[j] - peaks[i] || i - j).slice(0, K.MAX_FOUND);
  const boxes = order.map((i) => {
    const cx = f32(f32((i % g) + offset[i]) * K.STRIDE), cy = f32(f32(Math.floor(i / g) + offset[n + i]) * K.STRIDE);
    const bw = f32(Math.exp(size[i])), bh = f32(Math.exp(size[n + i]));
    return [f32(cx - f32(bw / 2)), f32(cy - f32(bh / 2)), f32(cx + f32(bw / 2)), f32(cy + f32(bh / 2))];
  });
  return { boxes, scores: order.map((i) => peaks[i]) };
}

function iou(a, b) { // frame.iou of two boxes
  const iw = Math.max(0, f32(Math.min(a[2], b[2]) - Math.max(a[0], b[0])));
  const ih = Math.max(0, f32(Math.min(a[3], b[3]) - Math.max(a[1], b[1])));
  const inter = f32(iw * ih), areaOf = (x) => f32(f32(x[2] - x[0]) * f32(x[3] - x[1]));
  return f32(inter / Math.max(f32(f32(areaOf(a) + areaOf(b)) - inter), f32(1e-9)));
}

// read.distinct: of boxes sorted by score, highest first, which are digits of their own: not overlapping a higher
// kept box by more than SAME IoU, nor centred inside one.
export function distinct(boxes) {
  const keep = [];
  boxes.forEach((b, i) => {
    const cx = f32(f32(b[0] + b[2]) / 2), cy = f32(f32(b[1] + b[3]) / 2);
    const over = (o) => iou(b, o) > f32(K.SAME) || (o[0] <= cx && cx <= o[2] && o[1] <= cy && cy <= o[3]);
    keep.push(!boxes.slice(0, i).some((o, j) => keep[j] && over(o)));
  });
  return keep;
}

// frame.zoomed: grey picture g prepared at INPUT / ZOOM px, centred on a sheet of its own paper ZOOM times its size
// (the mask 1 over g only); origin < 0: the sheet's top left in g's px.
export function zoomed(g) {
  const S = K.INPUT, n = Math.max(1, pyRound(S / K.ZOOM)), inner = prepare(g, n);
  const nh = Math.max(1, pyRound(g.h * inner.scale)), nw = Math.max(1, pyRound(g.w * inner.scale));
  const sh = Math.min(S, pyRound(nh * K.ZOOM)), sw = Math.min(S, pyRound(nw * K.ZOOM));
  const y0 = Math.floor((sh - nh) / 2), x0 = Math.floor((sw - nw) / 2), input = new Float32Array(2 * S * S);
  for (let y = 0; y < nh; y++) for (let x = 0; x < nw; x++) input[(y0 + y) * S + x0 + x] = inner.input[y * n + x];
  for (let y = y0; y < y0 + nh; y++) input.fill(1, S * S + y * S + x0, S * S + y * S + x0 + nw);
  const origin = [-x0 / inner.scale, -y0 / inner.scale];
  return { input, scale: inner.scale, origin, inner: [false, false, false, false], zoomed: true };
}

// frame.views: the picture whole, zoomed out (zoomed) and, when its longer side is at least LOOK px, up to 2 x 2
// overlapping tiles of TILE of that side, each as the finder sees it ({input, scale, origin, inner, zoomed}).
export function views(g) {
  const out = [{ ...prepare(g), origin: [0, 0], inner: [false, false, false, false] }, zoomed(g)];
  if (Math.max(g.h, g.w) < K.LOOK) return out;
  const t = Math.ceil(K.TILE * Math.max(g.h, g.w));
  const starts = [g.h, g.w].map((side) => (side <= t ? [0] : [0, side - t]));
  for (const y of starts[0]) {
    for (const x of starts[1]) {
      const tile = prepare(cut(g, y, Math.min(y + t, g.h), x, Math.min(x + t, g.w), 1));
      out.push({ ...tile, origin: [x, y], inner: [x > 0, y > 0, x + t < g.w, y + t < g.h] });
    }
  }
  return out;
}

// frame.merge: the views' finds (decode's, one per view) at DETECT or more, in the picture's px, the best
// MAX_FOUND highest first: the whole view's, the zoomed view's at least LARGE px tall in the whole view, and a
// tile's under SMALL px in the whole view, off its inner edges.
export function merge(seen, decoded) {
  const whole = seen[0].scale, b = [], s = [];
  seen.forEach((f, v) => {
    const { boxes, scores } = decoded[v];
    boxes.forEach((box, i) => {
      if (!(scores[i] >= f32(K.DETECT))) return;
      const tall = f32(f32(f32(box[3] - box[1]) * f32(whole)) / f32(f.scale));
      if (f.zoomed) {
        if (!(tall >= K.LARGE)) return;
      } else if (v > 0) {
        if (!(tall < K.SMALL)) return;
        const off = [box[0] > K.STRIDE, box[1] > K.STRIDE, box[2] < K.INPUT - K.STRIDE, box[3] < K.INPUT - K.STRIDE];
        if (f.inner.some((side, k) => side && !off[k])) return;
      }
      b.push(box.map((val, c) => f32(f32(val / f32(f.scale)) + f32(f.origin[c % 2]))));
      s.push(scores[i]);
    });
  });
  const order = s.map((_, i) => i).sort((i, j) => s[j] - s[i] || i - j).slice(0, K.MAX_FOUND);
  return { boxes: order.map((i) => b[i]), scores: order.map((i) => s[i]) };
}

// Reader.find: the digits found in grey picture g by `run` (the finder, one view at a time): {boxes, found}.
export async function findDigits(g, run) {
  const seen = views(g), decoded = [];
  for (const v of seen) {
    const out = await run(v.input);
    decoded.push(decode(out.heat, out.size, out.offset, out.grid));
  }
  const { boxes, scores } = merge(seen, decoded), most = [g.w, g.h, g.w, g.h];
  const kept = [], found = [];
  boxes.forEach((b, i) => {
    const box = b.map((v, c) => Math.min(most[c], Math.max(0, v)));
    if (f32(box[2] - box[0]) >= 1 && f32(box[3] - box[1]) >= 1) { kept.push(box); found.push(scores[i]); }
  });
  const keep = distinct(kept);
  return { boxes: kept.filter((_, i) => keep[i]), found: found.filter((_, i) => keep[i]) };
}

function percentile(sorted, q) { // numpy's default (linear) percentile of sorted values
  const at = (q / 100) * (sorted.length - 1), lo = Math.floor(at), hi = Math.min(lo + 1, sorted.length - 1);
  const t = at - lo, d = sorted[hi] - sorted[lo];
  return t >= 0.5 ? sorted[hi] - d * (1 - t) : sorted[lo] + d * t;
}

function cut({ a, w }, r0, r1, c0, c1, step) { // g[r0:r1:step, c0:c1:step], bounds already within g
  const h = Math.max(0, Math.ceil((r1 - r0) / step)), cw = Math.max(0, Math.ceil((c1 - c0) / step));
  const out = new Float32Array(h * cw);
  for (let y = 0; y < h; y++) for (let x = 0; x < cw; x++) out[y * cw + x] = a[(r0 + y * step) * w + c0 + x * step];
  return { a: out, h, w: cw };
}

// read.ink_of: the ink in `box` of grey picture g, white on black in [0, 1] ({a, h, w}, at most about CROP_SIDE px),
// against the paper around it, in the polarity with the stronger ink, of it only the parts reaching into the box's
// core; null when there is none.
export function inkOf(g, box) {
  const [x0, y0, x1, y1] = box, bw = x1 - x0, bh = y1 - y0, M = K.MARGIN;
  const step = Math.max(1, Math.ceil((Math.max(bw, bh) * (1 + 2 * M)) / K.CROP_SIDE));
  const ctx = cut(g, Math.max(0, Math.trunc(y0 - bh / 2)), Math.min(g.h, Math.trunc(y1 + bh / 2) + 1),
    Math.max(0, Math.trunc(x0 - bw / 2)), Math.min(g.w, Math.trunc(x1 + bw / 2) + 1), step);
  const crop = cut(g, Math.max(0, Math.trunc(y0 - M * bh)), Math.min(g.h, Math.ceil(y1 + M * bh)),
    Math.max(0, Math.trunc(x0 - M * bw)), Math.min(g.w, Math.ceil(x1 + M * bw)), step);
  if (!crop.a.length || !ctx.a.length) return null;
  const paper = f32(median(ctx.a));
  const dark = crop.a.map((v) => paper - v), light = crop.a.map((v) => v - paper);
  const sorted = (s) => Float32Array.from(s).sort();
  const s = percentile(sorted(dark), 98) >= percentile(sorted(light), 98) ? dark : light;
  const top = f32(percentile(sorted(s), 99.5));
  if (top <= 0) return null;
  const floor = f32(K.INK_FLOOR), rest = f32(1 - K.INK_FLOOR);
  const ink = s.map((v) => Math.min(1, Math.max(0, f32(f32(f32(v / top) - floor) / rest))));
  const parts = label(ink, crop.h, crop.w), reach = new Set();
  const [r0, r1] = CORE.map((f, i) => Math.min(crop.h, pyRound(f * crop.h) + i));
  const [c0, c1] = CORE.map((f, i) => Math.min(crop.w, pyRound(f * crop.w) + i));
  for (let y = r0; y < r1; y++) for (let x = c0; x < c1; x++) if (parts[y * crop.w + x]) reach.add(parts[y * crop.w + x]);
  ink.forEach((_, i) => { if (!reach.has(parts[i])) ink[i] = 0; });
  return ink.some((v) => v > 0) ? { a: ink, h: crop.h, w: crop.w } : null;
}

function label(ink, h, w) { // ndimage.label of ink > 0: 4-connected parts numbered from 1, 0 for paper
  const parts = new Int32Array(h * w);
  let next = 0;
  for (let start = 0; start < h * w; start++) {
    if (!(ink[start] > 0) || parts[start]) continue;
    const stack = [start];
    parts[start] = ++next;
    while (stack.length) {
      const i = stack.pop(), y = Math.floor(i / w), x = i % w;
      for (const [ok, j] of [[y > 0, i - w], [y < h - 1, i + w], [x > 0, i - 1], [x < w - 1, i + 1]]) {
        if (ok && ink[j] > 0 && !parts[j]) { parts[j] = next; stack.push(j); }
      }
    }
  }
  return parts;
}

// read.reading_order: indices of boxes in lines (top to bottom; a box joins a line whose vertical middle it
// covers), each line left to right.
export function readingOrder(boxes) {
  const mid = (b) => f32(f32(b[1] + b[3]) / 2);
  const order = [...boxes.keys()].sort((i, j) => mid(boxes[i]) - mid(boxes[j]) || i - j);
  const lines = [];
  for (const i of order) {
    const line = lines.find((l) => { const m = f32(median(l.map((j) => mid(boxes[j])))); return boxes[i][1] <= m && m <= boxes[i][3]; });
    if (line) line.push(i); else lines.push([i]);
  }
  return lines.map((l) => l.sort((i, j) => boxes[i][0] - boxes[j][0] || 0));
}

// read._number: the digits of each line as a word, a gap wider than NUMBER_GAP digit heights starting another.
export function numberOf(boxes, digits, lines) {
  return lines.map((line) => line.map((cur, k) => {
    if (k === 0) return String(digits[cur]);
    const prev = line[k - 1], b = boxes[prev], c = boxes[cur];
    const height = Math.max(f32(b[3] - b[1]), f32(c[3] - c[1]));
    return (f32(c[0] - b[2]) > f32(f32(K.NUMBER_GAP) * height) ? " " : "") + String(digits[cur]);
  }).join("")).join(" ");
}

// read.digit_like: how much a found box is a digit: its finder peak times its digit score to SCORE_POWER (float32)
export function digitLike(found, score) {
  return f32(f32(found) * f32(Math.pow(f32(score), f32(K.SCORE_POWER))));
}

// Reader.read: grey picture g's digits found by `run`, read by `model` (model.js) and kept where digit-like,
// as POST /v1/read answers:
// {number, width, height, digits: [{box, digit, label, probability, probabilities, digit_score, is_digit, found,
// seen}]} in reading order.
export async function readPicture(g, run, model) {
  const { boxes, found } = await findDigits(g, run);
  const kept = [], fields = [];
  boxes.forEach((box, i) => {
    const ink = inkOf(g, box), seen = ink && toField(cropToInk(ink));
    if (seen) { kept.push(i); fields.push(seen); }
  });
  const all = fields.length ? await model.readEach(fields) : [];
  const taken = all.map((_, k) => k).filter((k) => digitLike(found[kept[k]], all[k].digit_score) >= K.IS_DIGIT);
  const keptBoxes = taken.map((k) => boxes[kept[k]]), digits = taken.map((k) => all[k].digit);
  const lines = readingOrder(keptBoxes);
  return {
    number: numberOf(keptBoxes, digits, lines), width: g.w, height: g.h,
    digits: lines.flat().map((j) => {
      const k = taken[j];
      return { box: keptBoxes[j], found: found[kept[k]], seen: fields[k], ...all[k] };
    }),
  };
}

// The finder at `url` on onnxruntime-web (`ort`): run(input) -> {heat, size, offset, grid}, one run at a time.
export async function loadFinder(ort, url) {
  const r = await fetch(url);
  if (!r.ok) throw new Error(`${url}: ${r.status} ${r.statusText}`);
  const session = await ort.InferenceSession.create(new Uint8Array(await r.arrayBuffer()), { executionProviders: ["wasm"] });
  if (session.inputNames.join() !== K.INPUT_NAME || session.outputNames.join() !== K.OUTPUTS.join()) {
    throw new Error(`${url} is not a mnistlab finder (input ${K.INPUT_NAME}, outputs ${K.OUTPUTS.join(", ")})`);
  }
  let queue = Promise.resolve();
  const once = async (input) => {
    const out = await session.run({ [K.INPUT_NAME]: new ort.Tensor("float32", input, [1, 2, K.INPUT, K.INPUT]) });
    const [heat, size, offset] = K.OUTPUTS.map((name) => out[name]);
    return { heat: heat.data, size: size.data, offset: offset.data, grid: heat.dims[3] };
  };
  return (input) => (queue = queue.catch(() => {}).then(() => once(input)));
}

// A picture file's grey plane ({a, h, w}), decoded by the browser as it is stored (no colour management).
export async function pictureOf(file) {
  let bitmap;
  try {
    bitmap = await createImageBitmap(file, { colorSpaceConversion: "none", premultiplyAlpha: "none" });
  } catch {
    throw new Error("not an image this browser can open");
  }
  if (bitmap.width * bitmap.height > K.MAX_PIXELS) {
    throw new Error(`the picture has ${bitmap.width}x${bitmap.height} pixels, more than the ${K.MAX_PIXELS} read`);
  }
  const c = new OffscreenCanvas(bitmap.width, bitmap.height), ctx = c.getContext("2d");
  ctx.drawImage(bitmap, 0, 0);
  bitmap.close();
  return greyOf(ctx.getImageData(0, 0, c.width, c.height));
}
