// The drawing pad and the answer's display, shared by the served page (app.js) and the static one (mnistlab export --web).

export const LINE = 22; // stroke width on the 280 px pad: after scaling the digit to 20 px, about MNIST's 2-3 px

// Strokes drawn on `pad` with any pointer (mouse, finger, pen); onDraw while a stroke is drawn, onEnd when it ends.
export function drawingPad(pad, { onDraw, onEnd }) {
  const ctx = pad.getContext("2d");
  let drawing = false, last = null, inked = false;

  function point(e) {
    const r = pad.getBoundingClientRect();
    return [(e.clientX - r.left) * pad.width / r.width, (e.clientY - r.top) * pad.height / r.height];
  }

  function stroke(from, to) {
    ctx.strokeStyle = "#fff";
    ctx.fillStyle = "#fff";
    ctx.lineWidth = LINE;
    ctx.lineCap = ctx.lineJoin = "round";
    ctx.beginPath();
    ctx.moveTo(from[0], from[1]);
    ctx.lineTo(to[0], to[1]);
    ctx.stroke();
    inked = true;
  }

  pad.addEventListener("pointerdown", (e) => {
    e.preventDefault();
    pad.setPointerCapture(e.pointerId);
    drawing = true;
    last = point(e);
    stroke(last, last);
    onDraw();
  });
  pad.addEventListener("pointermove", (e) => {
    if (!drawing) return;
    const events = e.getCoalescedEvents ? e.getCoalescedEvents() : [e];
    for (const ev of events.length ? events : [e]) {
      const p = point(ev);
      stroke(last, p);
      last = p;
    }
    onDraw();
  });
  const end = () => {
    if (!drawing) return;
    drawing = false;
    onEnd(); // the finished stroke is read at once
  };
  pad.addEventListener("pointerup", end);
  pad.addEventListener("pointercancel", end);

  return {
    blank() {
      ctx.fillStyle = "#000";
      ctx.fillRect(0, 0, pad.width, pad.height);
      inked = false;
    },
    get inked() { return inked; },
  };
}

// One bar per class (probs null: empty bars), the most likely marked .best.
export function makeBars(bars, probs, classes) {
  bars.replaceChildren();
  const best = probs ? probs.indexOf(Math.max(...probs)) : -1;
  for (let d = 0; d < (probs ? probs.length : classes.length); d++) {
    const p = probs ? probs[d] : 0;
    const row = document.createElement("div");
    row.style.display = "contents";
    row.setAttribute("role", "listitem");
    row.dataset.digit = d;
    if (d === best) row.className = "best";
    const label = document.createElement("span"); label.textContent = classes[d] ?? String(d);
    const bar = document.createElement("div"); bar.className = "bar";
    const fill = document.createElement("span"); fill.style.width = (100 * p).toFixed(1) + "%"; bar.append(fill);
    const value = document.createElement("span"); value.textContent = (100 * p).toFixed(1) + "%";
    row.append(label, bar, value);
    bars.append(row);
  }
}

// An answer ({label, is_digit, digit_score, probabilities, seen}, as POST /v1/predict gives it) on the page.
export function showAnswer(el, out, classes) {
  // "not a digit" is an answer, not an error: the model read the drawing and found no digit in it
  el.message.textContent = out.is_digit === false ? `digit score ${out.digit_score.toFixed(2)}; best guess ${out.label}` : "";
  el.prediction.textContent = out.is_digit === false ? "not a digit" : out.label;
  el.prediction.classList.toggle("not-digit", out.is_digit === false);
  el.seen.src = out.seen;
  makeBars(el.bars, out.probabilities, classes);
}
