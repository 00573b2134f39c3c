// The drawing page: canvas and uploads in, prediction and batch progress out.

import { uploadCsv } from "./batch.js";
import { request, say, showVersion } from "./http.js";
import { Live } from "./live.js";

const PREDICT_DELAY_MS = 150; // wait for a pause in the stroke before asking again
const STROKE_SHARE = 0.08; // pen width as a share of the pad's side, close to MNIST strokes
const BOX_COLOUR = "#e03131";

const $ = (id) => document.getElementById(id);
const pad = $("pad");
const ink = pad.getContext("2d");
const overlay = $("box");
const keyInput = $("api-key");

let drawn = false;
let showingUpload = false; // the pad shows an uploaded picture: the next stroke starts afresh
let lastPoint = null;
let timer = null;
let asked = 0; // numbers each drawing or upload: only the answer to the last one is shown

const live = new Live({ onAnswer: (answer) => settle(answer.id, answer), fallback: predictHttp });

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
  clearBox();
}

// Show the picture fitted in the pad; resolve with where it went (null if it cannot be shown).
async function showUpload(file) {
  resetPad();
  try {
    // The box in the answer is in the picture's pixels after its EXIF orientation: so is this.
    const picture = await createImageBitmap(file, { imageOrientation: "from-image" });
    const scale = Math.min(pad.width / picture.width, pad.height / picture.height);
    const width = picture.width * scale;
    const height = picture.height * scale;
    const fit = { scale, x: (pad.width - width) / 2, y: (pad.height - height) / 2 };
    ink.drawImage(picture, fit.x, fit.y, width, height);
    picture.close();
    showingUpload = true;
    return fit;
  } catch {
    // A picture the browser cannot show may still be one the server reads: its answer decides.
    return null;
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
  pad.dataset.drawing = ++asked; // the drawing whose answer is awaited
  live.send(asked, pad.toDataURL("image/png"));
}

// Prediction ----------------------------------------------------------------------------

// A drawing the connection could not take goes as one request, as JSON with its data URL.
async function predictHttp(drawing) {
  const options = {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ image: drawing.image }),
  };
  try {
    settle(drawing.id, await request("v1/predict/image", options));
  } catch (error) {
    settle(drawing.id, { error: { message: error.message } });
  }
}

async function predictUpload(file, shown) {
  const number = ++asked;
  pad.dataset.drawing = number;
  live.forget();
  const body = new FormData();
  body.append("file", file, file.name || "digit.png");
  let answer;
  try {
    answer = await request("v1/predict/image", { method: "POST", body });
  } catch (error) {
    answer = { error: { message: error.message } };
  }
  const fit = await shown;
  if (settle(number, answer) && answer.box && fit) drawBox(answer.box, fit);
}

// Show the answer to drawing or upload `number` if it is still the last one; say whether it was.
function settle(number, answer) {
  if (number !== asked) return false;
  delete pad.dataset.pending;
  if (answer.error) {
    say(answer.error.message, true);
  } else if (answer.status === "queued") {
    say("No answer in time: the service is busy. Draw again to retry.", true);
  } else {
    showPrediction(answer);
    $("label").dataset.drawing = number; // which drawing the answer shown is for
    say("");
  }
  return true;
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

// The crop box [left, top, right, bottom] (the picture's pixels) over the picture on the pad.
function drawBox([left, top, right, bottom], fit) {
  const view = overlay.getContext("2d");
  view.clearRect(0, 0, overlay.width, overlay.height);
  view.strokeStyle = BOX_COLOUR;
  view.lineWidth = 2;
  const x = fit.x + left * fit.scale;
  const y = fit.y + top * fit.scale;
  view.strokeRect(x, y, (right - left) * fit.scale, (bottom - top) * fit.scale);
  overlay.dataset.box = [left, top, right, bottom].join(",");
}

function clearBox() {
  overlay.getContext("2d").clearRect(0, 0, overlay.width, overlay.height);
  delete overlay.dataset.box;
}

async function checkReady() {
  // Not `request`: a 503 here still carries the checks worth showing.
  const response = await fetch("readyz");
  const body = await response.json();
  showVersion(body.checks && body.checks.model_version);
  if (!response.ok) say(`Not ready: ${body.error.message}`, true);
}

// Wiring --------------------------------------------------------------------------------

function clear() {
  resetPad();
  asked++;
  live.forget();
  clearTimeout(timer);
  delete pad.dataset.pending;
  $("label").textContent = "?";
  $("label").classList.remove("unsure");
  $("confidence").textContent = "Draw a digit to start";
  drawBars(new Array(10).fill(0), -1);
  $("seen").getContext("2d").clearRect(0, 0, 28, 28);
}

function start() {
  keyInput.value = localStorage.getItem("digits.apiKey") || "";
  keyInput.addEventListener("change", () => {
    localStorage.setItem("digits.apiKey", keyInput.value.trim());
    live.restart();
  });
  resetPad();
  drawBars(new Array(10).fill(0), -1);
  checkReady().catch((error) => say(error.message, true));
  pad.addEventListener("pointerdown", onPointerDown);
  pad.addEventListener("pointermove", onPointerMove);
  pad.addEventListener("pointerup", onPointerUp);
  pad.addEventListener("pointercancel", onPointerUp);
  $("clear").addEventListener("click", clear);
  $("image-file").addEventListener("change", (event) => {
    const file = event.target.files[0];
    if (file) {
      pad.dataset.pending = "true";
      predictUpload(file, showUpload(file));
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
