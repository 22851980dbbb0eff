// "Read a photo" on the served page: a picture chosen or dropped goes to /v1/read; the page shows it with every
// digit found boxed and its reading written by the box, and the number in #number.
const $ = (id) => document.getElementById(id);
const area = $("photo-area"), input = $("photo"), view = $("photo-view"), img = $("photo-img");
const number = $("number"), message = $("read-message");
let sequence = 0;

function clear() {
  number.textContent = "";
  message.textContent = "";
  for (const box of view.querySelectorAll(".box")) box.remove();
}

// One box per digit, placed in percent of the picture (the answer's width and height: its pixels as the server
// read them), so that it stays on its digit at any size the picture is shown.
function showBoxes(out) {
  for (const d of out.digits) {
    const [x0, y0, x1, y1] = d.box;
    const box = document.createElement("div");
    box.className = d.is_digit ? "box" : "box not-digit";
    box.dataset.digit = d.label;
    box.title = `${d.label}: probability ${d.probability.toFixed(2)}, digit score ${d.digit_score.toFixed(2)}`;
    Object.assign(box.style, {
      left: (100 * x0 / out.width) + "%", top: (100 * y0 / out.height) + "%",
      width: (100 * (x1 - x0) / out.width) + "%", height: (100 * (y1 - y0) / out.height) + "%",
    });
    const label = document.createElement("span");
    label.textContent = d.label;
    box.append(label);
    view.append(box);
  }
}

async function read(file) {
  const mine = ++sequence;
  clear();
  if (img.src) URL.revokeObjectURL(img.src);
  img.src = URL.createObjectURL(file);
  view.hidden = false;
  message.textContent = "reading…";
  try {
    const r = await fetch("/v1/read", { method: "POST", headers: { "Content-Type": file.type || "application/octet-stream" }, body: file });
    const out = await r.json();
    if (mine !== sequence) return; // another picture has been chosen since
    message.textContent = r.ok ? (out.digits.length ? "" : "no digit found") : (out.error || r.statusText);
    if (!r.ok) return;
    number.textContent = out.number;
    showBoxes(out);
  } catch (err) {
    if (mine === sequence) message.textContent = "no answer from the server: " + err;
  }
}

input.addEventListener("change", () => {
  if (input.files[0]) read(input.files[0]);
  input.value = "";
});
area.addEventListener("dragover", (e) => { e.preventDefault(); area.classList.add("dropping"); });
area.addEventListener("dragleave", () => area.classList.remove("dropping"));
area.addEventListener("drop", (e) => {
  e.preventDefault();
  area.classList.remove("dropping");
  const file = e.dataTransfer.files[0];
  if (file) read(file);
});
