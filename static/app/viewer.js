// Fundus image viewer: zoom and pan (wheel, drag, pinch, buttons), fit / 100%, and viewing aids (red-free = green
// channel, contrast enhancement) that only change what is shown, never the stored image.
//
// Markup: <div class="fundus-viewer" data-src="…" [data-alt-src="…" data-alt-label="Edited"]></div>
// Each viewer exposes its API on the element: el.viewer.{zoomIn, zoomOut, fit, actualSize, setAid, swapSource}.
(function () {
  "use strict";
  const AIDS = { none: "none", redfree: "url(#fv-redfree)", contrast: "contrast(1.6) brightness(1.1)" };

  function ensureFilters() {
    if (document.getElementById("fv-filters")) return;
    const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
    svg.id = "fv-filters";
    svg.setAttribute("width", "0");
    svg.setAttribute("height", "0");
    svg.style.position = "absolute";
    // Red-free: every channel shows the green channel, as reading centers use it for vessels and haemorrhages.
    svg.innerHTML = '<filter id="fv-redfree" color-interpolation-filters="sRGB"><feColorMatrix type="matrix" values="0 1 0 0 0  0 1 0 0 0  0 1 0 0 0  0 0 0 1 0"/></filter>';
    document.body.appendChild(svg);
  }

  function button(icon, title, action) {
    const b = document.createElement("button");
    b.type = "button";
    b.className = "btn btn-sm btn-dark";
    b.title = title;
    b.setAttribute("aria-label", title);
    b.dataset.action = action;
    b.innerHTML = '<i class="bi ' + icon + '"></i>';
    return b;
  }

  function Viewer(root) {
    ensureFilters();
    root.classList.add("position-relative", "overflow-hidden", "bg-black", "rounded");
    if (!root.style.height) root.style.height = root.dataset.height || "70vh";
    root.style.touchAction = "none";
    root.style.cursor = "grab";
    const img = document.createElement("img");
    img.alt = root.dataset.alt || "Fundus image";
    img.draggable = false;
    img.style.position = "absolute";
    img.style.left = "0";
    img.style.top = "0";
    img.style.transformOrigin = "0 0";
    img.style.userSelect = "none";
    img.style.maxWidth = "none";
    const toolbar = document.createElement("div");
    toolbar.className = "btn-group position-absolute top-0 end-0 m-2 shadow fv-toolbar";
    toolbar.setAttribute("role", "toolbar");
    toolbar.append(
      button("bi-zoom-in", "Zoom in (+)", "zoom-in"),
      button("bi-zoom-out", "Zoom out (-)", "zoom-out"),
      button("bi-arrows-angle-contract", "Fit (0)", "fit"),
      button("bi-1-square", "100% (1)", "actual")
    );
    const aids = document.createElement("div");
    aids.className = "btn-group position-absolute top-0 start-0 m-2 shadow fv-aids";
    for (const [aid, label] of [["none", "Colour"], ["redfree", "Red-free"], ["contrast", "Contrast"]]) {
      const b = document.createElement("button");
      b.type = "button";
      b.className = "btn btn-sm btn-dark" + (aid === "none" ? " active" : "");
      b.dataset.aid = aid;
      b.textContent = label;
      aids.append(b);
    }
    const zoomLabel = document.createElement("span");
    zoomLabel.className = "position-absolute bottom-0 end-0 m-2 badge text-bg-dark fv-zoom";
    root.replaceChildren(img, toolbar, aids, zoomLabel);

    let scale = 1, tx = 0, ty = 0, fitScale = 1;
    const pointers = new Map();
    let last = null, pinchDistance = null;

    function apply() {
      img.style.transform = "translate(" + tx + "px," + ty + "px) scale(" + scale + ")";
      zoomLabel.textContent = Math.round(scale * 100) + "%";
      root.dataset.zoom = String(Math.round(scale * 1000) / 1000);
    }
    function fit() {
      const w = root.clientWidth, h = root.clientHeight;
      if (!img.naturalWidth) return;
      fitScale = Math.min(w / img.naturalWidth, h / img.naturalHeight);
      scale = fitScale;
      tx = (w - img.naturalWidth * scale) / 2;
      ty = (h - img.naturalHeight * scale) / 2;
      apply();
    }
    function zoomAt(factor, cx, cy) {
      const next = Math.min(Math.max(scale * factor, fitScale * 0.5), 16);
      const k = next / scale;
      tx = cx - (cx - tx) * k;
      ty = cy - (cy - ty) * k;
      scale = next;
      apply();
    }
    function center() { return [root.clientWidth / 2, root.clientHeight / 2]; }
    function actualSize() { const [cx, cy] = center(); zoomAt(1 / scale, cx, cy); }
    function setAid(aid) {
      img.style.filter = AIDS[aid] || "none";
      root.dataset.aid = aid;
      aids.querySelectorAll("button").forEach((b) => b.classList.toggle("active", b.dataset.aid === aid));
    }
    function swapSource(src) { img.src = src; root.dataset.current = src; }

    img.addEventListener("load", fit);
    window.addEventListener("resize", fit);
    root.addEventListener("wheel", (ev) => {
      ev.preventDefault();
      const rect = root.getBoundingClientRect();
      zoomAt(ev.deltaY < 0 ? 1.2 : 1 / 1.2, ev.clientX - rect.left, ev.clientY - rect.top);
    }, { passive: false });
    root.addEventListener("pointerdown", (ev) => {
      if (ev.target.closest("button")) return;
      root.setPointerCapture(ev.pointerId);
      pointers.set(ev.pointerId, [ev.clientX, ev.clientY]);
      last = [ev.clientX, ev.clientY];
      root.style.cursor = "grabbing";
    });
    root.addEventListener("pointermove", (ev) => {
      if (!pointers.has(ev.pointerId)) return;
      pointers.set(ev.pointerId, [ev.clientX, ev.clientY]);
      if (pointers.size === 2) {
        const [a, b] = Array.from(pointers.values());
        const d = Math.hypot(a[0] - b[0], a[1] - b[1]);
        const rect = root.getBoundingClientRect();
        if (pinchDistance) zoomAt(d / pinchDistance, (a[0] + b[0]) / 2 - rect.left, (a[1] + b[1]) / 2 - rect.top);
        pinchDistance = d;
        return;
      }
      if (last) { tx += ev.clientX - last[0]; ty += ev.clientY - last[1]; apply(); }
      last = [ev.clientX, ev.clientY];
    });
    function release(ev) {
      pointers.delete(ev.pointerId);
      if (pointers.size < 2) pinchDistance = null;
      if (!pointers.size) { last = null; root.style.cursor = "grab"; }
    }
    root.addEventListener("pointerup", release);
    root.addEventListener("pointercancel", release);
    root.addEventListener("dblclick", (ev) => {
      const rect = root.getBoundingClientRect();
      zoomAt(2, ev.clientX - rect.left, ev.clientY - rect.top);
    });
    toolbar.addEventListener("click", (ev) => {
      const b = ev.target.closest("button");
      if (!b) return;
      const [cx, cy] = center();
      ({ "zoom-in": () => zoomAt(1.25, cx, cy), "zoom-out": () => zoomAt(0.8, cx, cy), fit, actual: actualSize })[b.dataset.action]();
    });
    aids.addEventListener("click", (ev) => { const b = ev.target.closest("button"); if (b) setAid(b.dataset.aid); });
    root.tabIndex = 0;
    root.addEventListener("keydown", (ev) => {
      const [cx, cy] = center();
      const keys = { "+": () => zoomAt(1.25, cx, cy), "=": () => zoomAt(1.25, cx, cy), "-": () => zoomAt(0.8, cx, cy), "0": fit, "1": actualSize };
      if (keys[ev.key]) { ev.preventDefault(); keys[ev.key](); }
    });

    swapSource(root.dataset.src);
    setAid("none");
    return { zoomIn: () => zoomAt(1.25, ...center()), zoomOut: () => zoomAt(0.8, ...center()), fit, actualSize, setAid, swapSource, get scale() { return scale; } };
  }

  function init(scope) {
    (scope || document).querySelectorAll(".fundus-viewer").forEach((el) => { if (!el.viewer) el.viewer = Viewer(el); });
  }
  window.FundusViewer = { init };
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", () => init());
  else init();
})();
