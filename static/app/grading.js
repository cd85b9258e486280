// Grading page: keyboard shortcuts for the options, time spent, and lease renewal while the grader is active.
(function () {
  "use strict";
  const form = document.getElementById("grade-form");
  if (!form) return;
  const seconds = document.getElementById("seconds_spent");
  const lease = document.getElementById("lease");

  // Time spent: seconds the page was visible, sent with the grade.
  let spent = 0;
  setInterval(() => { if (document.visibilityState === "visible") spent += 1; }, 1000);
  form.addEventListener("submit", () => { seconds.value = String(spent); });

  function submitWith(buttonId) {
    const button = document.getElementById(buttonId);
    if (button) form.requestSubmit(button);
  }

  document.addEventListener("keydown", (ev) => {
    const target = ev.target;
    if (ev.defaultPrevented || ev.ctrlKey || ev.metaKey || ev.altKey) return;
    if (target.closest && (target.closest("textarea, input[type=text], select") || target.closest(".fundus-viewer"))) return;
    if (ev.key === "Enter") {
      if (form.querySelector("input[name=option]:checked")) {
        ev.preventDefault();
        submitWith(document.getElementById("save-next") ? "save-next" : "save");
      }
      return;
    }
    if (ev.shiftKey && ev.key.toLowerCase() === "s") {
      ev.preventDefault();
      submitWith("skip");
      return;
    }
    const key = ev.key.toLowerCase();
    const radio = Array.from(form.querySelectorAll("input[name=option]")).find((r) => r.dataset.key && r.dataset.key.toLowerCase() === key);
    if (radio) {
      ev.preventDefault();
      radio.checked = true;
      radio.dispatchEvent(new Event("change", { bubbles: true }));
      const label = form.querySelector('label[for="' + radio.id + '"]');
      if (label) label.focus({ preventScroll: true });
    }
  });

  if (!lease) return;
  // Lease: shown as a countdown; renewed while the grader is active, so only an abandoned task returns to the queue.
  let expires = new Date(lease.dataset.expires);
  let active = false;
  ["pointermove", "keydown", "wheel", "pointerdown"].forEach((name) => document.addEventListener(name, () => { active = true; }, { passive: true }));
  function csrf() { const el = form.querySelector("input[name=csrfmiddlewaretoken]"); return el ? el.value : ""; }
  function show() {
    const left = Math.max(0, Math.round((expires - new Date()) / 1000));
    if (left === 0) {
      lease.textContent = "Your lease expired: the task went back to the queue.";
      lease.className = "ms-auto small text-danger fw-semibold";
      return;
    }
    lease.textContent = "Yours for " + Math.floor(left / 60) + ":" + String(left % 60).padStart(2, "0");
  }
  async function renew() {
    if (!active || expires <= new Date()) return;
    active = false;
    try {
      const response = await fetch(lease.dataset.renewUrl, { method: "POST", headers: { "X-CSRFToken": csrf(), Accept: "application/json" }, credentials: "same-origin" });
      if (response.ok) expires = new Date((await response.json()).lease_expires_at);
    } catch (err) { /* offline for a moment: the next attempt renews */ }
  }
  const every = Math.min(120, Math.max(20, Math.floor(Number(lease.dataset.leaseSeconds || 900) / 3))) * 1000;
  setInterval(renew, every);
  setInterval(show, 1000);
  show();
})();
