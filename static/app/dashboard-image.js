// Image page: switch the viewer between the original and the edited version (each is fitted to the view, as they
// may differ in size after a crop or rotation), and ask before destructive actions.
(function () {
  "use strict";
  const viewerEl = document.getElementById("viewer");
  const toggles = Array.from(document.querySelectorAll(".version-toggle"));
  toggles.forEach((button) => button.addEventListener("click", () => {
    if (!viewerEl || !viewerEl.viewer) return;
    viewerEl.viewer.swapSource(button.dataset.src);
    viewerEl.dataset.version = button.dataset.version;
    toggles.forEach((b) => b.classList.toggle("active", b === button));
  }));
  if (viewerEl) viewerEl.dataset.version = toggles.length ? "edited" : "original";
  document.querySelectorAll("form[data-confirm]").forEach((form) => {
    form.addEventListener("submit", (ev) => {
      if (!window.confirm(form.dataset.confirm)) ev.preventDefault();
    });
  });
})();
