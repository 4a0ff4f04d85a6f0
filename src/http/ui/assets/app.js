// baton dashboard: the little script it needs. No inline code anywhere (the
// Content-Security-Policy forbids it); everything hangs off data attributes.
"use strict";
(function () {
  // Errors are kept for the browser tests, which read them back.
  window.batonErrors = window.batonErrors || [];
  window.addEventListener("error", function (e) {
    window.batonErrors.push(String(e.message || e));
  });
  window.addEventListener("unhandledrejection", function (e) {
    window.batonErrors.push("unhandled rejection: " + String(e.reason));
  });
  // Set once per page load: a test can tell a live update from a reload.
  window.batonLoadedAt = window.batonLoadedAt || Date.now();

  var PERIOD_MS = 3000;

  // The live region: re-fetched from data-live every few seconds, unless the viewer
  // is in the middle of something (ticked boxes, typing).
  function busy(region) {
    if (region.querySelector("input[type=checkbox]:checked")) return true;
    var a = document.activeElement;
    return a && region.contains(a) && (a.tagName === "INPUT" || a.tagName === "SELECT");
  }

  var inflight = false;

  function refresh(region) {
    // One request at a time: a slow server is not sent more.
    if (inflight || document.hidden || busy(region)) return;
    inflight = true;
    fetch(region.getAttribute("data-live"), {
      credentials: "same-origin",
      headers: { "X-Requested-With": "baton-live" },
    })
      .then(function (r) {
        // A lapsed session redirects to the login form: stop refreshing then.
        if (!r.ok || r.redirected) return null;
        return r.text();
      })
      .then(function (html) {
        if (html === null || busy(region)) return;
        region.innerHTML = html;
        region.setAttribute("data-refreshed", String(Date.now()));
        wire(region);
      })
      .catch(function () {
        /* the server is away for a moment; the next tick tries again */
      })
      .then(function () {
        inflight = false;
      });
  }

  // "Tick all" boxes and busy buttons, for the page and for every refreshed region.
  function wire(root) {
    root.querySelectorAll("input[data-select-all]").forEach(function (all) {
      all.addEventListener("change", function () {
        var form = all.form;
        if (!form) return;
        form.querySelectorAll("input[type=checkbox][name=ids]").forEach(function (b) {
          b.checked = all.checked;
        });
      });
    });
    root.querySelectorAll("form").forEach(function (f) {
      f.addEventListener("submit", function () {
        f.querySelectorAll("button[type=submit]").forEach(function (b) {
          b.setAttribute("aria-busy", "true");
        });
        f.classList.add("working");
      });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    wire(document);
    var region = document.querySelector("[data-live]");
    if (region) {
      var period = Number(region.getAttribute("data-period")) || PERIOD_MS;
      setInterval(function () {
        refresh(region);
      }, period);
    }
  });
})();
