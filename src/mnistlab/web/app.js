// The static drawing page (mnistlab export --web): strokes on #pad, read in the page by the ONNX model with
// onnxruntime-web, shown as the served page shows its answers (pad.js); and "Read a photo" (read.js), every digit
// in a picture found by the finder (finder.onnx) and read in the page (find.js). No server: any static host serves it.
import * as ort from "./ort/ort.wasm.bundle.min.mjs";
import { drawingPad, makeBars, showAnswer } from "./pad.js";
import { grayOf, prepare } from "./prepare.js";
import { loadModel } from "./model.js";
import { loadFinder, pictureOf, readPicture } from "./find.js";
import { readPhotos } from "./read.js";

const DEBOUNCE_MS = 150; // live reading while drawing: at most one per pause this long
// One thread: threads need SharedArrayBuffer, which needs cross-origin isolation (COOP/COEP headers), which a
// plain static host does not send.
ort.env.wasm.numThreads = 1;
const $ = (id) => document.getElementById(id);
const pad = $("pad");
const el = { prediction: $("prediction"), message: $("message"), seen: $("seen"), bars: $("probabilities") };
let timer = null, sequence = 0, model = null, pending = 0; // pending: readings not yet shown (data-pending)

const drawn = drawingPad(pad, {
  onDraw: () => { clearTimeout(timer); timer = setTimeout(read, DEBOUNCE_MS); },
  onEnd: () => { clearTimeout(timer); read(); },
});

function seenUrl(seen) { // the 28x28 image as a PNG data URL, as the server sends it
  const c = document.createElement("canvas");
  c.width = c.height = 28;
  const g = c.getContext("2d"), img = g.createImageData(28, 28);
  seen.forEach((v, i) => { img.data.set([Math.round(v * 255), Math.round(v * 255), Math.round(v * 255), 255], 4 * i); });
  g.putImageData(img, 0, 0);
  return c.toDataURL("image/png");
}

async function read() {
  if (!drawn.inked || !model) return;
  const mine = ++sequence;
  const reading = prepare(grayOf(pad.getContext("2d").getImageData(0, 0, pad.width, pad.height)));
  if (reading.error) {
    el.prediction.textContent = "";
    el.message.textContent = reading.error;
    makeBars(el.bars, null, model.classes);
    return;
  }
  document.body.dataset.pending = ++pending;
  const out = await model.predict([reading]).finally(() => { document.body.dataset.pending = --pending; });
  if (mine !== sequence) return; // drawn on, or cleared, since
  window.mnistlabAnswer = { ...out, seen: Array.from(out.seen) }; // the full answer, for tests and the curious
  showAnswer(el, { ...out, seen: seenUrl(out.seen) }, model.classes);
}

function reset() {
  sequence++;
  clearTimeout(timer);
  el.prediction.textContent = el.message.textContent = "";
  el.seen.removeAttribute("src");
  window.mnistlabAnswer = null;
  makeBars(el.bars, null, model ? model.classes : [...Array(10).keys()].map(String));
}

$("clear").addEventListener("click", () => { drawn.blank(); reset(); });
drawn.blank();
reset();
el.message.textContent = "loading the model…";
const loaded = loadModel(ort, "model.onnx");
loaded.then((m) => {
  model = m;
  el.message.textContent = "";
  makeBars(el.bars, null, m.classes);
  document.body.dataset.ready = "true";
  read(); // anything drawn while it loaded
}).catch((err) => { el.message.textContent = "cannot load the model: " + err; });

// "Read a photo": the finder loaded on the first picture (its 1 MB is not fetched for a page only drawn on)
let finder = null;
readPhotos(async (file) => {
  finder ??= loadFinder(ort, "finder.onnx");
  const [run, m] = await Promise.all([
    finder.catch((err) => { finder = null; throw new Error("cannot load the finder: " + err.message); }),
    loaded.catch((err) => { throw new Error("cannot load the model: " + err.message); }),
  ]);
  return readPicture(await pictureOf(file), run, m);
});
