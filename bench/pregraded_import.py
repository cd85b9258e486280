"""Grade import throughput: a 10,000-row AI workbook (grade, probability, remarks) against 10,000 pre-graded images,
from the uploaded file to the finished job, on the embedded default (SQLite) and on PostgreSQL when one is reachable.

The baseline, measured in the same run on the same workbook, is the least any import must do: open the workbook with
openpyxl (read-only, saved values) and read every row. The figure is rows per second of the whole import (reading and
checking the file in the request, the job that matches names and writes grades through the grading app), and its
ratio of time to the baseline (target ≤ 3). ``BENCH_REPEAT`` runs (default 7), each with a new AI model version so
every run writes the same number of grades, each timing the openpyxl read just before its import. The figures are
medians over the runs (the request / job split and the grading app's share are those of the median run); the note
gives the fastest of each side too. On a shared machine single runs swing by half, both ways. A third figure is
the import's time outside the grading app's bulk write (``grading.services.grades_import_bulk``, timed around each
call), i.e. this app's own share, against the same baseline (no target of its own: it shows where the time goes).

Image rows are inserted directly (no pixels: the import never reads them), with their grading tasks, as a pre-graded
upload would have left them. Settings (environment): BENCH_POSTGRES_URL (default
postgres://postgres@127.0.0.1:5432/postgres; a database fgc_bench_pregraded is created on that server and dropped at
the end; BENCH_SKIP_POSTGRES=1 skips it).
"""

from __future__ import annotations

import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import Figure

DESCRIPTION = (
    "10,000-row AI grade workbook imported against 10,000 pre-graded images (request + job), SQLite and PostgreSQL, "
    "against reading the same workbook with openpyxl alone"
)
ROOT = Path(__file__).resolve().parent.parent
DB_NAME = "fgc_bench_pregraded"
TARGET_RATIO = 3.0
GRADES = ("0", "1", "2", "3", "4", "Moderate NPDR", "PDR", "U", "-")


def _server_url() -> str:
    value = os.environ.get("BENCH_POSTGRES_URL", "")
    return value or "postgres://postgres@127.0.0.1:5432/postgres"


def _with_db(url: str, name: str) -> str:
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, parts.fragment))


def _admin(url: str, sql: str) -> None:
    import psycopg

    with psycopg.connect(_with_db(url, "postgres"), autocommit=True, connect_timeout=5) as conn:
        conn.execute(sql)


def _postgres_available(url: str) -> bool:
    if os.environ.get("BENCH_SKIP_POSTGRES") == "1":
        return False
    try:
        _admin(url, "SELECT 1")
    except Exception:
        return False
    return True


def _run_child(rows: int, repeat: int, database_url: str | None) -> dict:
    with tempfile.TemporaryDirectory(prefix="fgc-bench-pregraded-") as tmp:
        out = Path(tmp) / "result.json"
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "DJANGO_SECRET_KEY": "benchmark-only",
            "DEBUG": "0",
            "DATA_DIR": tmp,
            "CELERY_TASK_ALWAYS_EAGER": "1",
            "LOG_LEVEL": "WARNING",
            "PATIENT_PSEUDONYM_KEY": "benchmark-only",
            "PATIENT_ENCRYPTION_KEY": "YmVuY2htYXJrLW9ubHktYmVuY2htYXJrLW9ubHktMDA=",
        }
        env.pop("DATABASE_URL", None)
        if database_url:
            env["DATABASE_URL"] = database_url
        args = [sys.executable, "-m", "bench.pregraded_import", "--out", str(out), "--rows", str(rows)]
        args += ["--repeat", str(repeat)]
        subprocess.run(args, env=env, cwd=ROOT, check=True)
        return json.loads(out.read_text())


def run(quick: bool) -> list[Figure]:
    rows = 2_000 if quick else 10_000
    repeat = int(os.environ.get("BENCH_REPEAT", "1" if quick else "7"))
    results = {"SQLite": _run_child(rows, repeat, None)}
    server = _server_url()
    if _postgres_available(server):
        _admin(server, f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')
        _admin(server, f'CREATE DATABASE "{DB_NAME}"')
        try:
            results["PostgreSQL"] = _run_child(rows, repeat, _with_db(server, DB_NAME))
        finally:
            _admin(server, f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')
    figures = []
    for backend, result in results.items():
        total, read, job = result["import_seconds"], result["openpyxl_seconds"], result["job_seconds"]
        grading = result["grading_service_seconds"]
        note = (
            f"{rows:,} rows, {result['imported']:,} grades written; median run: request "
            f"{result['request_seconds']:.2f}s + job {job:.2f}s, of which {grading:.2f}s in "
            f"grading.services.grades_import_bulk; fastest: {result['fastest_import_seconds']:.2f}s vs "
            f"{result['fastest_openpyxl_seconds']:.2f}s; "
            f"machine load {result['load']:.1f} on {os.cpu_count()} cores"
        )
        figures.append(
            Figure(
                "pregraded_import",
                f"import rows/s ({backend})",
                rows / total,
                "rows/s",
                baseline=rows / read,
                note="baseline: openpyxl read-only read of the same workbook",
            )
        )
        figures.append(
            Figure(
                "pregraded_import",
                f"import time vs openpyxl read ({backend})",
                total,
                "s",
                baseline=read,
                target=f"≤ {TARGET_RATIO:g}",
                note=note,
            )
        )
        figures.append(
            Figure(
                "pregraded_import",
                f"import time outside the grading write vs openpyxl read ({backend})",
                total - grading,
                "s",
                baseline=read,
                note="reading, checking, staging, matching names, verification records, summary: this app's share",
            )
        )
    return figures


# --- the child process -----------------------------------------------------------------------------------------------


def _workbook(rows: int) -> bytes:
    import xlsxwriter

    out = io.BytesIO()
    book = xlsxwriter.Workbook(out, {"in_memory": True})
    sheet = book.add_worksheet("Grades")
    sheet.write_row(0, 0, ["image_name", "ai_grade", "ai_probability", "ai_remarks"])
    for i in range(rows):
        sheet.write_row(
            i + 1, 0, [f"IMG_{i:06d}.jpg", GRADES[i % len(GRADES)], (i % 1000) / 1000, "auto" if i % 7 else ""]
        )
    book.close()
    return out.getvalue()


def _openpyxl_read(data: bytes) -> int:
    from openpyxl import load_workbook

    book = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    count = 0
    for _row in book.worksheets[0].iter_rows(values_only=True):
        count += 1
    book.close()
    return count


def _setup(rows: int):
    from django.db import connection
    from django.utils import timezone

    from accounts.models import Disease, Hospital, LabUnit, Role
    from accounts.services import reference_data_ensure, user_provision
    from grading.services import grading_tasks_create_bulk, schemes_ensure
    from pregraded.models import PregradedVerification
    from uploads.models import Image

    reference_data_ensure()
    schemes_ensure()
    hospital, _ = Hospital.objects.get_or_create(code="bench-hospital", defaults={"name": "Bench hospital"})
    unit, _ = LabUnit.objects.get_or_create(code="bench-unit", defaults={"name": "Bench unit", "hospital": hospital})
    user, _ = user_provision(
        username="bench-manager", password="bench-pass-2024", roles=[Role.DATA_MANAGER], lab_units=[unit.code]
    )
    dr = Disease.objects.get(code="DR")
    now = timezone.now()
    images = Image.objects.bulk_create(
        [
            Image(
                file=f"bench/{i}.jpg",
                original_name=f"IMG_{i:06d}.jpg",
                md5=f"{i:032x}",
                size=1,
                mime="image/jpeg",
                width=1,
                height=1,
                hospital=hospital,
                lab_unit=unit,
                disease=dr,
                source=Image.Source.PREGRADED,
                is_pregraded=True,
                uploaded_by=user,
                uploaded_at=now,
            )
            for i in range(rows)
        ],
        batch_size=2000,
    )
    for start in range(0, len(images), 2000):
        grading_tasks_create_bulk(images=images[start : start + 2000])
    PregradedVerification.objects.bulk_create([PregradedVerification(image=image) for image in images], batch_size=2000)
    # A live database has statistics for its tables (autovacuum analyses them); a freshly filled one does not yet.
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    return user, hospital, unit, dr


def _time_grading_service() -> list[float]:
    """Time spent in the grading app's bulk write (``grades_import_bulk``), which the job calls for every batch of
    grades: the figures show how the import's time divides between this app and the grading app."""
    from grading import services as grading_services

    spent: list[float] = []
    original = grading_services.grades_import_bulk

    def timed(**kwargs):
        started = time.perf_counter()
        try:
            return original(**kwargs)
        finally:
            spent.append(time.perf_counter() - started)

    grading_services.grades_import_bulk = timed
    return spent


def _child(rows: int, repeat: int, out: Path) -> None:
    import django

    django.setup()
    from django.core.files.uploadedfile import SimpleUploadedFile
    from django.core.management import call_command
    from django.db import transaction

    from pregraded.models import GradeImport
    from pregraded.services import imports

    call_command("migrate", verbosity=0)
    user, hospital, unit, dr = _setup(rows)
    grading_seconds = _time_grading_service()
    data = _workbook(rows)
    _openpyxl_read(data)  # warm-up: module imports are not part of either figure
    reads, totals, requests, jobs, grading, imported = [], [], [], [], [], 0
    for run_index in range(repeat):
        grading_seconds.clear()
        started = time.perf_counter()
        assert _openpyxl_read(data) == rows + 1
        reads.append(time.perf_counter() - started)

        fields = {
            "grader_type": "ai",
            "hospital": str(hospital.pk),
            "lab_unit": str(unit.pk),
            "disease": str(dr.pk),
            "ai_model_name": "BenchNet",
            "ai_model_version": f"1.{run_index}",
        }
        started = time.perf_counter()
        # The request's work happens inside this block; the job is queued when it commits and, with eager tasks,
        # runs right there (as a worker would), so the clock stops when the import is done.
        with transaction.atomic():
            grade_import = imports.grade_import_create(
                user=user, data=fields, uploaded=SimpleUploadedFile("grades.xlsx", data), client_ip="127.0.0.1"
            )
            request_done = time.perf_counter()
        finished = time.perf_counter()
        grade_import = GradeImport.objects.get(pk=grade_import.pk)
        assert grade_import.status == GradeImport.Status.DONE, (grade_import.status, grade_import.error)
        totals.append(finished - started)
        requests.append(request_done - started)
        jobs.append(finished - request_done)
        grading.append(sum(grading_seconds))
        imported = grade_import.summary["imported"] + grade_import.summary["no_grade"]
    middle = sorted(range(repeat), key=totals.__getitem__)[repeat // 2]  # the median run (odd repeat)
    out.write_text(
        json.dumps(
            {
                "openpyxl_seconds": statistics.median(reads),
                "import_seconds": statistics.median(totals),
                "request_seconds": requests[middle],
                "job_seconds": jobs[middle],
                "grading_service_seconds": grading[middle],
                "fastest_openpyxl_seconds": min(reads),
                "fastest_import_seconds": min(totals),
                "imported": imported,
                "load": os.getloadavg()[0],
            }
        )
    )


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="Child process of the pregraded_import benchmark (python -m bench).")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    options = parser.parse_args()
    _child(options.rows, options.repeat, options.out)
