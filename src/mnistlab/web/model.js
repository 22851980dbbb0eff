// The exported ONNX model in the page: its metadata read from the file, and the answer scored as mnistlab's
// Classifier scores it (calibration.calibrated and digit_score, Classifier.prediction's choice of reading).

const PREFER = 0.05; // classifier.PREFER: a reading wins over later ones unless their digit score is this much higher

// The metadata_props (ModelProto field 14: key 1, value 2) of an ONNX file's bytes, without a protobuf library.
export function onnxMetadata(bytes) {
  const out = {}, text = new TextDecoder();
  for (const [field, start, end] of fields(bytes, 0, bytes.length)) {
    if (field !== 14) continue;
    const entry = {};
    for (const [f, s, e] of fields(bytes, start, end)) entry[f] = text.decode(bytes.subarray(s, e));
    if (entry[1] !== undefined) out[entry[1]] = entry[2] ?? "";
  }
  return out;
}

function* fields(bytes, start, end) { // [field number, start, end] of each length-delimited field; others skipped
  let i = start;
  const varint = () => {
    let v = 0, m = 1, b;
    do { b = bytes[i++]; v += (b & 127) * m; m *= 128; } while (b & 128 && i < end);
    return v;
  };
  while (i < end) {
    const key = varint(), wire = key % 8;
    if (wire === 0) { varint(); continue; }
    const n = wire === 2 ? varint() : wire === 1 ? 8 : wire === 5 ? 4 : -1;
    if (n < 0 || i + n > end) throw new Error("model.onnx is not an ONNX file");
    if (wire === 2) yield [Math.floor(key / 8), i, i + n];
    i += n;
  }
}

function number(text, fallback, positive) { // classifier._number: a finite number, else the default
  const v = Number(text);
  return text !== undefined && text !== "" && Number.isFinite(v) && (v > 0 || !positive) ? v : fallback;
}

// One row of log-probabilities at the temperature, renormalised (calibration.calibrated, then exp).
function calibrated(row, temperature) {
  const z = row.map((v) => v / temperature), top = Math.max(...z);
  const total = z.reduce((s, v) => s + Math.exp(v - top), 0);
  return z.map((v) => Math.exp(v - top) / total);
}

function digitScore(probs) { // calibration.digit_score: the top probability rescaled from [1/C, 1] to [0, 1]
  const c = probs.length;
  return c < 2 ? 1 : Math.min(1, Math.max(0, (Math.max(...probs) - 1 / c) / (1 - 1 / c)));
}

// The model at `url`, run by onnxruntime-web (`ort`): {classes, predict(readings)}.
export async function loadModel(ort, url) {
  const r = await fetch(url);
  if (!r.ok) throw new Error(`${url}: ${r.status} ${r.statusText}`);
  const bytes = new Uint8Array(await r.arrayBuffer());
  const meta = onnxMetadata(bytes);
  const session = await ort.InferenceSession.create(bytes, { executionProviders: ["wasm"] });
  const temperature = number(meta.temperature, 1, true), threshold = number(meta.digit_threshold, 0, false);
  let classes = null;
  try { classes = JSON.parse(meta.classes); } catch { /* older files name none */ }
  let queue = Promise.resolve();

  // The calibrated probabilities of 28x28 images (Float32Arrays), one row each, in one run (Classifier.probabilities).
  async function probabilities(seen) {
    const x = new Float32Array(seen.length * 784);
    seen.forEach((s, i) => x.set(s, i * 784));
    const out = await session.run({ [session.inputNames[0]]: new ort.Tensor("float32", x, [seen.length, 1, 28, 28]) });
    const logp = out[session.outputNames[0]], k = logp.dims[1];
    if (!Array.isArray(classes) || classes.length !== k) classes = [...Array(k).keys()].map(String);
    return seen.map((_, i) => calibrated(Array.from(logp.data.subarray(i * k, (i + 1) * k)), temperature));
  }

  // The answer for readings [{kind, seen}] (as POST /v1/predict gives it, seen still the 28x28 floats).
  async function scored(readings) {
    const probs = await probabilities(readings.map((c) => c.seen));
    const scores = probs.map(digitScore), top = Math.max(...scores);
    const best = scores.findIndex((s) => s >= top - PREFER); // the first (most inclusive) of the best
    const row = probs[best], digit = row.indexOf(Math.max(...row));
    return {
      digit, label: classes[digit], probabilities: row, digit_score: scores[best],
      is_digit: scores[best] >= threshold, candidate: readings[best].kind, seen: readings[best].seen,
    };
  }
  return {
    get classes() { return classes ?? [...Array(10).keys()].map(String); },
    temperature, threshold,
    predict: (readings) => (queue = queue.catch(() => {}).then(() => scored(readings))), // one run at a time on the session
    // Each image read on its own (as POST /v1/read reads each digit): {digit, label, probability, probabilities,
    // digit_score, is_digit}
    readEach: (seen) => (queue = queue.catch(() => {}).then(() => probabilities(seen))).then((rows) => rows.map((row) => {
      const digit = row.indexOf(Math.max(...row)), score = digitScore(row);
      return { digit, label: classes[digit], probability: row[digit], probabilities: row, digit_score: score, is_digit: score >= threshold };
    })),
  };
}
