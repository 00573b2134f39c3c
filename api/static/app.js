// The drawing page: canvas and uploads in, prediction and batch progress out.
"use strict";

const PREDICT_DELAY_MS = 150; // wait for a pause in the stroke before asking again
const POLL_MS = 400;
const STROKE_SHARE = 0.08; // pen width as a share of the pad's side, close to MNIST strokes

const $ = (id) => document.getElementById(id);
const pad = $("pad");
const ink = pad.getContext("2d");
const keyInput = $("api-key");

let drawn = false;
let showingUpload = false; // the pad shows an uploaded picture: the next stroke starts afresh
let lastPoint = null;
let timer = null;
let asked = 0; // numbers each prediction request so a slow older answer cannot win

function headers(extra = {}) {
  const key = keyInput.value.trim();
  return key ? { ...extra, Authorization: `Bearer ${key}` } : extra;
}

async function request(url, options = {}) {
  const response = await fetch(url, { ...options, headers: headers(options.headers) });
  const isJson = (response.headers.get("Content-Type") || "").includes("application/json");
  const body = isJson ? await response.json() : await response.text();
  if (!response.ok) {
    const error = isJson && body.error ? body.error : { message: `HTTP ${response.status}` };
    throw new Error(error.message);
  }
  return body;
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function say(text, isError = false) {
  const message = $("message");
  message.textContent = text;
  message.classList.toggle("error", isError);
}

function showVersion(version) {
  if (version) $("model-version").textContent = version;
}

// Drawing -------------------------------------------------------------------------------

function resetPad() {
  ink.fillStyle = "#fff";
  ink.fillRect(0, 0, pad.width, pad.height);
  ink.strokeStyle = "#111";
  ink.fillStyle = "#111";
  ink.lineCap = "round";
  ink.lineJoin = "round";
  ink.lineWidth = pad.width * STROKE_SHARE;
  drawn = false;
  showingUpload = false;
}

async function showUpload(file) {
  resetPad();
  try {
    const picture = await createImageBitmap(file);
    const fit = Math.min(pad.width / picture.width, pad.height / picture.height);
    const width = picture.width * fit;
    const height = picture.height * fit;
    ink.drawImage(picture, (pad.width - width) / 2, (pad.height - height) / 2, width, height);
    picture.close();
    showingUpload = true;
  } catch {
    // A picture the browser cannot show may still be one the server reads: its answer decides.
  }
}

function padPoint(event) {
  const box = pad.getBoundingClientRect();
  return {
    x: ((event.clientX - box.left) / box.width) * pad.width,
    y: ((event.clientY - box.top) / box.height) * pad.height,
  };
}

function strokeTo(point) {
  ink.beginPath();
  if (lastPoint) {
    ink.moveTo(lastPoint.x, lastPoint.y);
    ink.lineTo(point.x, point.y);
    ink.stroke();
  } else {
    ink.arc(point.x, point.y, ink.lineWidth / 2, 0, 2 * Math.PI);
    ink.fill();
  }
  lastPoint = point;
  drawn = true;
}

function onPointerDown(event) {
  event.preventDefault();
  if (showingUpload) resetPad();
  pad.setPointerCapture(event.pointerId);
  lastPoint = null;
  strokeTo(padPoint(event));
}

function onPointerMove(event) {
  if (!pad.hasPointerCapture(event.pointerId)) return;
  const events = event.getCoalescedEvents ? event.getCoalescedEvents() : [];
  for (const each of events.length ? events : [event]) strokeTo(padPoint(each));
  schedulePrediction();
}

function onPointerUp(event) {
  if (pad.hasPointerCapture(event.pointerId)) pad.releasePointerCapture(event.pointerId);
  lastPoint = null;
  schedulePrediction();
}

function schedulePrediction() {
  pad.dataset.pending = "true"; // until the answer to the latest drawing is shown
  clearTimeout(timer);
  timer = setTimeout(predictPad, PREDICT_DELAY_MS);
}

function predictPad() {
  if (!drawn) {
    delete pad.dataset.pending;
    return;
  }
  pad.toBlob((blob) => predictImage(blob), "image/png");
}

// Prediction ----------------------------------------------------------------------------

async function predictImage(blob) {
  const number = ++asked;
  try {
    const body = new FormData();
    body.append("file", blob, blob.name || "digit.png");
    const answer = await finished(await request("v1/predict/image", { method: "POST", body }));
    if (number !== asked) return;
    showPrediction(answer);
    say("");
  } catch (error) {
    if (number === asked) say(error.message, true);
  } finally {
    if (number === asked) delete pad.dataset.pending;
  }
}

async function finished(answer) {
  while (!answer.labels) {
    if (answer.status === "failed") throw new Error(answer.error || "the prediction failed");
    await sleep(POLL_MS);
    answer = { ...answer, ...(await request(answer.status_url)) };
  }
  return answer;
}

function showPrediction(answer) {
  const label = answer.labels[0];
  const probabilities = answer.probabilities[0];
  const unsure = answer.uncertain[0];
  // A flagged answer (not sure, or not one digit) shows no digit: a guess is not an answer.
  $("label").textContent = unsure ? "not sure" : label;
  $("label").classList.toggle("unsure", unsure);
  const sure = `${(answer.confidence[0] * 100).toFixed(1)}% sure`;
  $("confidence").textContent = unsure ? `best guess ${label}, ${sure}` : sure;
  drawBars(probabilities, label);
  drawSeen(answer.pixels);
  showVersion(answer.model_version);
}

function drawBars(probabilities, label) {
  const bars = $("bars");
  bars.replaceChildren(
    ...probabilities.map((p, digit) => {
      const bar = document.createElement("div");
      bar.className = digit === label ? "bar best" : "bar";
      bar.dataset.digit = digit;
      bar.dataset.probability = p;
      bar.title = `${digit}: ${(p * 100).toFixed(2)}%`;
      const share = p >= 0.01 ? `${Math.round(p * 100)}%` : "";
      bar.innerHTML = `<span class="share">${share}</span>
        <span class="fill" style="height:calc((100% - 17px) * ${p.toFixed(4)})"></span>
        <span class="digit">${digit}</span>`;
      return bar;
    }),
  );
}

function drawSeen(pixels) {
  const view = $("seen").getContext("2d");
  const image = view.createImageData(28, 28);
  pixels.flat().forEach((value, i) => {
    image.data.set([value, value, value, 255], i * 4);
  });
  view.putImageData(image, 0, 0);
}

// Batch ---------------------------------------------------------------------------------

async function uploadCsv(file) {
  const link = $("download");
  link.hidden = true;
  if (link.href) URL.revokeObjectURL(link.href);
  $("csv-name").textContent = file.name;
  $("progress").value = 0;
  $("batch-status").textContent = "Uploading…";
  try {
    const body = new FormData();
    body.append("file", file, file.name);
    const batch = await request("v1/batches", { method: "POST", body });
    const status = await followBatch(batch);
    const csv = await request(batch.submission_url);
    link.href = URL.createObjectURL(new Blob([csv], { type: "text/csv" }));
    link.hidden = false;
    const accuracy =
      status.accuracy === undefined || status.accuracy === null
        ? ""
        : `, accuracy ${(status.accuracy * 100).toFixed(2)}%`;
    const unsure = `, ${status.uncertain_rows} uncertain`;
    $("batch-status").textContent = `Done: ${status.rows} rows${unsure}${accuracy}.`;
  } catch (error) {
    $("batch-status").textContent = "Batch failed.";
    say(error.message, true);
  }
}

async function followBatch(batch) {
  for (;;) {
    const status = await request(batch.status_url);
    $("progress").value = status.rows ? status.rows_done / status.rows : 0;
    $("batch-status").textContent = `${status.rows_done} of ${status.rows} rows`;
    showVersion(status.model_version);
    if (status.status === "finished") return status;
    if (status.status === "failed") throw new Error(status.error || "the batch failed");
    await sleep(POLL_MS);
  }
}

async function checkReady() {
  // Not `request`: a 503 here still carries the checks worth showing.
  const response = await fetch("readyz");
  const body = await response.json();
  showVersion(body.checks && body.checks.model_version);
  if (!response.ok) say(`Not ready: ${body.error.message}`, true);
}

// Wiring --------------------------------------------------------------------------------

function start() {
  keyInput.value = localStorage.getItem("digits.apiKey") || "";
  keyInput.addEventListener("change", () => {
    localStorage.setItem("digits.apiKey", keyInput.value.trim());
  });
  resetPad();
  drawBars(new Array(10).fill(0), -1);
  checkReady().catch((error) => say(error.message, true));
  pad.addEventListener("pointerdown", onPointerDown);
  pad.addEventListener("pointermove", onPointerMove);
  pad.addEventListener("pointerup", onPointerUp);
  pad.addEventListener("pointercancel", onPointerUp);
  $("clear").addEventListener("click", () => {
    resetPad();
    asked++;
    clearTimeout(timer);
    delete pad.dataset.pending;
    $("label").textContent = "?";
    $("label").classList.remove("unsure");
    $("confidence").textContent = "Draw a digit to start";
    drawBars(new Array(10).fill(0), -1);
    $("seen").getContext("2d").clearRect(0, 0, 28, 28);
  });
  $("image-file").addEventListener("change", (event) => {
    const file = event.target.files[0];
    if (file) {
      showUpload(file);
      predictImage(file);
    }
    event.target.value = "";
  });
  $("csv-file").addEventListener("change", (event) => {
    const file = event.target.files[0];
    if (file) uploadCsv(file);
    event.target.value = "";
  });
}

start();
