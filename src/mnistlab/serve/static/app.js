// The served drawing page: strokes on #pad (pad.js), predictions from /v1/predict while drawing, explanations.
import { drawingPad, makeBars, showAnswer } from "./pad.js";
import "./read.js"; // "Read a photo": /v1/read

const DEBOUNCE_MS = 150; // live prediction while drawing: at most one request per pause this long
const $ = (id) => document.getElementById(id);
const pad = $("pad");
const prediction = $("prediction"), message = $("message"), seen = $("seen"), bars = $("probabilities");
const heat = $("heat"), hctx = heat.getContext("2d"), units = $("units"), uctx = units.getContext("2d");
const layerSelect = $("layer"), rfText = $("rf"), explain = $("explain");
let timer = null, sequence = 0, clears = 0, layers = [];
let lastSeen = null, lastHeat = null, lastBox = null, lastBody = null;
let classes = [...Array(10).keys()].map(String); // the served model's class names (GET /v1/model): digits by default

function reset() {
  sequence++;
  clears++; // a drawing still being encoded (send) belongs to the page before this reset
  clearTimeout(timer);
  prediction.textContent = "";
  message.textContent = "";
  seen.removeAttribute("src");
  lastSeen = lastHeat = lastBox = lastBody = null;
  delete heat.dataset.digit;
  makeBars(bars, null, classes);
  drawHeat();
}

const drawn = drawingPad(pad, {
  onDraw: schedule,
  onEnd: () => { clearTimeout(timer); send(); },
});

function schedule() {
  clearTimeout(timer);
  timer = setTimeout(send, DEBOUNCE_MS);
}

function send() {
  if (!drawn.inked) return;
  const page = clears;
  pad.toBlob((blob) => { if (page === clears) post(blob, "image/png"); }, "image/png");
}

async function post(body, type) {
  const mine = ++sequence;
  lastBody = [body, type];
  try {
    const r = await fetch("/v1/predict", { method: "POST", headers: { "Content-Type": type }, body });
    const out = await r.json();
    if (mine !== sequence) return; // a newer drawing has been sent since
    if (!r.ok) {
      prediction.textContent = "";
      message.textContent = out.error || r.statusText;
      makeBars(bars, null, classes);
      return;
    }
    showAnswer({ message, prediction, seen, bars }, out, classes);
    if (explain.open) explainIt();
  } catch (err) {
    if (mine === sequence) message.textContent = "no answer from the server: " + err;
  }
}

async function explainIt() {
  if (!lastBody) return;
  const mine = sequence;
  const r = await fetch("/v1/explain", { method: "POST", headers: { "Content-Type": lastBody[1] }, body: lastBody[0] });
  if (!r.ok || mine !== sequence) return;
  const out = await r.json();
  lastHeat = out.heatmap;
  lastSeen = new Image();
  lastSeen.onload = () => { drawHeat(); heat.dataset.digit = out.label; };
  lastSeen.src = out.seen;
}

function drawHeat() {
  const s = heat.width / 28;
  hctx.imageSmoothingEnabled = false;
  hctx.fillStyle = "#000";
  hctx.fillRect(0, 0, heat.width, heat.height);
  if (lastSeen && lastSeen.complete) hctx.drawImage(lastSeen, 0, 0, heat.width, heat.height);
  if (lastHeat) {
    for (let y = 0; y < 28; y++) {
      for (let x = 0; x < 28; x++) {
        const v = lastHeat[y][x];
        if (v > 0.02) {
          hctx.fillStyle = `rgba(255, 40, 20, ${Math.min(0.85, v).toFixed(3)})`;
          hctx.fillRect(x * s, y * s, s, s);
        }
      }
    }
  }
  if (lastBox) {
    hctx.strokeStyle = "#3f3";
    hctx.lineWidth = 2;
    hctx.strokeRect(lastBox.left * s, lastBox.top * s, lastBox.size * s, lastBox.size * s);
  }
}

function currentLayer() {
  return layers.find((l) => l.layer === layerSelect.value);
}

function drawUnits(active) {
  const l = currentLayer();
  uctx.fillStyle = "#222";
  uctx.fillRect(0, 0, units.width, units.height);
  if (!l) return;
  const c = units.width / l.size;
  uctx.strokeStyle = "#555";
  for (let i = 0; i <= l.size; i++) {
    uctx.beginPath(); uctx.moveTo(i * c, 0); uctx.lineTo(i * c, units.height); uctx.stroke();
    uctx.beginPath(); uctx.moveTo(0, i * c); uctx.lineTo(units.width, i * c); uctx.stroke();
  }
  if (active) {
    uctx.fillStyle = "#3f3";
    uctx.fillRect(active[1] * c, active[0] * c, c, c);
  }
}

units.addEventListener("pointermove", (e) => {
  const l = currentLayer();
  if (!l) return;
  const r = units.getBoundingClientRect();
  const row = Math.min(l.size - 1, Math.max(0, Math.floor((e.clientY - r.top) / r.height * l.size)));
  const col = Math.min(l.size - 1, Math.max(0, Math.floor((e.clientX - r.left) / r.width * l.size)));
  // the same geometry as /v1/explain?layer=...: from the project's receptive-field walk (GET /v1/model)
  lastBox = { top: l.offset + row * l.jump, left: l.offset + col * l.jump, size: l.receptive_field };
  rfText.textContent = `${l.layer} unit (${row}, ${col}) sees input rows ${lastBox.top}–${lastBox.top + l.receptive_field - 1}, ` +
    `columns ${lastBox.left}–${lastBox.left + l.receptive_field - 1} (receptive field ${l.receptive_field}×${l.receptive_field})`;
  drawUnits([row, col]);
  drawHeat();
});
units.addEventListener("pointerleave", () => { lastBox = null; rfText.textContent = ""; drawUnits(null); drawHeat(); });
layerSelect.addEventListener("change", () => { lastBox = null; drawUnits(null); drawHeat(); });
explain.addEventListener("toggle", () => { if (explain.open) explainIt(); });

$("clear").addEventListener("click", () => { drawn.blank(); reset(); });
$("upload").addEventListener("change", (e) => {
  const file = e.target.files[0];
  if (!file) return;
  drawn.blank();
  reset();
  post(file, file.type || "application/octet-stream");
  e.target.value = "";
});

fetch("/v1/model").then((r) => r.json()).then((m) => {
  if (Array.isArray(m.classes) && m.classes.length) {
    classes = m.classes;
    if (!prediction.textContent) makeBars(bars, null, classes);
  }
  layers = (m.layers || []).filter((l) => l.receptive_field !== null && l.offset !== null);
  for (const l of layers) {
    const o = document.createElement("option");
    o.value = l.layer;
    o.textContent = `${l.layer} (${l.size}×${l.size}, rf ${l.receptive_field})`;
    layerSelect.append(o);
  }
  drawUnits(null);
}).catch(() => {});

drawn.blank();
reset();
