// The inspector's only script: it refreshes a running trace's page, brings in counts
// that were still being counted, and checks JSON fields as they are typed. The pages
// work without it.
"use strict";

(function () {
  function follow(region) {
    var url = region.dataset.liveUrl;
    var every = Number(region.dataset.liveEvery) || 2000;
    var timer = window.setInterval(function () {
      fetch(url, { credentials: "same-origin", headers: { Accept: "text/html" } })
        .then(function (response) {
          return response.ok ? response.text() : null;
        })
        .then(function (html) {
          if (html === null) {
            return;
          }
          region.innerHTML = html; // rendered and escaped by the server
          var state = region.querySelector("[data-live-state]");
          region.dataset.refreshed = String(Number(region.dataset.refreshed || 0) + 1);
          if (state && state.dataset.liveState !== "running") {
            window.clearInterval(timer);
            region.dataset.liveDone = "1";
          }
        })
        .catch(function () {
          // the next tick tries again
        });
    }, every);
  }

  function checkJson(field) {
    function check() {
      var text = field.value.trim();
      if (text === "" && field.dataset.json === "optional") {
        field.setCustomValidity("");
        return;
      }
      try {
        JSON.parse(text);
        field.setCustomValidity("");
      } catch (error) {
        field.setCustomValidity("not valid JSON: " + error.message);
      }
    }
    field.addEventListener("input", check);
    check();
  }

  function recount(list) {
    fetch(list.dataset.countsUrl, { credentials: "same-origin", headers: { Accept: "text/html" } })
      .then(function (response) {
        return response.ok ? response.text() : null;
      })
      .then(function (html) {
        if (html !== null) {
          list.outerHTML = html; // rendered and escaped by the server
        }
      })
      .catch(function () {
        // the counts shown stay; a reload counts again
      });
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-counts-url]").forEach(recount);
    document.querySelectorAll("[data-live-url]").forEach(follow);
    document.querySelectorAll("textarea[data-json]").forEach(checkJson);
  });
})();
