// Processing page: polls the status API every 3 s until the job ends, then offers (and goes to) the results.
(function () {
  "use strict";
  const root = document.getElementById("job");
  if (!root) return;
  const statusUrl = root.dataset.statusUrl;
  const resultsUrl = root.dataset.resultsUrl;
  const CLASSES = { queued: "text-bg-secondary", processing: "text-bg-primary", completed: "text-bg-success", done: "text-bg-success", error: "text-bg-danger" };
  const LABELS = { queued: "Queued", processing: "Processing", completed: "Completed", done: "Completed", error: "Error" };
  let timer = null;
  let finished = false;

  function badge(status) {
    const span = document.createElement("span");
    span.className = "badge status-badge " + (CLASSES[status] || "text-bg-secondary");
    span.dataset.status = status;
    span.textContent = LABELS[status] || status;
    return span;
  }

  function render(doc) {
    document.getElementById("job-status").replaceChildren(badge(doc.status));
    const done = doc.completed + doc.failed;
    const share = (n) => (doc.total ? (100 * n) / doc.total : 0) + "%";
    document.getElementById("progress-completed").style.width = share(doc.completed);
    document.getElementById("progress-failed").style.width = share(doc.failed);
    document.getElementById("progress-running").style.width = share(doc.processing || 0);
    const progress = document.getElementById("progress");
    progress.setAttribute("aria-valuemax", doc.total);
    progress.setAttribute("aria-valuenow", done);
    document.getElementById("progress-bar").textContent = (doc.total ? Math.round((100 * done) / doc.total) : 100) + "%";
    document.getElementById("counts").textContent = doc.completed + " completed · " + doc.failed + " failed · " + doc.pending + " pending of " + doc.total;
    const errors = document.getElementById("error-count");
    errors.textContent = doc.failed + " error(s)";
    errors.classList.toggle("d-none", !doc.failed);
    const list = document.getElementById("items");
    list.replaceChildren();
    doc.items.forEach((item, index) => {
      const li = document.createElement("li");
      li.className = "list-group-item d-flex align-items-center gap-2";
      li.dataset.index = index;
      const name = document.createElement("span");
      name.className = "file-name flex-grow-1";
      name.textContent = item.filename;
      const err = document.createElement("span");
      err.className = "small text-danger item-error";
      err.textContent = item.error || "";
      const result = document.createElement("span");
      result.className = "small text-body-secondary item-result";
      const summary = item.result && item.result.summary;
      if (summary) result.append(summary);
      const skipped = (item.result && item.result.skipped) || [];
      if (skipped.length) {
        // Entries an archive skipped, each with its reason (text only: names come from user files).
        const details = document.createElement("details");
        const head = document.createElement("summary");
        head.textContent = skipped.length + (skipped.length === 1 ? " entry" : " entries") + " skipped";
        const ul = document.createElement("ul");
        ul.className = "mb-0";
        skipped.forEach((s) => {
          const entry = document.createElement("li");
          const entryName = document.createElement("span");
          entryName.className = "file-name";
          entryName.textContent = s.name;
          entry.append(entryName, ": " + s.reason);
          ul.append(entry);
        });
        details.append(head, ul);
        result.append(details);
      }
      li.append(badge(item.status), name, err, result);
      list.append(li);
    });
    if (doc.status === "done" || doc.status === "error") {
      finished = true;
      document.getElementById("view-results").classList.remove("d-none");
      document.getElementById("poll-note").textContent = "Finished. Opening the results…";
      window.clearTimeout(timer);
      window.setTimeout(() => window.location.assign(resultsUrl), 1500);
    }
  }

  async function poll() {
    window.clearTimeout(timer);
    try {
      const response = await fetch(statusUrl, { headers: { Accept: "application/json" }, credentials: "same-origin" });
      if (!response.ok) throw new Error("HTTP " + response.status);
      render(await response.json());
      document.getElementById("poll-note").textContent = finished ? document.getElementById("poll-note").textContent : "Updated " + new Date().toLocaleTimeString();
    } catch (err) {
      document.getElementById("poll-note").textContent = "Could not reach the server (" + err.message + "); retrying. Processing continues in the background.";
    }
    if (!finished) timer = window.setTimeout(poll, 3000);
  }

  document.getElementById("refresh-now").addEventListener("click", poll);
  poll();
})();
