// metalhost web view: refreshes a node page's live part while the page is visible. The session
// cookie is HttpOnly, so this script never sees a credential; the server escapes what it sends.
"use strict";
(function () {
  const live = document.querySelector("[data-live]");
  if (!live) return;
  const url = live.getAttribute("data-live");
  // The console log reads from the bottom, like a terminal.
  function toBottom() {
    const log = live.querySelector("pre.console");
    if (log) log.scrollTop = log.scrollHeight;
  }
  toBottom();
  async function refresh() {
    if (document.hidden) return;
    try {
      const r = await fetch(url, { credentials: "same-origin", cache: "no-store" });
      if (r.redirected || r.status === 401) { window.location.assign("/ui/login"); return; }
      if (!r.ok) return;
      live.innerHTML = await r.text();
      live.setAttribute("data-refreshed", String(Date.now()));
      toBottom();
    } catch (_) {
      // The daemon restarting: try again at the next tick.
    }
  }
  setInterval(refresh, 1500);
})();

// The node's live serial console: a WebSocket to the daemon (same origin, the session cookie),
// its bytes shown as text (escape sequences dropped, never parsed as HTML), a line typed below.
(function () {
  const box = document.querySelector("[data-console]");
  if (!box) return;
  const screen = box.querySelector("#console-screen");
  const status = box.querySelector("#console-status");
  const form = box.querySelector("#console-form");
  const line = box.querySelector("#console-line");
  const open = box.querySelector("#console-open");
  const close = box.querySelector("#console-close");
  const KEEP = 64 * 1024;
  let socket = null;
  function show(text) {
    const clean = text
      .replace(/\x1b\[[0-9;?]*[ -\/]*[@-~]/g, "")
      .replace(/\x1b\][^\x07]*\x07/g, "")
      .replace(/\x1b./g, "")
      .replace(/\r\n/g, "\n")
      .replace(/\r/g, "");
    let all = screen.textContent + clean;
    if (all.length > KEEP) all = all.slice(all.length - KEEP);
    screen.textContent = all;
    screen.scrollTop = screen.scrollHeight;
  }
  function setOpen(isOpen) {
    open.hidden = isOpen;
    close.hidden = !isOpen;
    form.hidden = !isOpen;
    screen.hidden = false;
  }
  open.addEventListener("click", function () {
    const scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
    socket = new WebSocket(scheme + window.location.host + box.getAttribute("data-console"));
    socket.binaryType = "arraybuffer";
    const decoder = new TextDecoder("utf-8");
    status.textContent = "Opening…";
    socket.onopen = function () { status.textContent = "Attached."; setOpen(true); line.focus(); };
    socket.onmessage = function (event) {
      if (typeof event.data === "string") { status.textContent = event.data; return; }
      show(decoder.decode(new Uint8Array(event.data), { stream: true }));
    };
    socket.onclose = function (event) {
      status.textContent = "Closed" + (event.reason ? ": " + event.reason : " (the daemon refused the console or went away).");
      setOpen(false);
      socket = null;
    };
  });
  close.addEventListener("click", function () { if (socket) socket.close(); });
  form.addEventListener("submit", function (event) {
    event.preventDefault();
    if (socket && socket.readyState === WebSocket.OPEN) {
      socket.send(new TextEncoder().encode(line.value + "\r"));
      line.value = "";
    }
  });
})();
