// The status page's filter box, remembered open details and auto-refresh: a file, so a
// Content-Security-Policy of script-src 'self' holds (no inline script).
(function () {
  var input = document.getElementById("filter");
  var items = Array.prototype.slice.call(document.querySelectorAll(".cluster"));
  var shown = document.getElementById("shown");
  function apply() {
    var terms = input.value.toLowerCase().split(/\s+/).filter(Boolean);
    var count = 0;
    items.forEach(function (el) {
      var text = el.getAttribute("data-search");
      var hit = terms.every(function (t) { return text.indexOf(t) !== -1; });
      el.hidden = !hit;
      if (hit) { count++; }
    });
    shown.textContent = terms.length ? count + " of " + items.length + " clusters match" : "";
    var url = new URL(location.href);
    if (input.value) { url.searchParams.set("q", input.value); }
    else { url.searchParams.delete("q"); }
    history.replaceState(null, "", url);
  }
  input.addEventListener("input", apply);
  apply();
  // Details the reader opened stay open across refreshes.
  var key = "akv-exporter-open";
  var open = {};
  try { open = JSON.parse(sessionStorage.getItem(key) || "{}"); } catch (e) { open = {}; }
  document.querySelectorAll("details[id]").forEach(function (d) {
    if (open[d.id]) { d.open = true; }
    d.addEventListener("toggle", function () {
      if (d.open) { open[d.id] = 1; } else { delete open[d.id]; }
      try { sessionStorage.setItem(key, JSON.stringify(open)); } catch (e) {}
    });
  });
  var refresh = Number(document.body.getAttribute("data-refresh"));
  function tick() {
    if (document.hidden) { setTimeout(tick, 1000); return; }
    location.reload();
  }
  if (refresh > 0) { setTimeout(tick, refresh * 1000); }
})();
