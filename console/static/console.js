// Live refresh for pages marked data-refresh="N": every N seconds, fetch the same URL and swap <main> in.
(function () {
  "use strict";
  var main = document.getElementById("main");
  if (!main || !main.dataset.refresh) return;
  var every = Math.max(1, parseInt(main.dataset.refresh, 10)) * 1000;
  function live() { var box = document.getElementById("live"); return !box || box.checked; }
  function tick() {
    if (!live() || document.hidden) return;
    fetch(window.location.href, { credentials: "same-origin", headers: { "X-Console-Refresh": "1" } })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) {
        if (!html) return;
        var fresh = new DOMParser().parseFromString(html, "text/html").getElementById("main");
        if (fresh && live()) { main.innerHTML = fresh.innerHTML; }
      })
      .catch(function () {});
  }
  setInterval(tick, every);
})();
