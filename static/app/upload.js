// Direct upload form: hospital pills filter lab units; files are checked before sending (type by content, size,
// count, quota); refused files are marked with their reason and reported with the upload so the job accounts for them.
(function () {
  "use strict";
  const form = document.getElementById("upload-form");
  if (!form) return;
  const maxBytes = Number(form.dataset.maxMb) * 1024 * 1024;
  const maxFiles = Number(form.dataset.maxFiles);
  const quota = Number(form.dataset.quota);
  const used = Number(form.dataset.used);
  const input = document.getElementById("files");
  const list = document.getElementById("file-list");
  const summary = document.getElementById("file-summary");
  const errorBox = document.getElementById("form-error");
  const labUnit = document.getElementById("lab_unit");
  const mydriatic = document.getElementById("mydriatic");
  const entries = []; // {file, reason, key}

  function filterLabUnits() {
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
  }
  form.querySelectorAll("input[name=hospital]").forEach((el) => el.addEventListener("change", filterLabUnits));
  filterLabUnits();
  function mydriaticLabel() {
    document.getElementById("mydriatic-label").textContent = mydriatic.checked ? "Mydriatic" : "Non Mydriatic";
  }
  mydriatic.addEventListener("change", mydriaticLabel);
  mydriaticLabel();

  function human(bytes) {
    return bytes >= 1048576 ? (bytes / 1048576).toFixed(1) + " MB" : Math.max(1, Math.round(bytes / 1024)) + " KB";
  }

  function sniff(file) {
    return new Promise((resolve) => {
      const reader = new FileReader();
      reader.onload = () => {
        const b = new Uint8Array(reader.result);
        if (b.length >= 3 && b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff) resolve("image/jpeg");
        else if (b.length >= 8 && b[0] === 0x89 && b[1] === 0x50 && b[2] === 0x4e && b[3] === 0x47) resolve("image/png");
        else resolve(file.type || "application/octet-stream");
      };
      reader.onerror = () => resolve(file.type || "application/octet-stream");
      reader.readAsArrayBuffer(file.slice(0, 16));
    });
  }

  async function addFiles(files) {
    for (const file of files) {
      const key = [file.name, file.size, file.lastModified].join("|");
      if (entries.some((e) => e.key === key)) continue;
      const entry = { file, key, reason: null };
      entries.push(entry);
      if (file.size > maxBytes) entry.reason = "File too large (max " + form.dataset.maxMb + "MB)";
      else if (file.size === 0) entry.reason = "Invalid file type: application/x-empty. Only JPG/PNG allowed.";
      else {
        const mime = await sniff(file);
        if (mime !== "image/jpeg" && mime !== "image/png") entry.reason = "Invalid file type: " + mime + ". Only JPG/PNG allowed.";
      }
    }
    applyLimits();
    render();
  }

  function applyLimits() {
    let accepted = 0;
    const remaining = quota > 0 ? Math.max(0, quota - used) : Infinity;
    for (const entry of entries) {
      if (entry.reason && !entry.limit) continue;
      entry.reason = null;
      entry.limit = false;
      if (accepted >= maxFiles) { entry.reason = "Too many files in one upload (max " + maxFiles + " per upload)"; entry.limit = true; }
      else if (accepted >= remaining) { entry.reason = "Upload quota exceeded"; entry.limit = true; }
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
    summary.textContent = entries.length ? ok + " file(s) ready" + (bad ? ", " + bad + " refused (hover for the reason)" : "") : "";
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
    const fields = ["lab_unit", "camera", "disease", "area"];
    const hospital = form.querySelector("input[name=hospital]:checked");
    if (!hospital || fields.some((name) => !form.elements[name].value)) { showError("All fields are required"); return; }
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
    xhr.onload = () => {
      let body = {};
      try { body = JSON.parse(xhr.responseText); } catch (e) { body = {}; }
      if (xhr.status === 202 && body.processing_url) { window.location.assign(body.processing_url); return; }
      button.disabled = false;
      progress.classList.add("d-none");
      showError(body.detail || "The upload failed (HTTP " + xhr.status + "). Nothing was stored; please try again.");
    };
    xhr.onerror = () => {
      button.disabled = false;
      progress.classList.add("d-none");
      showError("The connection was lost while sending. Nothing was stored; please try again.");
    };
    xhr.send(data);
  });
})();
