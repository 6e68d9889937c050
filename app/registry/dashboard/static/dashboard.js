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

  const tick = async () => {
    try {
      const response = await fetch(jobUrl, { headers: { Accept: "application/json" }, credentials: "same-origin" });
      const body = await response.json();
      if (!response.ok) throw new Error((body.error && body.error.message) || `HTTP ${response.status}`);
      const value = Math.round((body.progress || 0) * 100);
      bar.style.width = `${value}%`;
      bar.parentElement.setAttribute("aria-valuenow", String(value));
      percent.textContent = `${value}%`;
      status.textContent = body.status;
      status.className = `badge badge-${body.status}`;
      if (step && body.step !== undefined) step.textContent = body.step || "";
      if (log && logUrl) await refreshLog(logUrl, log);
      problem.textContent = "";
      if (finished.has(body.status)) {
        // The page itself shows the outcome (metrics, version link, error): load it once more.
        window.location.reload();
        return;
      }
    } catch (error) {
      problem.textContent = `Could not refresh the progress: ${error.message}. Retrying…`;
    }
    window.setTimeout(tick, 700);
  };
  window.setTimeout(tick, 300);
}

async function refreshLog(url, element) {
  const response = await fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" });
  if (!response.ok) return;
  const body = await response.json();
  const lines = (body.lines || []).map((entry) => (typeof entry === "string" ? entry : entry.line));
  const atBottom = element.scrollTop + element.clientHeight >= element.scrollHeight - 4;
  element.textContent = lines.slice(-200).join("\n") || "No log lines yet.";
  if (atBottom) element.scrollTop = element.scrollHeight;
}
