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
