// Verification page: each photograph shows its mask boxes over the image. "Confirm" keeps the boxes found, "Clear"
// shows none, "Adjust" / "Add mask" lets the verifier drag new boxes (in the image's own pixels) that replace them.
(function () {
  "use strict";
  document.querySelectorAll(".mask-editor").forEach((editor) => {
    const width = Number(editor.dataset.width);
    const height = Number(editor.dataset.height);
    const layer = editor.querySelector(".mask-layer");
    const target = document.getElementById(editor.dataset.target);
    const modeName = editor.dataset.modeName;
    const suggested = JSON.parse(editor.dataset.suggested || "[]");
    let boxes = [];
    try { boxes = JSON.parse(target.value || "[]"); } catch (e) { boxes = suggested.slice(); }

    function mode() {
      const checked = document.querySelector('input[name="' + modeName + '"]:checked');
      return checked ? checked.value : "confirm";
    }

    function draw() {
      layer.replaceChildren();
      const shown = mode() === "clear" ? [] : boxes;
      shown.forEach((box) => {
        const div = document.createElement("div");
        div.className = "position-absolute border border-2 border-warning mask-box";
        div.style.background = "rgba(0, 0, 0, 0.6)";
        div.style.left = (100 * box[0]) / width + "%";
        div.style.top = (100 * box[1]) / height + "%";
        div.style.width = (100 * (box[2] - box[0])) / width + "%";
        div.style.height = (100 * (box[3] - box[1])) / height + "%";
        layer.append(div);
      });
      layer.style.cursor = mode() === "adjust" ? "crosshair" : "default";
      target.value = JSON.stringify(mode() === "clear" ? [] : boxes);
    }

    document.querySelectorAll('input[name="' + modeName + '"]').forEach((radio) => radio.addEventListener("change", () => {
      if (mode() === "confirm") boxes = suggested.slice();
      if (mode() === "adjust") boxes = [];
      draw();
    }));

    let start = null;
    let rubber = null;
    function point(ev) {
      const rect = layer.getBoundingClientRect();
      const x = Math.min(Math.max(ev.clientX - rect.left, 0), rect.width);
      const y = Math.min(Math.max(ev.clientY - rect.top, 0), rect.height);
      return { x: Math.round((x * width) / rect.width), y: Math.round((y * height) / rect.height), rect };
    }
    layer.addEventListener("pointerdown", (ev) => {
      if (mode() !== "adjust" || editor.closest("fieldset[disabled]")) return;
      ev.preventDefault();
      layer.setPointerCapture(ev.pointerId);
      start = point(ev);
      rubber = document.createElement("div");
      rubber.className = "position-absolute border border-2 border-danger";
      layer.append(rubber);
    });
    layer.addEventListener("pointermove", (ev) => {
      if (!start) return;
      const p = point(ev);
      const x0 = Math.min(start.x, p.x), y0 = Math.min(start.y, p.y);
      rubber.style.left = (100 * x0) / width + "%";
      rubber.style.top = (100 * y0) / height + "%";
      rubber.style.width = (100 * Math.abs(p.x - start.x)) / width + "%";
      rubber.style.height = (100 * Math.abs(p.y - start.y)) / height + "%";
    });
    layer.addEventListener("pointerup", (ev) => {
      if (!start) return;
      const p = point(ev);
      const box = [Math.min(start.x, p.x), Math.min(start.y, p.y), Math.max(start.x, p.x), Math.max(start.y, p.y)];
      start = null;
      if (box[2] - box[0] > 2 && box[3] - box[1] > 2) boxes.push(box);
      draw();
    });
    draw();
  });
})();
