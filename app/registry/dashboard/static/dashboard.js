// ModelDepot dashboard: small enhancements. Every page works without this file.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  // Ask before destructive buttons (data-confirm="...").
  document.querySelectorAll("[data-confirm]").forEach((button) => {
    button.addEventListener("click", (event) => {
      if (!window.confirm(button.dataset.confirm)) event.preventDefault();
    });
  });

  // Drag and drop onto the upload area; show the chosen file and flag pickles.
  document.querySelectorAll("[data-dropzone]").forEach((zone) => {
    const input = zone.querySelector("input[type=file]");
    const chosen = zone.querySelector("[data-chosen]");
    const warning = document.querySelector("[data-pickle-warning]");
    const show = () => {
      const file = input.files && input.files[0];
      chosen.textContent = file ? `${file.name} (${formatSize(file.size)})` : "";
      if (warning && file) {
        warning.classList.toggle("highlight", /\.(pkl|pickle|joblib|sav)$/i.test(file.name));
      }
    };
    ["dragenter", "dragover"].forEach((type) => zone.addEventListener(type, (event) => {
      event.preventDefault();
      zone.classList.add("dragging");
    }));
    ["dragleave", "drop"].forEach((type) => zone.addEventListener(type, () => zone.classList.remove("dragging")));
    zone.addEventListener("drop", (event) => {
      event.preventDefault();
      if (event.dataTransfer.files.length) {
        input.files = event.dataTransfer.files;
        show();
      }
    });
    input.addEventListener("change", show);
  });

  // Choosing a dataset reloads the training form with its columns.
  document.querySelectorAll("form[data-autosubmit] select").forEach((select) => {
    select.addEventListener("change", () => { if (select.value) select.form.submit(); });
  });

  // Live job progress: poll the JSON API while the job is queued or running.
  const job = document.querySelector("[data-job-poll]");
  if (job) pollJob(job);
});

function formatSize(bytes) {
  const units = ["bytes", "KiB", "MiB", "GiB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) { value /= 1024; unit += 1; }
  return unit === 0 ? `${value} bytes` : `${value.toFixed(1)} ${units[unit]}`;
}

function pollJob(root) {
  const jobUrl = root.dataset.jobPoll;
  const logUrl = root.dataset.logPoll;
  const bar = root.querySelector("[data-progress]");
  const percent = root.querySelector("[data-percent]");
  const status = root.querySelector("[data-status]");
  const step = root.querySelector("[data-step]");
  const log = root.querySelector("[data-log]");
  const problem = root.querySelector("[data-poll-error]");
  const finished = new Set(["succeeded", "failed", "cancelled"]);
  let after = Number(root.dataset.logAfter || 0);

  const getJson = async (url) => {
    const response = await fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" });
    const body = await response.json();
    if (!response.ok) throw new Error((body.error && body.error.message) || `HTTP ${response.status}`);
    return body;
  };

  const tick = async () => {
    try {
      const job = await getJson(jobUrl);
      bar.value = job.progress || 0;
      percent.textContent = `${Math.round((job.progress || 0) * 100)}%`;
      status.textContent = job.status;
      status.className = `badge badge-${job.status}`;
      step.textContent = job.step && job.step !== job.status ? job.step : "";
      const page = await getJson(`${logUrl}?after=${after}`);
      if (page.lines.length) {
        const atBottom = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
        if (after === 0) log.textContent = "";
        log.textContent += page.lines.map((line) => `${line.line}\n`).join("");
        after = page.next_after;
        if (atBottom) log.scrollTop = log.scrollHeight;
      }
      problem.textContent = "";
      if (finished.has(job.status)) {
        // The page shows the outcome (metrics, the new version, the error): load it once more.
        window.location.reload();
        return;
      }
    } catch (error) {
      problem.textContent = `Could not refresh the progress: ${error.message}. Retrying…`;
    }
    window.setTimeout(tick, 500);
  };
  window.setTimeout(tick, 200);
}

// Traffic charts redraw in place: every 30 s, fetch the server-drawn fragment (same origin, the
// same SVG the page was rendered with) and swap it in. Open disclosures stay open.
document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("[data-refresh]").forEach((box) => {
    const refresh = async () => {
      if (document.hidden) return;
      try {
        const response = await fetch(box.dataset.refresh, { credentials: "same-origin" });
        if (!response.ok) return;
        const open = [...box.querySelectorAll("details")].map((d) => d.open);
        const parsed = new DOMParser().parseFromString(await response.text(), "text/html");
        box.replaceChildren(...parsed.body.childNodes);
        box.querySelectorAll("details").forEach((d, i) => { if (open[i]) d.open = true; });
        box.dataset.refreshed = String(Date.now());
      } catch (error) {
        // The inference server may be restarting: keep the last picture, try again later.
      }
    };
    const seconds = Number(box.dataset.refreshSeconds || 30);
    window.setInterval(refresh, seconds * 1000);
    box.addEventListener("refresh", refresh); // "now, please" (a test, or another script)
  });
});
