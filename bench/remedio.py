"""Remidio ZIP ingestion: a synthetic export of 50 encounters (150 fundus photographs of 2866 x 2866, about 1 MB each, a
third with burnt-in text; 50 two-page rasterised Medios AI reports) uploaded and ingested through the job engine.

Figures:

- **seconds per encounter** of the whole ingestion (the upload service staging and hashing the archive, then the job:
  safe extraction, layout, OCR of the reports, image analysis, masking, storage, database), and its ratio to a
  baseline measured in the same process on the same archive: stream every entry out of the ZIP and MD5 it, and OCR
  every report page (rendered at ``REMEDIO_OCR_DPI``, Tesseract with the same settings) and nothing else
  (target ≤ 1.5);
- **peak worker memory** (``ru_maxrss`` of a child process that ingests a 64 MB archive, from ``os.wait4``), against
  the peak of the same child doing everything but the ingestion (Django loaded, database migrated) (target ≤ 300 MB).
  The figure is the child's VmHWM (Linux), which starts afresh when the child starts Python; ``ru_maxrss`` from
  ``wait4`` is printed beside. Tesseract runs in short-lived processes of its own, not counted.

Each measurement runs in a fresh child process on SQLite in a temporary folder (``config.settings``, eager tasks).
The photographs are generated once into a temporary folder and reused. Settings (environment): BENCH_ENCOUNTERS
(default 50; 5 with ``--quick``), BENCH_MEMORY_MB (default 64; 16 with ``--quick``).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

from bench import Figure

DESCRIPTION = (
    "Remidio export (50 encounters, 150 photographs of ~1 MB, 50 two-page rasterised reports) ingested through the "
    "job engine, against unzip + MD5 + OCR of the same pages; peak worker memory for a 64 MB archive"
)
ROOT = Path(__file__).resolve().parent.parent
SIDE = 2866
QUALITY = 70  # about 1 MB per photograph, as the cameras write them
SET_VERSION = 1
TARGET_RATIO = 1.5
TARGET_MEMORY_MB = 300
CHUNK = 1024 * 1024


# --- the synthetic export ------------------------------------------------------------------------------------------


def _folder() -> Path:
    folder = Path(tempfile.gettempdir()) / f"fgc-bench-remedio-{SIDE}-v{SET_VERSION}"
    folder.mkdir(exist_ok=True)
    return folder


def _photograph(index: int) -> Path:
    """Photograph ``index`` (generated once): disc right or left, every third one with a burnt-in band."""
    path = _folder() / f"photo-{index:03d}.jpg"
    if not path.exists():
        from tests.remedio import export

        band = f"Bench Patient {index // 3:04d} MRN{index // 3:05d} 01-02-2024" if index % 3 == 2 else None
        data = export.fundus_jpeg(
            size=(SIDE, SIDE), seed=10_000 + index, disc_side="right" if index % 2 == 0 else "left",
            band_text=band, quality=QUALITY,
        )  # fmt: skip
        path.write_bytes(data)
    return path


def _report(encounter: int) -> bytes:
    from tests.remedio import export

    dr = ("dr-", "dr+", "dr_amd-", "dr_amd+")[encounter % 4]
    glaucoma = ("glaucoma-", "glaucoma+", "glaucoma++")[encounter % 3]
    spec = export.ReportSpec(
        name=f"Bench Patient {encounter:04d}", patient_id=f"MRN{encounter:05d}", dr=dr, glaucoma=glaucoma,
        vcdr=(f"0.{30 + encounter % 40}", f"0.{35 + encounter % 30}"),
    )  # fmt: skip
    return export.report_pdf(spec, rasterised=True)


def build_archive(path: Path, *, encounters: int | None = None, min_bytes: int | None = None) -> dict:
    """Write an export of ``encounters`` visits (or as many as needed to reach ``min_bytes``) to ``path``."""
    from tests.remedio import export

    count = 0
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        while (encounters is not None and count < encounters) or (min_bytes is not None and path.stat().st_size < min_bytes):
            folder = f"Bench_Patient_{count:04d}_MRN{count:05d}_01-02-2024"
            for shot in range(3):
                name = export.capture_name(10, shot, 16, 99)
                zf.write(_photograph(count * 3 + shot), f"{folder}/FOP/{name}", compress_type=zipfile.ZIP_STORED)
            zf.writestr(f"{folder}/REPORTS/{export.capture_name(11, 0, 30, 5, ext='pdf')}", _report(count))
            count += 1
            zf.fp.flush()
    return {"encounters": count, "images": count * 3, "reports": count, "bytes": path.stat().st_size}


# --- the parent: one child per measurement --------------------------------------------------------------------------


def _env(data_dir: str) -> dict:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DJANGO_SECRET_KEY": "benchmark-only",
        "DEBUG": "0",
        "DATA_DIR": data_dir,
        "CELERY_TASK_ALWAYS_EAGER": "1",
        "LOG_LEVEL": "WARNING",
        "PATIENT_PSEUDONYM_KEY": "benchmark-only",
        "PATIENT_ENCRYPTION_KEY": "YmVuY2htYXJrLW9ubHktYmVuY2htYXJrLW9ubHktMDA=",
        "PER_FILE_MAX_BYTES": "1GB",  # the 50-encounter export is about 150 MB
    }
    env.pop("DATABASE_URL", None)
    return env


def _child_run(mode: str, archive: Path, *extra: str) -> tuple[dict, int]:
    """Run a child; returns its JSON output and its peak RSS in KB as ``wait4`` reports it (``ru_maxrss``)."""
    with tempfile.TemporaryDirectory(prefix="fgc-bench-remedio-") as data_dir:
        out = Path(data_dir) / "result.json"
        args = [sys.executable, "-m", "bench.remedio", "--mode", mode, "--archive", str(archive), "--out", str(out)]
        proc = subprocess.Popen([*args, *extra], env=_env(data_dir), cwd=ROOT)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            raise RuntimeError(f"bench.remedio child ({mode}) exited with {proc.returncode}")
        return json.loads(out.read_text()), usage.ru_maxrss


def run(quick: bool) -> list[Figure]:
    encounters = int(os.environ.get("BENCH_ENCOUNTERS", "5" if quick else "50"))
    memory_mb = int(os.environ.get("BENCH_MEMORY_MB", "16" if quick else "64"))
    with tempfile.TemporaryDirectory(prefix="fgc-bench-remedio-archives-") as tmp:
        started = time.perf_counter()
        throughput_zip, memory_zip = Path(tmp) / "export.zip", Path(tmp) / "memory.zip"
        # Built in a child too: this process stays small, so its pages never count in a measured child's peak.
        made, _ = _child_run("build", throughput_zip, "--encounters", str(encounters))
        sized, _ = _child_run("build", memory_zip, "--min-mb", str(memory_mb))
        print(f"  archives ready in {time.perf_counter() - started:.0f}s: {made} and {sized}", flush=True)

        timing, _ = _child_run("throughput", throughput_zip)
        idle, idle_maxrss = _child_run("idle", memory_zip)
        ingested, ingest_maxrss = _child_run("memory", memory_zip)
    # The peak of the worker's own memory: VmHWM, which starts afresh when the child starts Python (ru_maxrss would
    # also count the pages the child had, for an instant, as a copy of this process before it started Python).
    idle_rss, ingest_rss = idle["vm_hwm_kb"] or idle_maxrss, ingested["vm_hwm_kb"] or ingest_maxrss

    load = os.getloadavg()
    per_encounter = timing["ingest_seconds"] / made["encounters"]
    baseline = timing["baseline_seconds"] / made["encounters"]
    result = timing["result"]
    note = (
        f"{made['encounters']} encounters, {result['images_created']} photographs, {result['reports_created']} reports "
        f"({timing['manual_entry']} to enter by hand), {made['bytes'] / 2**20:.0f} MB archive; ingest "
        f"{timing['ingest_seconds']:.1f}s vs baseline {timing['baseline_seconds']:.1f}s (unzip+MD5 "
        f"{timing['unzip_seconds']:.1f}s, OCR of {timing['pages']} pages {timing['ocr_seconds']:.1f}s); "
        f"load average {load[0]:.1f} on {os.cpu_count()} cores"
    )
    memory_note = (
        f"{sized['bytes'] / 2**20:.0f} MB archive, {ingested['result']['encounters_created']} encounters, "
        f"{ingested['result']['images_created']} photographs; baseline: the same child without the ingestion "
        f"({idle_rss / 1024:.0f} MB); ru_maxrss from wait4 {ingest_maxrss / 1024:.0f} MB; Tesseract's short-lived "
        f"processes not included"
    )
    assert idle["ready"]
    return [
        Figure(
            "remedio",
            "ingestion seconds per encounter",
            per_encounter,
            "s",
            baseline=baseline,
            target=f"≤ {TARGET_RATIO:g}",
            note=note,
        ),
        Figure(
            "remedio",
            "peak worker memory, 64 MB archive" if memory_mb == 64 else f"peak worker memory, {memory_mb} MB archive",
            ingest_rss / 1024,
            "MB",
            baseline=idle_rss / 1024,
            target=f"≤ {TARGET_MEMORY_MB} MB",
            note=memory_note,
        ),
    ]


# --- the child process -----------------------------------------------------------------------------------------------


def _setup():
    from accounts.models import Camera, Hospital, LabUnit, Role
    from accounts.services import reference_data_ensure, user_provision
    from grading.services import schemes_ensure

    reference_data_ensure()
    schemes_ensure()
    hospital, _ = Hospital.objects.get_or_create(code="bench-hospital", defaults={"name": "Bench hospital"})
    unit, _ = LabUnit.objects.get_or_create(code="bench-unit", defaults={"name": "Bench unit", "hospital": hospital})
    camera, _ = Camera.objects.get_or_create(code="bench-fop", defaults={"name": "Remidio FOP"})
    user, _ = user_provision(
        username="bench-manager", password="bench-pass-2024", roles=[Role.DATA_MANAGER], lab_units=[unit.code]
    )
    return user, hospital, unit, camera


def _baseline(archive: Path) -> dict:
    """Unzip and MD5 every entry (streamed), then OCR every report page exactly as the ingestion does."""
    import pypdfium2 as pdfium

    from remedio import reports

    started = time.perf_counter()
    pdfs = []
    with tempfile.TemporaryDirectory(prefix="fgc-bench-baseline-") as scratch, zipfile.ZipFile(archive) as zf:
        for index, info in enumerate(zf.infolist()):
            if info.is_dir():
                continue
            digest = hashlib.md5()  # noqa: S324 - the same fingerprint the ingestion computes
            target = Path(scratch) / f"{index:05d}"
            with zf.open(info) as source, open(target, "wb") as sink:
                while chunk := source.read(CHUNK):
                    digest.update(chunk)
                    sink.write(chunk)
            if info.filename.endswith(".pdf"):
                pdfs.append(target)
        unzipped = time.perf_counter()
        pages = 0
        for path in pdfs:
            document = pdfium.PdfDocument(str(path))
            try:
                for index in range(len(document)):
                    reports.ocr_page(document[index])
                    pages += 1
            finally:
                document.close()
    finished = time.perf_counter()
    return {"unzip_seconds": unzipped - started, "ocr_seconds": finished - unzipped, "pages": pages}


def _ingest(archive: Path, user, hospital, unit, camera) -> dict:
    from django.core.files.uploadedfile import UploadedFile

    from jobs.models import JobItem
    from remedio.services import upload as upload_service
    from uploads.services import UploadTarget

    target = UploadTarget(hospital=hospital, lab_unit=unit, camera=camera, disease=None, area=None, mydriatic=False)
    with open(archive, "rb") as fh:
        uploaded = UploadedFile(
            file=fh, name="MRN00000_01-02-2024_10.02.16.099_AM.zip", content_type="application/zip",
            size=archive.stat().st_size,
        )  # fmt: skip
        # The upload service stages and hashes the archive and creates the job; its items are queued when that
        # commits and, with eager tasks, processed right there as a worker would, so the clock stops when it is done.
        job = upload_service.zip_upload_create(
            user=user, target=target, files=[uploaded], client_ip="127.0.0.1", user_agent="bench"
        )
    item = JobItem.objects.get(job=job)
    if item.status != JobItem.Status.COMPLETED:
        raise RuntimeError(f"ingestion failed: {item.status} {item.error}")
    return item.result


def _vm_hwm_kb() -> int:
    """This process's peak resident memory (Linux: VmHWM of /proc/self/status), 0 when unknown."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _child(mode: str, archive: Path, out: Path, options) -> None:
    if mode == "build":
        sys.path.insert(0, str(ROOT))
        if options.min_mb:
            made = build_archive(archive, min_bytes=options.min_mb * 1024 * 1024)
        else:
            made = build_archive(archive, encounters=options.encounters)
        out.write_text(json.dumps(made))
        return
    import django

    django.setup()
    from django.core.management import call_command

    from remedio.models import Report

    call_command("migrate", verbosity=0)
    user, hospital, unit, camera = _setup()
    if mode == "idle":
        out.write_text(json.dumps({"ready": True, "vm_hwm_kb": _vm_hwm_kb()}))
        return
    if mode == "memory":
        result = _ingest(archive, user, hospital, unit, camera)
        out.write_text(json.dumps({"result": result, "vm_hwm_kb": _vm_hwm_kb()}))
        return
    # Throughput: warm both paths up (imports, Tesseract's first start) on one report, then measure.
    from remedio import reports
    from tests.remedio import export

    with tempfile.NamedTemporaryFile(suffix=".pdf") as warm:
        warm.write(export.report_pdf())
        warm.flush()
        reports.read_pdf(Path(warm.name))
    baseline_started = time.perf_counter()
    baseline = _baseline(archive)
    baseline_seconds = time.perf_counter() - baseline_started
    started = time.perf_counter()
    result = _ingest(archive, user, hospital, unit, camera)
    ingest_seconds = time.perf_counter() - started
    out.write_text(
        json.dumps(
            {
                **baseline,
                "baseline_seconds": baseline_seconds,
                "ingest_seconds": ingest_seconds,
                "result": result,
                "manual_entry": Report.objects.filter(status=Report.Status.MANUAL_ENTRY).count(),
            }
        )
    )


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="Child process of the remedio benchmark (python -m bench).")
    parser.add_argument("--mode", choices=["build", "throughput", "memory", "idle"], required=True)
    parser.add_argument("--archive", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--encounters", type=int, default=50)
    parser.add_argument("--min-mb", type=int, default=0)
    options = parser.parse_args()
    _child(options.mode, options.archive, options.out, options)
