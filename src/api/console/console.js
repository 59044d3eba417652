// The console's one script: live pages. The page names the moment it
// shows (data-moment); /events says `change` when what the pages show has
// changed since, and the page fetches itself again and swaps in the new
// banners, main and footer. Without it (or without script) pages still
// work and say when they were drawn.
(function () {
  "use strict";
  var body = document.body;
  var since = body.getAttribute("data-moment");
  if (since === null || !window.EventSource || !window.fetch) return;
  var busy = false;
  var again = false;

  // Keyboard users keep their place: the focused control is found again
  // in the new page by what it does.
  function focusKey() {
    var a = document.activeElement;
    if (!a || a === body) return null;
    if (a.id) return "#" + CSS.escape(a.id);
    if (a.name && a.value) return "[name=\"" + CSS.escape(a.name) + "\"][value=\"" + CSS.escape(a.value) + "\"]";
    return null;
  }

  function typing() {
    var a = document.activeElement;
    if (!a) return false;
    // A filter being chosen is not yet asked for: keep it as it is.
    if (a.closest && a.closest("form.filters")) return true;
    return a.tagName === "INPUT" && a.type !== "hidden" && a.value !== "";
  }

  function redraw() {
    if (busy) { again = true; return; }
    // Never under someone's fingers: what they type stays.
    if (typing()) { again = true; setTimeout(redraw, 2000); return; }
    busy = true;
    fetch(location.href, { credentials: "same-origin", cache: "no-store" })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) {
        if (html === null || typing()) return;
        var next = new DOMParser().parseFromString(html, "text/html");
        var key = focusKey();
        ["#banners", "main", "footer"].forEach(function (sel) {
          var now = document.querySelector(sel), then = next.querySelector(sel);
          if (now && then) now.replaceWith(document.adoptNode(then));
        });
        document.title = next.title;
        if (key) {
          var el = document.querySelector(key);
          if (el) el.focus();
        }
        var m = next.body.getAttribute("data-moment");
        if (m !== null) body.setAttribute("data-moment", m);
      })
      .catch(function () {})
      .then(function () {
        busy = false;
        if (again) { again = false; redraw(); }
      });
  }

  var events = new EventSource("/events?since=" + encodeURIComponent(since));
  events.addEventListener("change", redraw);
  body.classList.add("live");
})();
