// Image upload form (direct and pre-graded): JPG/PNG by content, size, count and the user's remaining quota are
// checked before sending; the shared behaviour is in upload_form.js.
(function () {
  "use strict";
  const form = document.getElementById("upload-form");
  if (!form) return;
  const maxBytes = Number(form.dataset.maxMb) * 1024 * 1024;
  const maxFiles = Number(form.dataset.maxFiles);
  const quota = Number(form.dataset.quota);
  const used = Number(form.dataset.used);
  const mydriatic = document.getElementById("mydriatic");

  function mydriaticLabel() {
    document.getElementById("mydriatic-label").textContent = mydriatic.checked ? "Mydriatic" : "Non Mydriatic";
  }
  mydriatic.addEventListener("change", mydriaticLabel);
  mydriaticLabel();

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

  window.FGC.uploadForm({
    form,
    noun: "file",
    required: ["lab_unit", "camera", "disease", "area"],
    async check(file) {
      if (file.size > maxBytes) return "File too large (max " + form.dataset.maxMb + "MB)";
      if (file.size === 0) return "Invalid file type: application/x-empty. Only JPG/PNG allowed.";
      const mime = await sniff(file);
      return mime === "image/jpeg" || mime === "image/png" ? null : "Invalid file type: " + mime + ". Only JPG/PNG allowed.";
    },
    caps: () => [
      [maxFiles, "Too many files in one upload (max " + maxFiles + " per upload)"],
      [quota > 0 ? Math.max(0, quota - used) : Infinity, "Upload quota exceeded"],
    ],
  });
})();
