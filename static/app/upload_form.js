// Shared by the upload forms (images, pre-graded images, ZIP archives): hospital pills filter the lab units; chosen
// files are checked before sending and listed with their state; refused files are marked with their reason (on hover
// and in text) and reported with the upload, so the job accounts for every file chosen; the form is sent with a
// progress bar and the browser goes to the job's processing page.
window.FGC = window.FGC || {};

// Hospital pills filter the lab-unit select to the chosen hospital's units (a single unit left is selected);
// onChange runs after each filtering (forms whose other fields depend on the lab unit).
window.FGC.filterLabUnits = function (form, onChange) {
  "use strict";
  const labUnit = form.querySelector("#lab_unit");
  function apply() {
    const checked = form.querySelector("input[name=hospital]:checked");
    const hospital = checked ? checked.value : null;
    let visible = 0;
    for (const option of labUnit.options) {
      if (!option.value) continue;
      const show = hospital !== null && option.dataset.hospital === hospital;
      option.hidden = !show;
      option.disabled = !show;
      if (show) visible += 1;
      if (!show && option.selected) labUnit.value = "";
    }
    if (visible === 1) {
      for (const option of labUnit.options) if (option.value && !option.hidden) labUnit.value = option.value;
    }
    if (onChange) onChange();
  }
  form.querySelectorAll("input[name=hospital]").forEach((el) => el.addEventListener("change", apply));
  apply();
};

window.FGC.uploadForm = function (options) {
  "use strict";
  // options: form, required (field names), check(file) -> Promise<reason|null>, caps() -> [[max, reason], ...],
  // noun ("file" or "archive").
  const form = options.form;
  const input = document.getElementById("files");
  const list = document.getElementById("file-list");
  const summary = document.getElementById("file-summary");
  const errorBox = document.getElementById("form-error");
  const entries = []; // {file, key, reason, limit}

  window.FGC.filterLabUnits(form);

  function human(bytes) {
    return bytes >= 1048576 ? (bytes / 1048576).toFixed(1) + " MB" : Math.max(1, Math.round(bytes / 1024)) + " KB";
  }

  async function addFiles(files) {
    for (const file of files) {
      const key = [file.name, file.size, file.lastModified].join("|");
      if (entries.some((e) => e.key === key)) continue;
      const entry = { file, key, reason: null, limit: false };
      entries.push(entry);
      entry.reason = await options.check(file);
    }
    applyLimits();
    render();
  }

  // Count and quota limits depend on the other files chosen: recomputed whenever the list changes.
  function applyLimits() {
    const caps = options.caps();
    let accepted = 0;
    for (const entry of entries) {
      if (entry.reason && !entry.limit) continue;
      entry.reason = null;
      entry.limit = false;
      const cap = caps.find(([max]) => accepted >= max);
      if (cap) { entry.reason = cap[1]; entry.limit = true; }
      else accepted += 1;
    }
  }

  function render() {
    list.replaceChildren();
    entries.forEach((entry, index) => {
      const li = document.createElement("li");
      li.className = "list-group-item d-flex align-items-center gap-2 file-row" + (entry.reason ? " refused" : "");
      li.dataset.filename = entry.file.name;
      li.dataset.state = entry.reason ? "refused" : "ready";
      if (entry.reason) li.title = entry.reason;
      const badge = document.createElement("span");
      badge.className = "badge status-badge " + (entry.reason ? "text-bg-danger" : "text-bg-secondary");
      badge.textContent = entry.reason ? "Refused" : "Ready";
      const name = document.createElement("span");
      name.className = "file-name flex-grow-1";
      name.textContent = entry.file.name;
      const detail = document.createElement("span");
      detail.className = "small " + (entry.reason ? "text-danger reason" : "text-body-secondary");
      detail.textContent = entry.reason || human(entry.file.size);
      const remove = document.createElement("button");
      remove.type = "button";
      remove.className = "btn btn-sm btn-link text-body-secondary";
      remove.setAttribute("aria-label", "Remove " + entry.file.name);
      remove.innerHTML = '<i class="bi bi-x-lg"></i>';
      remove.addEventListener("click", () => { entries.splice(index, 1); applyLimits(); render(); });
      li.append(badge, name, detail, remove);
      list.append(li);
    });
    const ok = entries.filter((e) => !e.reason).length;
    const bad = entries.length - ok;
    summary.textContent = entries.length ? ok + " " + options.noun + "(s) ready" + (bad ? ", " + bad + " refused (hover for the reason)" : "") : "";
  }

  input.addEventListener("change", () => { addFiles(Array.from(input.files)); input.value = ""; });
  document.getElementById("clear-files").addEventListener("click", () => { entries.length = 0; render(); });
  ["dragenter", "dragover"].forEach((type) => document.addEventListener(type, (ev) => {
    ev.preventDefault(); document.body.classList.add("dragover");
  }));
  ["dragleave", "dragend"].forEach((type) => document.addEventListener(type, (ev) => {
    if (ev.target === document.documentElement || ev.clientX === 0) document.body.classList.remove("dragover");
  }));
  document.addEventListener("drop", (ev) => {
    ev.preventDefault();
    document.body.classList.remove("dragover");
    if (ev.dataTransfer && ev.dataTransfer.files.length) addFiles(Array.from(ev.dataTransfer.files));
  });
  const dropzone = document.getElementById("dropzone");
  dropzone.addEventListener("keydown", (ev) => { if (ev.key === "Enter" || ev.key === " ") { ev.preventDefault(); input.click(); } });

  function showError(message) {
    errorBox.textContent = message;
    errorBox.classList.remove("d-none");
    errorBox.scrollIntoView({ behavior: "smooth", block: "center" });
  }

  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    errorBox.classList.add("d-none");
    const hospital = form.querySelector("input[name=hospital]:checked");
    if (!hospital || options.required.some((name) => !form.elements[name].value)) { showError("All fields are required"); return; }
    if (!entries.length) { showError("No selected file"); return; }
    const data = new FormData();
    for (const [key, value] of new FormData(form).entries()) if (key !== "files") data.append(key, value);
    data.set("client_rejected", JSON.stringify(entries.filter((e) => e.reason).map((e) => ({ filename: e.file.name, reason: e.reason }))));
    entries.filter((e) => !e.reason).forEach((e) => data.append("files", e.file, e.file.name));
    const button = document.getElementById("submit-upload");
    button.disabled = true;
    const progress = document.getElementById("send-progress");
    const bar = progress.querySelector(".progress-bar");
    progress.classList.remove("d-none");
    const xhr = new XMLHttpRequest();
    xhr.open("POST", form.action || window.location.href);
    xhr.setRequestHeader("Accept", "application/json");
    xhr.upload.addEventListener("progress", (e) => {
      if (e.lengthComputable) { const pct = Math.round((100 * e.loaded) / e.total); bar.style.width = pct + "%"; bar.textContent = pct + "%"; }
    });
    function failed(message) {
      button.disabled = false;
      progress.classList.add("d-none");
      showError(message);
    }
    xhr.onload = () => {
      let body = {};
      try { body = JSON.parse(xhr.responseText); } catch (e) { body = {}; }
      if (xhr.status === 202 && body.processing_url) { window.location.assign(body.processing_url); return; }
      failed(body.detail || "The upload failed (HTTP " + xhr.status + "). Nothing was stored; please try again.");
    };
    xhr.onerror = () => failed("The connection was lost while sending. Nothing was stored; please try again.");
    xhr.send(data);
  });
};
