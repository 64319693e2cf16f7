// Keyboard-first browsing and labelling; no framework, no inline script (the page's CSP forbids it).
(function () {
  "use strict";
  function typing(e) {
    var t = e.target.tagName;
    return t === "INPUT" || t === "TEXTAREA" || t === "SELECT";
  }
  function follow(id) { var a = document.getElementById(id); if (a) { window.location.href = a.href; } }

  function samplePage(e) {
    var form = document.getElementById("label-form");
    if (e.key === "a" || e.key === "r") {
      e.preventDefault();
      form.requestSubmit(document.getElementById(e.key === "a" ? "accept" : "reject"));
    } else if (e.key === "j") { follow("next"); }
    else if (e.key === "k") { follow("prev"); }
    else if (e.key === "s") { var s = document.querySelector("input.score"); if (s) { e.preventDefault(); s.focus(); } }
    else if (e.key === "n") { e.preventDefault(); document.getElementById("note").focus(); }
  }

  function listPage(e) {
    var rows = Array.prototype.slice.call(document.querySelectorAll("tr.row"));
    if (!rows.length && e.key !== "/") { return; }
    var at = rows.findIndex(function (r) { return r.classList.contains("current"); });
    if (e.key === "j" || e.key === "k") {
      if (at >= 0) { rows[at].classList.remove("current"); }
      at = e.key === "j" ? Math.min(rows.length - 1, at + 1) : Math.max(0, at - 1);
      rows[at].classList.add("current");
      rows[at].scrollIntoView({ block: "nearest" });
    } else if (e.key === "Enter" && at >= 0) {
      window.location.href = rows[at].dataset.href;
    } else if (e.key === "/") {
      e.preventDefault(); document.getElementById("q").focus();
    }
  }

  document.addEventListener("keydown", function (e) {
    if (e.ctrlKey || e.metaKey || e.altKey) { return; }
    if (typing(e)) { if (e.key === "Escape") { e.target.blur(); } return; }
    var page = document.body.dataset.page;
    if (page === "sample") { samplePage(e); } else if (page === "list") { listPage(e); }
  });
})();
