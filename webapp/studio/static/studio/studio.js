/* DLLM2Rec Studio: live status, uploads with progress, small conveniences. No framework. */
(function () {
  "use strict";
  var Studio = window.Studio = window.Studio || {};

  function cookie(name) {
    var match = document.cookie.match(new RegExp("(?:^|; )" + name + "=([^;]*)"));
    return match ? decodeURIComponent(match[1]) : "";
  }
  Studio.csrf = function () {
    var input = document.querySelector("input[name=csrfmiddlewaretoken]");
    return input ? input.value : cookie("csrftoken");
  };

  var FINISHED = ["succeeded", "failed", "cancelled"];

  /* Update every element marked data-run=ID (rows, the detail header) from /runs/live/. */
  function paint(run) {
    document.querySelectorAll('[data-run="' + run.id + '"]').forEach(function (el) {
      var status = el.querySelector("[data-status]");
      if (status) { status.textContent = run.status; status.className = "status status-" + run.status; }
      var bar = el.querySelector("[data-progress]");
      if (bar) {
        var pct = Math.round(run.progress * 100);
        bar.setAttribute("aria-valuenow", pct);
        bar.firstElementChild.style.width = pct + "%";
      }
    });
    var message = document.querySelector("[data-stage-message]");
    if (message && run.stage_message !== undefined && document.getElementById("run-status")) {
      message.textContent = run.stage_message;
    }
  }

  /* Poll the given run ids every `every` ms while any is live; onChange(run, previous) per change. */
  Studio.watch = function (ids, onChange, every) {
    if (!ids.length) { return; }
    var known = {};
    function tick() {
      fetch("/runs/live/?ids=" + ids.join(","), {headers: {"Accept": "application/json"}, credentials: "same-origin"})
        .then(function (r) { return r.ok ? r.json() : {runs: []}; })
        .then(function (data) {
          var live = false;
          data.runs.forEach(function (run) {
            var before = known[run.id];
            known[run.id] = run;
            paint(run);
            if (onChange && before && (before.status !== run.status || before.epoch_count !== run.epoch_count || before.stage !== run.stage)) {
              onChange(run, before);
            }
            if (FINISHED.indexOf(run.status) < 0) { live = true; }
          });
          if (live) { setTimeout(tick, every || 2000); }
        })
        .catch(function () { setTimeout(tick, 5000); });
    }
    tick();
  };

  function liveTables() {
    document.querySelectorAll("table[data-live]").forEach(function (table) {
      var ids = (table.getAttribute("data-live") || "").split(",").filter(Boolean);
      Studio.watch(ids, function (run, before) {
        if (before.status !== run.status && FINISHED.indexOf(run.status) >= 0) { window.location.reload(); }
      });
    });
  }

  function compareForm() {
    var form = document.getElementById("compare-form");
    if (!form) { return; }
    form.addEventListener("submit", function (event) {
      var ids = Array.prototype.map.call(document.querySelectorAll('input[name=ids][form=compare-form]:checked'),
                                         function (box) { return box.value; });
      var note = form.querySelector(".muted");
      if (ids.length < 2 || ids.length > 10) {
        event.preventDefault();
        note.textContent = "Tick 2 to 10 runs (" + ids.length + " ticked).";
        note.className = "error";
        return;
      }
      event.preventDefault();
      window.location.href = form.action + "?ids=" + ids.join(",");
    });
  }

  function conveniences() {
    document.querySelectorAll("form[data-confirm]").forEach(function (form) {
      form.addEventListener("submit", function (event) {
        if (!window.confirm(form.getAttribute("data-confirm"))) { event.preventDefault(); }
      });
    });
    document.querySelectorAll("button[data-copy]").forEach(function (button) {
      button.addEventListener("click", function () {
        var input = document.querySelector(button.getAttribute("data-copy"));
        input.select();
        if (navigator.clipboard && window.isSecureContext) {
          navigator.clipboard.writeText(input.value).then(function () { button.textContent = "Copied"; });
        } else {
          button.textContent = "Selected: press Ctrl+C";
        }
      });
    });
    var onlyDiff = document.getElementById("only-diff");
    if (onlyDiff) {
      onlyDiff.addEventListener("change", function () {
        document.getElementById("config-diff").classList.toggle("only-diff", onlyDiff.checked);
        var url = new URL(window.location.href);
        if (onlyDiff.checked) { url.searchParams.set("diff", "1"); } else { url.searchParams.delete("diff"); }
        window.history.replaceState(null, "", url.toString());
      });
    }
  }

  /* The upload form: XHR so the browser shows upload progress; errors land next to their field. */
  Studio.upload = function () {
    var form = document.getElementById("upload-form");
    var bar = document.getElementById("upload-progress");
    var state = document.getElementById("upload-state");
    var summary = document.getElementById("form-errors");
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      form.querySelectorAll(".field .error.js").forEach(function (el) { el.remove(); });
      form.querySelectorAll(".field.invalid").forEach(function (el) { el.classList.remove("invalid"); });
      summary.hidden = true; summary.textContent = "";
      var button = form.querySelector("button[type=submit]");
      button.disabled = true;
      bar.hidden = false;
      var xhr = new XMLHttpRequest();
      xhr.open("POST", form.action || window.location.href);
      xhr.setRequestHeader("X-Requested-With", "XMLHttpRequest");
      xhr.setRequestHeader("X-CSRFToken", Studio.csrf());
      xhr.upload.addEventListener("progress", function (e) {
        if (!e.lengthComputable) { return; }
        var pct = Math.round(e.loaded / e.total * 100);
        bar.firstElementChild.style.width = pct + "%";
        bar.setAttribute("aria-valuenow", pct);
        state.textContent = pct < 100 ? "Uploading… " + pct + "%" : "Uploaded; checking and splitting the data…";
      });
      xhr.addEventListener("load", function () {
        var data = {};
        try { data = JSON.parse(xhr.responseText); } catch (err) { data = {errors: {__all__: ["the server answered " + xhr.status]}}; }
        if (xhr.status < 300 && data.url) { state.textContent = "Ready."; window.location.href = data.url; return; }
        button.disabled = false; bar.hidden = true; state.textContent = "";
        Object.keys(data.errors || {}).forEach(function (field) {
          var input = form.querySelector('[name="' + field + '"]');
          (data.errors[field] || []).forEach(function (text) {
            var p = document.createElement("p");
            p.className = "error js"; p.setAttribute("role", "alert"); p.textContent = text;
            if (input && input.closest(".field")) {
              input.closest(".field").classList.add("invalid");
              input.closest(".field").appendChild(p);
              var details = input.closest("details"); if (details) { details.open = true; }
            } else { summary.appendChild(p); summary.hidden = false; }
          });
        });
      });
      xhr.addEventListener("error", function () {
        button.disabled = false; bar.hidden = true;
        state.textContent = "The upload failed: the connection was lost. Try again.";
      });
      xhr.send(new FormData(form));
    });
  };

  document.addEventListener("DOMContentLoaded", function () {
    liveTables();
    compareForm();
    conveniences();
  });
}());
