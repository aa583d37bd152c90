// The koala page: send the chosen photo to /api/colorize and show gray input, result and a slider.
"use strict";

const $ = (id) => document.getElementById(id);
const app = $("app");
const maxBytes = parseFloat(app.dataset.maxUploadMb) * 1024 * 1024;
let photo = null;       // the File being colorized
let inputUrl = null;    // object URLs, revoked when replaced
let resultUrl = null;
let pending = null;     // debounce timer for the sliders
let generation = 0;     // only the latest request may update the page

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
  if (inputUrl) URL.revokeObjectURL(inputUrl);
  inputUrl = URL.createObjectURL(file);
  $("input-img").src = inputUrl;
  $("compare-before").src = inputUrl;
  colorize();
}

function query() {
  const params = new URLSearchParams({ saturation: $("saturation").value });
  const temperature = $("temperature");
  if (temperature && temperature.dataset.touched) params.set("temperature", temperature.value);
  return params.toString();
}

async function colorize() {
  if (!photo) return;
  const mine = ++generation;
  const form = new FormData();
  form.append("image", photo);
  $("status").textContent = "Colorizing…";
  const started = performance.now();
  try {
    const response = await fetch(`/api/colorize?${query()}`, { method: "POST", body: form });
    if (mine !== generation) return;
    if (!response.ok) {
      let reason = `HTTP ${response.status}`;
      try { reason = (await response.json()).error || reason; } catch (e) { /* not JSON */ }
      throw new Error(reason);
    }
    const blob = await response.blob();
    if (mine !== generation) return;
    if (resultUrl) URL.revokeObjectURL(resultUrl);
    resultUrl = URL.createObjectURL(blob);
    $("result-img").src = resultUrl;
    $("compare-after").src = resultUrl;
    const link = $("download");
    link.href = resultUrl;
    link.download = photo.name.replace(/\.[^.]*$/, "") + "_color.png";
    link.hidden = false;
    $("results").hidden = false;
    $("compare-section").hidden = false;
    $("status").textContent = `Done in ${Math.round(performance.now() - started)} ms.`;
  } catch (error) {
    if (mine !== generation) return;
    $("status").textContent = "";
    showError(`${photo.name}: ${error.message}`);
  }
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

$("saturation").addEventListener("input", (e) => { $("saturation-value").textContent = parseFloat(e.target.value).toFixed(2); later(); });
if ($("temperature")) {
  $("temperature").addEventListener("input", (e) => {
    e.target.dataset.touched = "true";
    $("temperature-value").textContent = e.target.value;
    later();
  });
}
$("compare-range").addEventListener("input", (e) => $("compare").style.setProperty("--pos", `${e.target.value}%`));
