// The koala page: send the chosen photo to /api/colorize and show gray input, result and a slider.
// With a model that takes hints: click the result to place a colour hint, drag it, recolour or
// delete it; each change shows a fast preview (the photo shrunk to the model's working size in the
// browser, hints scaled with it), then the full-size result, which is what Download saves.
// With a model that has a global-hint input: drop or choose a reference photo (a thumbnail with a
// remove button) or pick palette swatches. With a colour distribution head: a click also asks
// /api/suggest for the likeliest colours there, shown as swatches; picking one sets the hint's colour.
"use strict";

const $ = (id) => document.getElementById(id);
const app = $("app");
const maxBytes = parseFloat(app.dataset.maxUploadMb) * 1024 * 1024;
let photo = null;       // the File being colorized
let inputUrl = null;    // object URLs, revoked when replaced
let resultUrl = null;
let pending = null;     // debounce timer for the sliders
let generation = 0;     // only the latest request may update the page
const supportsHints = app.dataset.supportsHints === "true";
const workingSize = parseInt(app.dataset.imageSize, 10);
let hints = [];         // {x, y, color} in the photo's own pixels
let selected = -1;      // index of the selected hint
let preview = null;     // {blob, scale}: the photo at the working size, made once per photo
const supportsReference = app.dataset.supportsReference === "true";
const supportsSuggest = app.dataset.supportsSuggest === "true";
const maxPalette = parseInt(app.dataset.maxPalette, 10);
let reference = null;   // the reference photo (a File), sent with every request
let referenceUrl = null;
let palette = [];       // "#rrggbb" colours, sent when there is no reference
let suggesting = 0;     // only the latest suggestion request may show its swatches

function showError(message) {
  $("error").textContent = message;
  $("error").hidden = !message;
}

// Hide the previous photo's result, so an error is never shown beside a result of another photo.
function clearResult() {
  ++generation;  // a request still running for the previous photo may not show its result
  if (resultUrl) URL.revokeObjectURL(resultUrl);
  resultUrl = null;
  for (const id of ["result-img", "compare-after"]) $(id).removeAttribute("src");
  $("download").removeAttribute("href");
  $("download").hidden = true;
  $("results").hidden = true;
  $("compare-section").hidden = true;
}

function setPhoto(file) {
  if (!file) return;
  showError("");
  clearResult();
  if (file.size > maxBytes) {
    showError(`${file.name}: too large (${(file.size / 1048576).toFixed(1)} MB; limit ${app.dataset.maxUploadMb} MB)`);
    return;
  }
  photo = file;
  preview = null;
  hints = [];
  selected = -1;
  drawHints();
  if (inputUrl) URL.revokeObjectURL(inputUrl);
  inputUrl = URL.createObjectURL(file);
  $("input-img").src = inputUrl;
  $("compare-before").src = inputUrl;
  colorize();
}

function query() {
  const params = new URLSearchParams();
  const saturation = $("saturation");  // untouched: the server's own
  if (saturation.dataset.touched) params.set("saturation", saturation.value);
  const temperature = $("temperature");
  if (temperature && temperature.dataset.touched) params.set("temperature", temperature.value);
  return params.toString();
}

function requestForm(image, hintList) {
  const form = new FormData();
  form.append("image", image);
  if (hintList.length) form.append("hints", JSON.stringify(hintList));
  if (reference) form.append("reference", reference);
  else if (palette.length) form.append("palette", palette.join(","));
  return form;
}

async function send(url, form) {
  const response = await fetch(url, { method: "POST", body: form });
  if (!response.ok) {
    let reason = `HTTP ${response.status}`;
    try { reason = (await response.json()).error || reason; } catch (e) { /* not JSON */ }
    throw new Error(reason);
  }
  return response;
}

async function post(image, hintList) {
  return (await send(`/api/colorize?${query()}`, requestForm(image, hintList))).blob();
}

function showResult(blob, full) {
  if (resultUrl) URL.revokeObjectURL(resultUrl);
  resultUrl = URL.createObjectURL(blob);
  $("result-img").src = resultUrl;
  $("compare-after").src = resultUrl;
  const link = $("download");
  link.href = resultUrl;
  link.download = photo.name.replace(/\.[^.]*$/, "") + "_color.png";
  link.hidden = !full;  // a preview is never what Download saves
  $("results").hidden = false;
  $("compare-section").hidden = false;
}

// The full-size result; with hints, a preview at the working size first.
async function colorize(withPreview = false) {
  if (!photo) return;
  const mine = ++generation;
  const started = performance.now();
  try {
    if (withPreview) {
      $("status").textContent = "Previewing…";
      const small = await previewPhoto();
      if (mine !== generation) return;
      const scaled = hints.map((h) => ({ x: Math.min(h.x * small.scale, small.width - 1),
                                          y: Math.min(h.y * small.scale, small.height - 1), color: h.color }));
      const blob = await post(small.blob, scaled);
      if (mine !== generation) return;
      showResult(blob, false);
      $("status").dataset.previewMs = Math.round(performance.now() - started);
      $("status").textContent = `Preview in ${$("status").dataset.previewMs} ms; full size…`;
    } else {
      $("status").textContent = "Colorizing…";
    }
    const sent = JSON.stringify(hints);
    const blob = await post(photo, hints);
    if (mine !== generation) return;
    showResult(blob, true);
    $("result-img").dataset.hints = sent;  // which hints the full-size result shows
    const previewNote = withPreview ? `preview in ${$("status").dataset.previewMs} ms, ` : "";
    $("status").textContent = `Done (${previewNote}full size in ${Math.round(performance.now() - started)} ms).`;
  } catch (error) {
    if (mine !== generation) return;
    $("status").textContent = "";
    showError(`${photo.name}: ${error.message}`);
  }
}

// The photo shrunk so its short side is the model's working size (never enlarged), as PNG.
async function previewPhoto() {
  if (preview) return preview;
  const img = $("input-img");
  if (!img.complete || !img.naturalWidth) await img.decode();
  const scale = Math.min(1, workingSize / Math.min(img.naturalWidth, img.naturalHeight));
  const canvas = document.createElement("canvas");
  canvas.width = Math.max(1, Math.round(img.naturalWidth * scale));
  canvas.height = Math.max(1, Math.round(img.naturalHeight * scale));
  canvas.getContext("2d").drawImage(img, 0, 0, canvas.width, canvas.height);
  const blob = await new Promise((done) => canvas.toBlob(done, "image/png"));
  preview = { blob, scale: canvas.width / img.naturalWidth, width: canvas.width, height: canvas.height };
  return preview;
}

// --- hints: placed on the result, drawn as markers, kept in the photo's pixels ---

// Where the picture lies inside the result element (object-fit: contain), in CSS pixels.
function pictureBox() {
  const img = $("result-img"), source = $("input-img");
  const width = img.clientWidth, height = img.clientHeight;
  const scale = Math.min(width / source.naturalWidth, height / source.naturalHeight);
  return { left: img.offsetLeft + (width - source.naturalWidth * scale) / 2,
           top: img.offsetTop + (height - source.naturalHeight * scale) / 2, scale };
}

function toPhoto(event) {
  const box = pictureBox(), frame = $("hint-layer").getBoundingClientRect(), source = $("input-img");
  const x = Math.floor((event.clientX - frame.left - box.left) / box.scale);
  const y = Math.floor((event.clientY - frame.top - box.top) / box.scale);
  return { x: Math.max(0, Math.min(source.naturalWidth - 1, x)), y: Math.max(0, Math.min(source.naturalHeight - 1, y)),
           inside: x >= 0 && y >= 0 && x < source.naturalWidth && y < source.naturalHeight };
}

function drawHints() {
  if (!supportsHints) return;
  const layer = $("hint-layer");
  layer.querySelectorAll(".hint").forEach((m) => m.remove());
  layer.dataset.hints = JSON.stringify(hints);
  $("hint-delete").disabled = selected < 0;
  if (!hints.length || !$("input-img").naturalWidth) return;
  const box = pictureBox();
  hints.forEach((hint, i) => {
    const marker = document.createElement("button");
    marker.type = "button";
    marker.className = "hint" + (i === selected ? " selected" : "");
    marker.style.left = `${box.left + (hint.x + 0.5) * box.scale}px`;
    marker.style.top = `${box.top + (hint.y + 0.5) * box.scale}px`;
    marker.style.background = hint.color;
    marker.title = `hint ${i}: ${hint.color} at (${hint.x}, ${hint.y})`;
    marker.addEventListener("pointerdown", (e) => startDrag(e, i));
    layer.appendChild(marker);
  });
}

// --- suggested colours at a point: swatches beside the colour picker ---

async function suggestAt(x, y, others) {
  if (!supportsSuggest || !photo) return;
  const mine = ++suggesting, box = $("suggestions");
  box.replaceChildren();
  box.dataset.state = "asking";
  try {
    const found = await (await send(`/api/suggest?x=${x}&y=${y}`, requestForm(photo, others))).json();
    if (mine !== suggesting) return;
    for (const item of found) {
      const swatch = document.createElement("button");
      swatch.type = "button";
      swatch.style.background = item.color;
      swatch.dataset.color = item.color;
      swatch.title = `${item.color} (${Math.round(item.probability * 100)}%)`;
      swatch.addEventListener("click", () => {
        $("hint-color").value = item.color;
        $("hint-color").dispatchEvent(new Event("input"));
      });
      box.appendChild(swatch);
    }
    box.dataset.state = "shown";
  } catch (error) {
    if (mine === suggesting) { box.dataset.state = "failed"; showError(`suggestions: ${error.message}`); }
  }
}

function hintsChanged() {
  drawHints();
  clearTimeout(pending);
  pending = setTimeout(() => colorize(true), 100);
}

function select(i) {
  selected = i;
  if (i >= 0) $("hint-color").value = hints[i].color;
  $("hint-delete").disabled = i < 0;
  $("hint-layer").querySelectorAll(".hint").forEach((m, j) => m.classList.toggle("selected", j === i));
}

function startDrag(event, i) {
  event.preventDefault();
  event.stopPropagation();
  select(i);
  const marker = event.target;
  marker.setPointerCapture(event.pointerId);
  let moved = false;
  marker.onpointermove = (e) => {
    const at = toPhoto(e);
    hints[i].x = at.x;
    hints[i].y = at.y;
    moved = true;
    const box = pictureBox();
    marker.style.left = `${box.left + (at.x + 0.5) * box.scale}px`;
    marker.style.top = `${box.top + (at.y + 0.5) * box.scale}px`;
  };
  marker.onpointerup = () => {
    marker.onpointermove = marker.onpointerup = null;
    if (moved) hintsChanged(); else drawHints();
  };
}

function deleteSelected() {
  if (selected < 0) return;
  hints.splice(selected, 1);
  selected = -1;
  hintsChanged();
}

function later() {
  clearTimeout(pending);
  pending = setTimeout(colorize, 250);
}

$("file").addEventListener("change", (e) => setPhoto(e.target.files[0]));
const drop = $("drop");
["dragenter", "dragover"].forEach((t) => drop.addEventListener(t, (e) => { e.preventDefault(); drop.classList.add("over"); }));
["dragleave", "drop"].forEach((t) => drop.addEventListener(t, (e) => { e.preventDefault(); drop.classList.remove("over"); }));
drop.addEventListener("drop", (e) => setPhoto(e.dataTransfer.files[0]));

$("saturation").addEventListener("input", (e) => {
  e.target.dataset.touched = "true";
  $("saturation-value").textContent = parseFloat(e.target.value).toFixed(2);
  later();
});
if ($("temperature")) {
  $("temperature").addEventListener("input", (e) => {
    e.target.dataset.touched = "true";
    $("temperature-value").textContent = e.target.value;
    later();
  });
}
if (supportsHints) {
  $("result-img").addEventListener("click", (e) => {
    const at = toPhoto(e);
    if (!at.inside) return;
    const others = hints.slice();
    hints.push({ x: at.x, y: at.y, color: $("hint-color").value });
    selected = hints.length - 1;
    hintsChanged();
    suggestAt(at.x, at.y, others);
  });
  $("hint-color").addEventListener("input", (e) => {
    if (selected < 0) return;
    hints[selected].color = e.target.value;
    hintsChanged();
  });
  $("hint-delete").addEventListener("click", deleteSelected);
  $("hint-clear").addEventListener("click", () => { hints = []; selected = -1; hintsChanged(); });
  document.addEventListener("keydown", (e) => {
    if ((e.key === "Delete" || e.key === "Backspace") && e.target.tagName !== "INPUT") deleteSelected();
  });
  window.addEventListener("resize", drawHints);
  $("result-img").addEventListener("load", drawHints);
}
// --- a reference photo or a palette: the photo-wide colours ---

function setReference(file) {
  if (referenceUrl) URL.revokeObjectURL(referenceUrl);
  reference = file || null;
  referenceUrl = reference ? URL.createObjectURL(reference) : null;
  if (referenceUrl) $("reference-thumb").src = referenceUrl; else $("reference-thumb").removeAttribute("src");
  $("reference-figure").hidden = !reference;
  $("reference-file").value = "";
  showError("");
  colorize();
}

function drawPalette() {
  const box = $("palette");
  box.replaceChildren();
  palette.forEach((colour, i) => {
    const swatch = document.createElement("span");
    swatch.className = "swatch";
    const input = document.createElement("input");
    input.type = "color";
    input.value = colour;
    input.addEventListener("change", (e) => { palette[i] = e.target.value; colorize(); });
    const remove = document.createElement("button");
    remove.type = "button";
    remove.textContent = "×";
    remove.title = "remove this colour";
    remove.addEventListener("click", () => { palette.splice(i, 1); drawPalette(); colorize(); });
    swatch.append(input, remove);
    box.appendChild(swatch);
  });
  $("palette-add").disabled = palette.length >= maxPalette;
}

if (supportsReference) {
  $("reference-file").addEventListener("change", (e) => setReference(e.target.files[0]));
  const referenceDrop = $("reference-drop");
  ["dragenter", "dragover"].forEach((t) => referenceDrop.addEventListener(t, (e) => { e.preventDefault(); referenceDrop.classList.add("over"); }));
  ["dragleave", "drop"].forEach((t) => referenceDrop.addEventListener(t, (e) => { e.preventDefault(); referenceDrop.classList.remove("over"); }));
  referenceDrop.addEventListener("drop", (e) => setReference(e.dataTransfer.files[0]));
  $("reference-remove").addEventListener("click", () => setReference(null));
  $("palette-add").addEventListener("click", () => { palette.push($("hint-color") ? $("hint-color").value : "#c03030"); drawPalette(); colorize(); });
}
$("compare-range").addEventListener("input", (e) => $("compare").style.setProperty("--pos", `${e.target.value}%`));
