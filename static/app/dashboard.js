// Image dashboard: selection kept across pages (sessionStorage, at most data-max-selection images), bulk actions,
// exports of the filtered list or of the selection, original/edited thumbnails, clean filter URLs.
(function () {
  "use strict";
  const KEY = "fgc.dashboard.selection";
  const root = document.getElementById("dashboard");
  const filters = document.getElementById("filters");

  function load() {
    try {
      const ids = JSON.parse(sessionStorage.getItem(KEY) || "[]");
      return Array.isArray(ids) ? ids.filter((id) => typeof id === "string") : [];
    } catch (e) { return []; }
  }
  function save(ids) { sessionStorage.setItem(KEY, JSON.stringify(ids)); }
  window.FundusDashboard = { clearSelection: () => save([]) };

  // Filters: leave empty and default values out of the URL, so shared links stay short and readable.
  if (filters) {
    const hospital = filters.querySelector("#f-hospital");
    const unit = filters.querySelector("#f-lab-unit");
    function filterUnits() {
      const h = hospital.value;
      unit.querySelectorAll("option[data-hospital]").forEach((o) => { o.hidden = !!h && o.dataset.hospital !== h; });
      const chosen = unit.selectedOptions[0];
      if (chosen && chosen.hidden) unit.value = "";
    }
    if (hospital && unit) { hospital.addEventListener("change", filterUnits); filterUnits(); }
    filters.addEventListener("submit", () => {
      const defaults = { view: "grid", per_page: "48", sort: "newest" };
      filters.querySelectorAll("input[name], select[name]").forEach((el) => {
        if (!el.value || defaults[el.name] === el.value) el.disabled = true;
      });
    });
    const includes = Array.from(filters.querySelectorAll(".export-include"));
    const links = Array.from(filters.querySelectorAll(".export-link"));
    links.forEach((a) => { a.dataset.base = a.getAttribute("href"); });
    function updateExportLinks() {
      const chosen = includes.filter((c) => c.checked).map((c) => c.value);
      links.forEach((a) => {
        a.href = a.dataset.base + (chosen.length ? "&include=" + encodeURIComponent(chosen.join(",")) : "");
      });
    }
    includes.forEach((c) => c.addEventListener("change", updateExportLinks));
  }

  // A confirmation form that ends a selection (bulk delete confirmed) clears it when sent.
  document.querySelectorAll("form[data-clear-selection]").forEach((form) => {
    form.addEventListener("submit", () => save([]));
  });

  if (!root) return;
  const max = parseInt(root.dataset.maxSelection || "50", 10);
  const bar = document.getElementById("bulk-bar");
  const limit = document.getElementById("selection-limit");
  const boxes = Array.from(document.querySelectorAll(".select-image"));
  let selected = load();

  function render() {
    const set = new Set(selected);
    boxes.forEach((box) => {
      box.checked = set.has(box.value);
      const card = box.closest(".image-card");
      if (card) card.classList.toggle("selected", box.checked);
    });
    bar.classList.toggle("d-none", selected.length === 0);
    document.getElementById("selected-count").textContent = String(selected.length);
    document.querySelectorAll(".selected-count-text").forEach((el) => { el.textContent = String(selected.length); });
    const exportBase = root.dataset.exportUrl + "?" + selected.map((id) => "ids=" + encodeURIComponent(id)).join("&");
    const csv = document.getElementById("export-selection-csv");
    const xlsx = document.getElementById("export-selection-xlsx");
    if (csv) csv.href = exportBase + "&format=csv";
    if (xlsx) xlsx.href = exportBase + "&format=xlsx";
  }
  function warn(show) { limit.classList.toggle("d-none", !show); }
  function add(id) {
    if (selected.includes(id)) return true;
    if (selected.length >= max) { warn(true); return false; }
    selected.push(id);
    return true;
  }

  boxes.forEach((box) => box.addEventListener("change", () => {
    warn(false);
    if (box.checked) add(box.value);
    else selected = selected.filter((id) => id !== box.value);
    save(selected);
    render();
  }));
  const selectVisible = document.getElementById("select-visible");
  if (selectVisible) selectVisible.addEventListener("click", () => {
    warn(false);
    boxes.forEach((box) => add(box.value));
    save(selected);
    render();
  });
  document.getElementById("clear-selection").addEventListener("click", () => {
    selected = [];
    save(selected);
    warn(false);
    render();
  });

  function attachIds(form) {
    form.querySelectorAll("input[name=ids]").forEach((el) => el.remove());
    selected.forEach((id) => {
      const input = document.createElement("input");
      input.type = "hidden";
      input.name = "ids";
      input.value = id;
      form.appendChild(input);
    });
  }
  const editForm = document.getElementById("bulk-edit-form");
  if (editForm) editForm.addEventListener("submit", (ev) => {
    const error = document.getElementById("bulk-edit-error");
    const chosen = Array.from(editForm.querySelectorAll("select")).some((s) => s.value);
    if (!chosen) {
      ev.preventDefault();
      error.textContent = "Choose at least one field to change (lab unit, camera, disease, area or mydriatic).";
      error.classList.remove("d-none");
      return;
    }
    attachIds(editForm);
  });
  const deleteForm = document.getElementById("bulk-delete-form");
  if (deleteForm) deleteForm.addEventListener("submit", () => attachIds(deleteForm));

  // Original / edited thumbnails.
  const toggle = document.getElementById("show-edited");
  function showEdited(on) {
    document.querySelectorAll("img[data-edited-src]").forEach((img) => {
      img.src = on ? img.dataset.editedSrc : img.dataset.originalSrc;
    });
  }
  if (toggle) {
    toggle.checked = localStorage.getItem("fgc.dashboard.showEdited") !== "0";
    showEdited(toggle.checked);
    toggle.addEventListener("change", () => {
      localStorage.setItem("fgc.dashboard.showEdited", toggle.checked ? "1" : "0");
      showEdited(toggle.checked);
    });
  }
  render();
})();
