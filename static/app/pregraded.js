// Pre-graded grade import: the import form (lab units by hospital, graders by type and lab unit, AI model fields),
// the mapping step (every value must be mapped before importing) and the progress of a running import.
(function () {
  "use strict";

  // --- Import form -------------------------------------------------------------------------------------------------
  const form = document.getElementById("grade-import-form");
  if (form) {
    const labUnit = document.getElementById("lab_unit");
    const grader = document.getElementById("grader");
    const graderField = document.getElementById("grader-field");
    const aiFields = document.getElementById("ai-model-fields");
    const aiModel = document.getElementById("ai_model");
    const errorBox = document.getElementById("form-error");
    const ROLES = { resident: ["resident", "ophthalmologist"], resident2: ["ophthalmologist"] };

    const checkedValue = (name) => {
      const el = form.querySelector("input[name=" + name + "]:checked");
      return el ? el.value : null;
    };

    function filterGraders() {
      const type = checkedValue("grader_type");
      const roles = ROLES[type] || [];
      const unit = labUnit.value;
      for (const option of grader.options) {
        if (!option.value) continue;
        const hasRole = option.dataset.roles.split(" ").some((r) => roles.includes(r));
        const inUnit = !unit || option.dataset.labUnits.trim().split(" ").includes(unit);
        const show = hasRole && inUnit;
        option.hidden = !show;
        option.disabled = !show;
        if (!show && option.selected) grader.value = "";
      }
    }

    function showType() {
      const type = checkedValue("grader_type");
      graderField.classList.toggle("d-none", type === "ai");
      aiFields.classList.toggle("d-none", type !== "ai");
      document.querySelectorAll("#expected-columns .expected").forEach((el) => el.classList.toggle("d-none", el.dataset.type !== type));
      document.querySelector("#expected-columns .expected-none").classList.toggle("d-none", !!type);
      filterGraders();
    }

    function showNewModel() {
      const isNew = !aiModel.value;
      aiFields.querySelectorAll(".new-model").forEach((el) => el.classList.toggle("d-none", !isNew));
    }

    form.querySelectorAll("input[name=grader_type]").forEach((el) => el.addEventListener("change", showType));
    labUnit.addEventListener("change", filterGraders);
    aiModel.addEventListener("change", showNewModel);
    window.FGC.filterLabUnits(form, filterGraders);
    showType();
    showNewModel();

    form.addEventListener("submit", (ev) => {
      const type = checkedValue("grader_type");
      let message = "";
      if (!type) message = "Choose the grader type: resident, resident2 or ai.";
      else if (!checkedValue("hospital") || !labUnit.value || !form.elements.disease.value) message = "All fields are required";
      else if (type !== "ai" && !grader.value) message = "Choose the grader: the " + type + " grades of this file were made by whom?";
      else if (type === "ai" && !aiModel.value && (!form.elements.ai_model_name.value.trim() || !form.elements.ai_model_version.value.trim()))
        message = "An AI import needs the AI model's name and version (for example 'EyeArt' and '2.1').";
      else if (!document.getElementById("file").files.length) message = "No selected file";
      if (message) {
        ev.preventDefault();
        errorBox.textContent = message;
        errorBox.classList.remove("d-none");
        errorBox.scrollIntoView({ behavior: "smooth", block: "center" });
        return;
      }
      document.getElementById("submit-import").disabled = true;
    });
  }

  // --- Mapping step ------------------------------------------------------------------------------------------------
  const mappingForm = document.getElementById("mapping-form");
  if (mappingForm) {
    const selects = Array.from(mappingForm.querySelectorAll(".mapping-select"));
    const left = document.getElementById("mapping-left");
    const submit = document.getElementById("submit-mapping");
    function update() {
      const missing = selects.filter((s) => !s.value);
      selects.forEach((s) => s.classList.toggle("is-invalid", !s.value));
      submit.disabled = missing.length > 0;
      left.textContent = missing.length ? missing.length + " value(s) still to map" : "Every value is mapped.";
    }
    selects.forEach((s) => s.addEventListener("change", update));
    update();
    mappingForm.addEventListener("submit", () => { submit.disabled = true; });
  }

  // --- Progress of a running import ----------------------------------------------------------------------------------
  const root = document.getElementById("grade-import");
  if (root && (root.dataset.status === "queued" || root.dataset.status === "processing")) {
    const note = document.getElementById("poll-note");
    async function poll() {
      try {
        const response = await fetch(root.dataset.statusUrl, { headers: { Accept: "application/json" }, credentials: "same-origin" });
        if (!response.ok) throw new Error("HTTP " + response.status);
        const doc = await response.json();
        if (doc.status !== root.dataset.status) { window.location.reload(); return; }
      } catch (err) {
        if (note) note.textContent = "Could not reach the server (" + err.message + "); retrying. The import goes on in the background.";
      }
      window.setTimeout(poll, 2000);
    }
    window.setTimeout(poll, 1000);
  }
})();
