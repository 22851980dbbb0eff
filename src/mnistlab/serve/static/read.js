// "Read a photo", on both pages: a picture chosen or dropped is read (on the served page by the server, POST /v1/read;
// on the static page, export --web, in the page by its app.js's reader), shown with every digit found boxed and its
// reading written by the box, and the number in #number.
const $ = (id) => document.getElementById(id);
const area = $("photo-area"), input = $("photo"), view = $("photo-view"), img = $("photo-img");
const number = $("number"), message = $("read-message");

function clear() {
  number.textContent = "";
  message.textContent = "";
  for (const box of view.querySelectorAll(".box")) box.remove();
}

// One box per digit, placed in percent of the picture (the answer's width and height: the picture's pixels as
// read), so that it stays on its digit at any size the picture is shown.
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

// The server's reading of a picture file (POST /v1/read's answer); its refusal, or no answer, as an Error.
export async function askServer(file) {
  let r, out;
  try {
    r = await fetch("v1/read", { method: "POST", headers: { "Content-Type": file.type || "application/octet-stream" }, body: file });
    out = await r.json();
  } catch (err) {
    throw new Error("no answer from the server: " + err);
  }
  if (!r.ok) throw new Error(out.error || r.statusText);
  return out;
}

// "Read a photo" reading each picture with `reader` (a file -> /v1/read's answer; an Error says why there is none).
export function readPhotos(reader) {
  let sequence = 0;
  async function read(file) {
    const mine = ++sequence;
    clear();
    if (img.src) URL.revokeObjectURL(img.src);
    img.src = URL.createObjectURL(file);
    view.hidden = false;
    message.textContent = "reading…";
    try {
      const out = await reader(file);
      if (mine !== sequence) return; // another picture has been chosen since
      window.mnistlabReading = out; // the whole answer, for tests and the curious
      message.textContent = out.digits.length ? "" : "no digit found";
      number.textContent = out.number;
      showBoxes(out);
    } catch (err) {
      if (mine === sequence) message.textContent = err.message;
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
}

// The served page reads with the server; the static one (class="static") passes its own reader (web/app.js).
if (!document.documentElement.classList.contains("static")) readPhotos(askServer);
