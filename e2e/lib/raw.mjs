// A raw Engine.IO v4 / socket.io v5 client over a WebSocket, for sending
// frames the official client never would.

import WebSocket from "ws";
import { DEFAULT_TIMEOUT_MS } from "./chatd.mjs";

/**
 * RawSocket is one raw WebSocket connection to /socket.io/. Text frames are
 * queued; Engine.IO pings ("2") are answered with pongs ("3") and not queued.
 */
export class RawSocket {
  constructor(ws) {
    this.ws = ws;
    this.frames = [];
    this.waiters = [];
    this.closed = false;
    this.closeInfo = null;
    this.closedPromise = new Promise((resolve) => {
      ws.on("close", (code, reason) => {
        this.closed = true;
        this.closeInfo = { code, reason: reason.toString() };
        for (const w of this.waiters.splice(0)) w.reject(new Error(`connection closed (${code})`));
        resolve(this.closeInfo);
      });
    });
    ws.on("error", () => {}); // a close follows
    ws.on("message", (data, isBinary) => {
      const text = isBinary ? data : data.toString();
      if (text === "2") {
        ws.send("3");
        return;
      }
      const w = this.waiters.shift();
      if (w) w.resolve(text);
      else this.frames.push(text);
    });
  }

  /** open connects and resolves once the WebSocket is open. */
  static open(httpURL) {
    const url = httpURL.replace(/^http/, "ws") + "/socket.io/?EIO=4&transport=websocket";
    const ws = new WebSocket(url);
    return new Promise((resolve, reject) => {
      ws.once("open", () => resolve(new RawSocket(ws)));
      ws.once("error", reject);
    });
  }

  /** next resolves to the next text frame from the server; rejects on close or timeout. */
  next(timeoutMs = DEFAULT_TIMEOUT_MS) {
    if (this.frames.length > 0) return Promise.resolve(this.frames.shift());
    if (this.closed) return Promise.reject(new Error(`connection closed (${this.closeInfo.code})`));
    return new Promise((resolve, reject) => {
      const w = {
        resolve: (f) => {
          clearTimeout(timer);
          resolve(f);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      };
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((x) => x !== w);
        reject(new Error(`no frame within ${timeoutMs} ms; queued: ${JSON.stringify(this.frames)}`));
      }, timeoutMs);
      this.waiters.push(w);
    });
  }

  /** nextMatching skips frames until one passes pred (rejects on close or timeout). */
  async nextMatching(pred, timeoutMs = DEFAULT_TIMEOUT_MS) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const f = await this.next(Math.max(1, deadline - Date.now()));
      if (pred(f)) return f;
    }
  }

  /** send sends one text frame (ignored once closed). */
  send(frame) {
    if (!this.closed) this.ws.send(frame);
  }

  /** close closes the connection and resolves once it is closed. */
  close() {
    if (!this.closed) this.ws.close();
    return this.closedPromise;
  }

  /**
   * handshake reads the Engine.IO open packet, connects to namespace "/" with
   * the given auth and resolves to the session payload.
   */
  async handshake(auth) {
    const open = await this.next();
    if (!open.startsWith("0{")) throw new Error(`expected an Engine.IO open packet, got ${open}`);
    this.open = JSON.parse(open.slice(1));
    this.send("40" + JSON.stringify(auth));
    const connected = await this.next();
    if (!connected.startsWith("40")) throw new Error(`expected a socket.io CONNECT packet, got ${connected}`);
    const sessionFrame = await this.nextMatching((f) => f.startsWith('42["session"'));
    return JSON.parse(sessionFrame.slice(2))[1];
  }

  /**
   * probe sends a `rooms` request with ack id ackId and resolves to its ack
   * payload, or to null when the server closes the connection instead.
   */
  async probe(ackId) {
    if (this.closed) return null;
    this.send(`42${ackId}["rooms",{}]`);
    try {
      const f = await this.nextMatching((x) => x.startsWith(`43${ackId}[`) || x.startsWith("41") || x.startsWith("44"));
      if (!f.startsWith("43")) return null;
      return JSON.parse(f.slice(2 + String(ackId).length))[0];
    } catch (err) {
      if (this.closed) return null;
      throw err;
    }
  }
}
