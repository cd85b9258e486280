// Image editor: builds the list of operations (rotate, flip, crop, mask, brightness/contrast) and previews it on a
// down-scaled copy of the original, with the same arithmetic as the server (uploads/editing.py), which renders the
// saved version from the full-resolution original. Region coordinates are in full-resolution pixels of the image as
// it is at that step.
(function () {
  "use strict";
  const root = document.getElementById("editor");
  if (!root) return;
  const PREVIEW_MAX = 1600;
  const W = parseInt(root.dataset.width, 10);
  const H = parseInt(root.dataset.height, 10);
  const stage = document.getElementById("editor-stage");
  const canvas = document.getElementById("editor-canvas");
  const selectionBox = document.getElementById("editor-selection");
  const field = document.getElementById("operations");
  const brightness = document.getElementById("brightness");
  const contrast = document.getElementById("contrast");
  const source = new Image();

  let ops = [];
  try {
    const initial = JSON.parse(field.value || "[]");
    if (Array.isArray(initial)) ops = initial;
  } catch (e) { ops = []; }
  const last = ops[ops.length - 1];
  if (last && last.op === "adjust") {
    ops.pop();
    brightness.value = last.brightness;
    contrast.value = last.contrast;
  }

  let geometry = null; // {canvas, w, h}: the preview after the geometric and mask steps
  let result = null; // {w, h} full-resolution size of the result
  let view = { scale: 1, x: 0, y: 0 }; // display pixels per full-resolution pixel, and offset in the stage
  let selection = null; // {x, y, width, height} in full-resolution pixels

  function makeCanvas(w, h) {
    const c = document.createElement("canvas");
    c.width = Math.max(1, Math.round(w));
    c.height = Math.max(1, Math.round(h));
    return c;
  }

  function applyGeometry() {
    const s = Math.min(1, PREVIEW_MAX / Math.max(W, H));
    let c = makeCanvas(W * s, H * s);
    c.getContext("2d").drawImage(source, 0, 0, c.width, c.height);
    let w = W, h = H;
    for (const op of ops) {
      if (op.op === "rotate") {
        const quarter = op.degrees !== 180;
        const n = quarter ? makeCanvas(c.height, c.width) : makeCanvas(c.width, c.height);
        const ctx = n.getContext("2d");
        ctx.translate(n.width / 2, n.height / 2);
        ctx.rotate((op.degrees * Math.PI) / 180);
        ctx.drawImage(c, -c.width / 2, -c.height / 2);
        c = n;
        if (quarter) [w, h] = [h, w];
      } else if (op.op === "flip") {
        const n = makeCanvas(c.width, c.height);
        const ctx = n.getContext("2d");
        if (op.axis === "horizontal") { ctx.translate(n.width, 0); ctx.scale(-1, 1); }
        else { ctx.translate(0, n.height); ctx.scale(1, -1); }
        ctx.drawImage(c, 0, 0);
        c = n;
      } else if (op.op === "crop") {
        const k = c.width / w;
        const n = makeCanvas(op.width * k, op.height * k);
        n.getContext("2d").drawImage(c, op.x * k, op.y * k, op.width * k, op.height * k, 0, 0, n.width, n.height);
        c = n;
        w = op.width;
        h = op.height;
      } else if (op.op === "mask") {
        const k = c.width / w;
        const ctx = c.getContext("2d");
        ctx.fillStyle = "#000";
        ctx.fillRect(op.x * k, op.y * k, op.width * k, op.height * k);
      } else if (op.op === "adjust") {
        adjustInPlace(c, op.brightness, op.contrast);
      }
    }
    geometry = { canvas: c, w, h };
  }

  function lut(b, k) {
    const table = new Uint8ClampedArray(256);
    for (let v = 0; v < 256; v++) table[v] = Math.round((v * b - 127.5) * k + 127.5);
    return table;
  }
  function adjustInPlace(c, b, k) {
    if (b === 1 && k === 1) return;
    const ctx = c.getContext("2d");
    const data = ctx.getImageData(0, 0, c.width, c.height);
    const t = lut(b, k);
    const px = data.data;
    for (let i = 0; i < px.length; i += 4) { px[i] = t[px[i]]; px[i + 1] = t[px[i + 1]]; px[i + 2] = t[px[i + 2]]; }
    ctx.putImageData(data, 0, 0);
  }

  function factors() { return [parseFloat(brightness.value), parseFloat(contrast.value)]; }
  function allOps() {
    const [b, k] = factors();
    return b === 1 && k === 1 ? ops.slice() : ops.concat([{ op: "adjust", brightness: b, contrast: k }]);
  }

  function draw() {
    if (!geometry) return;
    const [b, k] = factors();
    const shown = makeCanvas(geometry.canvas.width, geometry.canvas.height);
    shown.getContext("2d").drawImage(geometry.canvas, 0, 0);
    adjustInPlace(shown, b, k);
    const sw = stage.clientWidth, sh = stage.clientHeight;
    const fit = Math.min(sw / geometry.w, sh / geometry.h);
    view = { scale: fit, x: (sw - geometry.w * fit) / 2, y: (sh - geometry.h * fit) / 2 };
    canvas.width = Math.max(1, Math.round(geometry.w * fit));
    canvas.height = Math.max(1, Math.round(geometry.h * fit));
    canvas.style.left = view.x + "px";
    canvas.style.top = view.y + "px";
    canvas.getContext("2d").drawImage(shown, 0, 0, canvas.width, canvas.height);
    result = { w: geometry.w, h: geometry.h };
    document.getElementById("editor-size").textContent = result.w + "×" + result.h;
    document.getElementById("brightness-value").textContent = b.toFixed(2);
    document.getElementById("contrast-value").textContent = k.toFixed(2);
    field.value = JSON.stringify(allOps());
    canvas.dataset.operations = field.value;
    drawSelection();
    listSteps();
  }

  function describe(op) {
    if (op.op === "rotate") return "Rotate " + op.degrees + "° clockwise";
    if (op.op === "flip") return "Flip " + op.axis;
    if (op.op === "crop" || op.op === "mask") {
      return (op.op === "crop" ? "Crop to " : "Mask ") + op.width + "×" + op.height + " at " + op.x + "," + op.y;
    }
    return "Brightness " + op.brightness + "×, contrast " + op.contrast + "×";
  }
  function listSteps() {
    const list = document.getElementById("editor-steps");
    list.replaceChildren();
    const steps = allOps();
    if (!steps.length) {
      const li = document.createElement("li");
      li.className = "text-body-secondary";
      li.textContent = "No changes yet.";
      list.append(li);
    }
    steps.forEach((op) => { const li = document.createElement("li"); li.textContent = describe(op); list.append(li); });
  }

  function rebuild() { applyGeometry(); selection = null; draw(); }

  // Region selection by dragging, in full-resolution pixels of the current result.
  let dragStart = null;
  function toImage(ev) {
    const rect = stage.getBoundingClientRect();
    const x = (ev.clientX - rect.left - view.x) / view.scale;
    const y = (ev.clientY - rect.top - view.y) / view.scale;
    return [Math.min(Math.max(x, 0), result.w), Math.min(Math.max(y, 0), result.h)];
  }
  stage.addEventListener("pointerdown", (ev) => {
    if (!result) return;
    stage.setPointerCapture(ev.pointerId);
    dragStart = toImage(ev);
    selection = null;
    drawSelection();
  });
  stage.addEventListener("pointermove", (ev) => {
    if (!dragStart) return;
    const [x, y] = toImage(ev);
    const x0 = Math.round(Math.min(x, dragStart[0])), y0 = Math.round(Math.min(y, dragStart[1]));
    const x1 = Math.round(Math.max(x, dragStart[0])), y1 = Math.round(Math.max(y, dragStart[1]));
    selection = { x: x0, y: y0, width: x1 - x0, height: y1 - y0 };
    drawSelection();
  });
  function endDrag() {
    dragStart = null;
    if (selection && (selection.width < 2 || selection.height < 2)) selection = null;
    drawSelection();
  }
  stage.addEventListener("pointerup", endDrag);
  stage.addEventListener("pointercancel", endDrag);

  function drawSelection() {
    const info = document.getElementById("selection-info");
    const has = !!selection;
    document.getElementById("apply-crop").disabled = !has;
    document.getElementById("apply-mask").disabled = !has;
    selectionBox.classList.toggle("d-none", !has);
    if (!has) { info.textContent = "No region selected."; return; }
    selectionBox.style.left = view.x + selection.x * view.scale + "px";
    selectionBox.style.top = view.y + selection.y * view.scale + "px";
    selectionBox.style.width = selection.width * view.scale + "px";
    selectionBox.style.height = selection.height * view.scale + "px";
    info.textContent = "Region " + selection.width + "×" + selection.height + " at " + selection.x + "," + selection.y;
    stage.dataset.selection = JSON.stringify(selection);
  }

  root.querySelectorAll("[data-op]").forEach((button) => button.addEventListener("click", () => {
    if (button.dataset.op === "rotate") ops.push({ op: "rotate", degrees: parseInt(button.dataset.degrees, 10) });
    else ops.push({ op: "flip", axis: button.dataset.axis });
    rebuild();
  }));
  function applyRegion(kind) {
    if (!selection) return;
    if (kind === "crop" && (selection.width < 16 || selection.height < 16)) {
      showError("Select a larger region: a crop keeps at least 16×16 pixels.");
      return;
    }
    ops.push({ op: kind, x: selection.x, y: selection.y, width: selection.width, height: selection.height });
    rebuild();
  }
  document.getElementById("apply-crop").addEventListener("click", () => applyRegion("crop"));
  document.getElementById("apply-mask").addEventListener("click", () => applyRegion("mask"));
  document.getElementById("undo").addEventListener("click", () => {
    const [b, k] = factors();
    if (b !== 1 || k !== 1) { brightness.value = 1; contrast.value = 1; draw(); return; }
    ops.pop();
    rebuild();
  });
  document.getElementById("start-over").addEventListener("click", () => {
    ops = [];
    brightness.value = 1;
    contrast.value = 1;
    rebuild();
  });
  brightness.addEventListener("input", draw);
  contrast.addEventListener("input", draw);
  window.addEventListener("resize", draw);

  function showError(message) {
    const box = document.getElementById("editor-client-error");
    box.textContent = message;
    box.classList.remove("d-none");
  }
  document.getElementById("editor-form").addEventListener("submit", (ev) => {
    field.value = JSON.stringify(allOps());
    if (!allOps().length) {
      ev.preventDefault();
      showError("Nothing to save: make at least one change, or use Cancel.");
    }
  });

  source.addEventListener("load", () => {
    document.getElementById("editor-loading").remove();
    rebuild();
    root.dataset.ready = "1";
  });
  source.addEventListener("error", () => {
    document.getElementById("editor-loading").textContent = "The original could not be loaded. Reload the page.";
  });
  source.src = root.dataset.src;
})();
