// Live logs: follows the function's log stream and appends each line as text (never as
// markup). The server has already escaped control characters.
(function () {
  var pre = document.getElementById("live");
  if (!pre || !window.fetch || !window.TextDecoder) return;
  fetch(pre.dataset.src, { credentials: "same-origin" }).then(function (r) {
    if (!r.ok || !r.body) return;
    var reader = r.body.getReader(), dec = new TextDecoder(), buf = "", first = true;
    function pump() {
      return reader.read().then(function (x) {
        if (x.done) return;
        if (first) { pre.textContent = ""; first = false; }
        buf += dec.decode(x.value, { stream: true });
        var i;
        while ((i = buf.indexOf("\n")) >= 0) {
          var line = buf.slice(0, i), span = document.createElement("span");
          buf = buf.slice(i + 1);
          var m = / (stdout|stderr|fnbox): /.exec(line);
          if (m) span.className = m[1];
          span.textContent = line + "\n";
          pre.appendChild(span);
          while (pre.childNodes.length > 1000) pre.removeChild(pre.firstChild);
        }
        pre.scrollTop = pre.scrollHeight;
        return pump();
      });
    }
    return pump();
  });
})();
