// Predictions as you draw over one WebSocket (GET v1/predict/live), opened on the first drawing
// and kept open. The server answers only the newest drawing it has (an older one gets
// "superseded"); the page shows only the answer to its own last drawing, which also covers
// answers crossing a picture upload or a reconnection.

import { withKey } from "./http.js";

const RETRY_MS = 500; // an open connection that dropped: try again this soon with the drawing
const FALLBACK_MS = 30000; // a connection that could not open: use HTTP this long before trying again

export class Live {
  // onAnswer(message) gets every message for the last drawing; fallback(drawing) is asked to
  // predict a drawing over HTTP when no connection can be opened.
  constructor({ onAnswer, fallback }) {
    this.onAnswer = onAnswer;
    this.fallback = fallback;
    this.socket = null;
    this.open = false;
    this.latest = null; // {id, image}: the last drawing, until it is answered
    this.httpUntil = 0;
  }

  send(id, image) {
    this.latest = { id, image };
    if (Date.now() < this.httpUntil) {
      this.fallback(this.latest);
    } else if (this.open) {
      this.socket.send(JSON.stringify(this.latest));
    } else if (!this.socket) {
      this.connect(); // sends the latest drawing once open
    }
  }

  // The last drawing needs no answer any more (cleared, or replaced by an upload).
  forget() {
    this.latest = null;
  }

  // The key changed: the next drawing opens a new connection with it.
  restart() {
    this.httpUntil = 0;
    if (this.socket) this.socket.close();
  }

  connect() {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const base = new URL("v1/predict/live", location.href);
    const socket = new WebSocket(withKey(`${scheme}//${base.host}${base.pathname}`));
    this.socket = socket;
    socket.addEventListener("open", () => {
      this.open = true;
      if (this.latest) socket.send(JSON.stringify(this.latest));
    });
    socket.addEventListener("message", (event) => this.receive(JSON.parse(event.data)));
    socket.addEventListener("close", () => {
      const opened = this.open;
      this.socket = null;
      this.open = false;
      if (!this.latest) return;
      if (opened) {
        setTimeout(() => this.socket || this.open || !this.latest || this.connect(), RETRY_MS);
      } else {
        // Refused (a wrong key, a proxy without WebSockets): HTTP says why, or answers anyway.
        this.httpUntil = Date.now() + FALLBACK_MS;
        this.fallback(this.latest);
      }
    });
  }

  receive(message) {
    if (!this.latest || message.id !== this.latest.id) return; // an older drawing's
    if (message.status === "superseded") return; // cannot be: the server saw a newer one
    this.latest = null;
    this.onAnswer(message);
  }
}
