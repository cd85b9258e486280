// ZIP upload form: archives are checked before sending (ZIP by content, size, count); the shared behaviour is in
// upload_form.js.
(function () {
  "use strict";
  const form = document.getElementById("zip-form");
  if (!form) return;
  const maxBytes = Number(form.dataset.maxBytes);
  const maxSize = form.dataset.maxSize;
  const maxFiles = Number(form.dataset.maxFiles);

  // ZIP by content: a local file header (PK\x03\x04) or the end record of an empty archive (PK\x05\x06).
  function isZip(file) {
    return new Promise((resolve) => {
      const reader = new FileReader();
      reader.onload = () => {
        const b = new Uint8Array(reader.result);
        resolve(b.length >= 4 && b[0] === 0x50 && b[1] === 0x4b && ((b[2] === 3 && b[3] === 4) || (b[2] === 5 && b[3] === 6)));
      };
      reader.onerror = () => resolve(false);
      reader.readAsArrayBuffer(file.slice(0, 4));
    });
  }

  window.FGC.uploadForm({
    form,
    noun: "archive",
    required: ["lab_unit", "camera"],
    async check(file) {
      if (file.size > maxBytes) return "File too large (max " + maxSize + ")";
      if (!(await isZip(file))) return "Invalid file type: " + (file.type || "unknown") + ". Only ZIP archives (.zip) are allowed.";
      return null;
    },
    caps: () => [[maxFiles, "Too many files in one upload (max " + maxFiles + " per upload)"]],
  });
})();
