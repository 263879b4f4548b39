// The activity part of a function's page (totals and charts) refreshes itself: the server
// renders it again and it replaces the old one. No markup is built here; the server's is
// parsed inert (DOMParser runs no script) and already escaped.
(function () {
  var box = document.getElementById("activity");
  if (!box || !window.fetch || !window.DOMParser) return;
  var every = Math.max(5, Number(box.dataset.every) || 10) * 1000;
  function refresh() {
    fetch(box.dataset.src, { credentials: "same-origin", redirect: "error" })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) {
        if (!html) return;
        var fresh = new DOMParser().parseFromString(html, "text/html").getElementById("activity");
        if (fresh) box.replaceChildren.apply(box, Array.prototype.slice.call(fresh.childNodes));
      })
      .catch(function () {})
      .then(function () { setTimeout(refresh, every); });
  }
  setTimeout(refresh, every);
})();
