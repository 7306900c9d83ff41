/* Admin rebuild status: polls the JSON status endpoint and updates the page in place.
   A separate file because the Content-Security-Policy allows no inline script. */
(function () {
  "use strict";
  var box = document.getElementById("build-status");
  if (!box || !box.getAttribute("data-status-url") || !window.fetch) {
    return;
  }
  var url = box.getAttribute("data-status-url");
  var wasRunning = box.getAttribute("data-running") === "1";
  var failures = 0;

  function field(name) {
    return box.querySelector('[data-field="' + name + '"]');
  }

  function setText(name, text) {
    var el = field(name);
    if (el) {
      el.textContent = text;
    }
  }

  function show(name, visible) {
    var el = field(name);
    if (el) {
      el.hidden = !visible;
    }
  }

  function render(status) {
    setText("state_label", status.state_label || status.state);
    show("stage_line", status.running);
    show("progress", status.running);
    setText("stage_label", status.stage_label || "准备中");
    setText("counts", status.total ? status.done + "/" + status.total : "");
    var bar = field("progress");
    if (bar) {
      bar.max = status.total || 1;
      bar.value = status.done || 0;
    }
    if (status.elapsed !== undefined) {
      setText("elapsed", String(status.elapsed));
    }
    setText("message", status.message || "");
    show("message", Boolean(status.message));
    setText("current_build", status.current_build || "（无）");
    setText("note", "");
  }

  function schedule(ms) {
    window.setTimeout(poll, ms);
  }

  function poll() {
    window.fetch(url, {credentials: "same-origin", cache: "no-store", headers: {"Accept": "application/json"}})
      .then(function (response) {
        if (!response.ok) {
          throw new Error("HTTP " + response.status);
        }
        return response.json();
      })
      .then(function (status) {
        failures = 0;
        render(status);
        if (status.running) {
          wasRunning = true;
          schedule(1000);
        } else if (wasRunning) {
          // finished: reload once so the server renders the build report
          window.location.reload();
        }
      })
      .catch(function () {
        failures += 1;
        setText("note", "暂时无法获取进度，正在重试…");
        schedule(Math.min(15000, 1000 * Math.pow(2, failures)));
      });
  }

  if (wasRunning) {
    poll();
  }
}());
