"""Quality metrics at scale: agreement between graders and AI performance for 100,000 graded images.

For each database (the embedded SQLite always; PostgreSQL too when ``BENCH_DATABASE_URL`` or ``DATABASE_URL`` names a
PostgreSQL server, on a database ``fgc_bench_quality`` created and dropped by the run), a child process migrates a
fresh database and bulk-inserts 100,000 DR images (10,000 with ``--quick``), each graded by a primary and a
secondary grader (a resident too on 30% of them, so Fleiss' kappa is computed), by an AI model with a probability,
and with a consensus on 95% of them; 3% of grades are ungradable; grades are spread over 18 months. Then, as a data
manager, through the whole Django stack (session, access checks, parsing, selector, JSON rendering):

- ``GET /api/quality/agreement?disease=DR`` (3 pairs: % exact, % within one, Cohen's, linear and quadratic kappa
  with analytic 95% intervals, the confusion matrices, agreement per month, referral agreement; Fleiss' kappa with
  its bootstrap interval);
- ``GET /api/quality/performance?disease=DR&rater=ai:…`` (2x2 counts, sensitivity, specificity, PPV, NPV with
  Wilson intervals, the confusion matrix, AUC with the DeLong interval, the ROC curve, a 101-step threshold explorer);

each cold (the figure cache emptied first; the median of 5) and cached (the median of 7). The baseline, measured
in the same run: the same point figures computed by scikit-learn on numpy arrays already in memory (for agreement,
``cohen_kappa_score`` unweighted, linear and quadratic for each pair plus % exact and within one; for performance,
``confusion_matrix``, ``roc_auc_score`` and ``roc_curve``), with no database, no intervals and no HTTP. Target: a
selection of 100,000 graded images answers in under 2 s. Other people's work on the same machine adds noise: the load
average is printed with each figure.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlparse, urlunparse

from bench import Figure

DESCRIPTION = (
    "agreement between graders and AI performance for 100,000 graded images (SQLite, and PostgreSQL when "
    "DATABASE_URL names one): seconds cold and cached, against scikit-learn on arrays in memory"
)
NAME = "quality"
DB_NAME = "fgc_bench_quality"
MARKER = "BENCH_FIGURES:"
TARGET = "< 2 s"
AI_NAME, AI_VERSION = "Bench AI", "1.0"


def _postgres_url() -> str | None:
    for name in ("BENCH_DATABASE_URL", "DATABASE_URL"):
        value = os.environ.get(name, "")
        if value.startswith(("postgres://", "postgresql://")):
            return urlunparse(urlparse(value)._replace(path=f"/{DB_NAME}"))
    return None


def _admin(url: str, sql: str) -> None:
    import psycopg

    with psycopg.connect(urlunparse(urlparse(url)._replace(path="/postgres")), autocommit=True) as conn:
        conn.execute(sql)


def _child(backend: str, database_url: str | None, quick: bool) -> list[Figure]:
    root = Path(__file__).resolve().parent.parent
    with tempfile.TemporaryDirectory(prefix="fgc-bench-quality-") as tmp:
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "DJANGO_SECRET_KEY": "benchmark-only-secret",
            "DEBUG": "0",
            "DATA_DIR": tmp,
            "LOG_LEVEL": "WARNING",
            "QUALITY_CACHE_ALIAS": "default",
            # Throwaway keys: the benchmark stores no patient, but settings require them when DEBUG is off.
            "PATIENT_PSEUDONYM_KEY": secrets.token_hex(32),
            "PATIENT_ENCRYPTION_KEY": base64.urlsafe_b64encode(secrets.token_bytes(32)).decode(),
        }
        env.pop("DATABASE_URL", None)
        if database_url:
            env["DATABASE_URL"] = database_url
        command = [sys.executable, "-m", "bench.quality", "--child", backend] + (["--quick"] if quick else [])
        proc = subprocess.run(command, cwd=root, env=env, stdout=subprocess.PIPE, text=True, check=False)
    lines = [line for line in proc.stdout.splitlines() if line.startswith(MARKER)]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"The quality benchmark on {backend} failed (exit {proc.returncode}); see above.")
    return [Figure(**item) for item in json.loads(lines[-1][len(MARKER) :])]


def run(quick: bool) -> list[Figure]:
    figures = _child("sqlite", None, quick)
    url = _postgres_url()
    if url is None:
        print(f"  [{NAME}] PostgreSQL skipped: set DATABASE_URL or BENCH_DATABASE_URL to a server", file=sys.stderr)
        return figures
    _admin(url, f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')
    _admin(url, f'CREATE DATABASE "{DB_NAME}"')
    try:
        figures += _child("postgres", url, quick)
    finally:
        if os.environ.get("BENCH_KEEP_DB") != "1":
            _admin(url, f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')
    return figures


# --- Child process ----------------------------------------------------------------------------------------------------


def log(message: str) -> None:
    print(f"  [{NAME}] {message}", file=sys.stderr, flush=True)


def _seed(n: int):
    """Images, grades and consensus inserted in bulk; returns the manager and the grades as arrays (for the
    baseline: what a script would already hold in memory)."""
    import uuid

    import numpy as np
    from django.db import connection, transaction

    from accounts.models import Area, Disease, Hospital, LabUnit, Role
    from accounts.services import reference_data_ensure, user_provision
    from grading.models import AIModel, Consensus, ConsensusMethod, Grade, GradeScheme
    from grading.services import schemes_ensure
    from uploads.models import GradingStatus, Image

    started = time.perf_counter()
    reference_data_ensure()
    schemes_ensure()
    rng = np.random.default_rng(20261123)
    hospital = Hospital.objects.create(code="bench-h", name="Bench Hospital")
    unit = LabUnit.objects.create(hospital=hospital, code="bench-u", name="Bench Unit")
    manager = user_provision(username="bench-manager", password=None, roles=[Role.DATA_MANAGER], lab_units=[unit.code])[
        0
    ]
    graders = {
        kind: user_provision(
            username=f"bench-{kind}", password=None, roles=[Role.OPHTHALMOLOGIST], lab_units=[unit.code]
        )[0]
        for kind in ("primary", "secondary", "resident")
    }
    model = AIModel.objects.create(name=AI_NAME, version=AI_VERSION)
    dr = Disease.objects.get(code="DR")
    scheme = GradeScheme.objects.get(code="icdr")
    options = {o.code: o.pk for o in scheme.options.all()}
    areas = [a.pk for a in Area.objects.filter(code__in=["left", "right"])]

    truth = rng.choice(5, size=n, p=[0.55, 0.2, 0.13, 0.07, 0.05])

    def reader(agree: float) -> np.ndarray:
        step = rng.choice([-1, 1], size=n)
        return np.where(rng.random(n) < agree, truth, np.clip(truth + step, 0, 4))

    codes = {"primary": reader(0.8), "secondary": reader(0.75), "resident": reader(0.65)}
    ungradable = {kind: rng.random(n) < 0.03 for kind in codes}
    has_resident = rng.random(n) < 0.3
    referable = truth >= 2
    probability = np.clip(rng.normal(np.where(referable, 0.72, 0.25), 0.17), 0, 1).round(3)
    ai_codes = np.where(probability >= 0.5, np.maximum(truth, 2), np.minimum(truth, 1))
    has_consensus = rng.random(n) < 0.95
    ids = [uuid.UUID(int=int(x), version=4) for x in rng.integers(0, 2**63, size=n)]

    batch = 5000
    with transaction.atomic():
        user_id = manager.pk
        for start in range(0, n, batch):
            Image.objects.bulk_create(
                [
                    Image(
                        id=ids[i],
                        file=f"bench/{ids[i].hex}.jpg",
                        thumbnail=f"thumbs/bench/{ids[i].hex}.jpg",
                        original_name=f"bench-{i}.jpg",
                        md5=ids[i].hex,
                        size=1000,
                        mime="image/jpeg",
                        width=2048,
                        height=1536,
                        hospital_id=hospital.pk,
                        lab_unit_id=unit.pk,
                        disease_id=dr.pk,
                        area_id=areas[i % 2],
                        uploaded_by_id=user_id,
                        grading_status=GradingStatus.GRADED,
                    )
                    for i in range(start, min(n, start + batch))
                ]
            )
        log(f"inserted {n:,} images ({time.perf_counter() - started:.0f}s)")
        grades = []
        for i in range(n):
            for kind in ("primary", "secondary", "resident"):
                if kind == "resident" and not has_resident[i]:
                    continue
                code = "U" if ungradable[kind][i] else str(codes[kind][i])
                grades.append(
                    Grade(
                        image_id=ids[i],
                        disease_id=dr.pk,
                        scheme_id=scheme.pk,
                        option_id=options[code],
                        raw_value=code,
                        grader_type=kind,
                        grader_id=graders[kind].pk,
                    )
                )
            grades.append(
                Grade(
                    image_id=ids[i],
                    disease_id=dr.pk,
                    scheme_id=scheme.pk,
                    option_id=options[str(ai_codes[i])],
                    raw_value=str(ai_codes[i]),
                    grader_type="ai",
                    ai_model_id=model.pk,
                    probability=float(probability[i]),
                )
            )
            if len(grades) >= batch:
                Grade.objects.bulk_create(grades)
                grades = []
        Grade.objects.bulk_create(grades)
        log(f"inserted {Grade.objects.count():,} grades ({time.perf_counter() - started:.0f}s)")
        Consensus.objects.bulk_create(
            [
                Consensus(
                    image_id=ids[i],
                    disease_id=dr.pk,
                    scheme_id=scheme.pk,
                    option_id=options[str(truth[i])],
                    method=ConsensusMethod.AGREEMENT,
                )
                for i in np.nonzero(has_consensus)[0]
            ],
            batch_size=batch,
        )
        # Grades given over 18 months (bulk inserts all carry the insert time).
        with connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                cursor.execute("UPDATE grading_grade SET created_at = created_at - (id % 540) * interval '1 day'")
            else:
                cursor.execute(
                    "UPDATE grading_grade SET created_at = datetime(created_at, '-' || (id % 540) || ' days')"
                )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    log(f"seeded in {time.perf_counter() - started:.0f}s")
    arrays = {
        "codes": codes,
        "ungradable": ungradable,
        "has_resident": has_resident,
        "truth": truth,
        "has_consensus": has_consensus,
        "probability": probability,
        "ai_codes": ai_codes,
    }
    return manager, arrays


def _baseline_agreement(a: dict) -> None:
    import numpy as np
    from sklearn.metrics import cohen_kappa_score

    labels = [0, 1, 2, 3, 4]
    for x, y in (("primary", "secondary"), ("primary", "resident"), ("secondary", "resident")):
        keep = ~a["ungradable"][x] & ~a["ungradable"][y]
        if "resident" in (x, y):
            keep &= a["has_resident"]
        ca, cb = a["codes"][x][keep], a["codes"][y][keep]
        float(np.mean(ca == cb))
        float(np.mean(np.abs(ca - cb) <= 1))
        for weights in (None, "linear", "quadratic"):
            cohen_kappa_score(ca, cb, labels=labels, weights=weights)


def _baseline_performance(a: dict) -> None:
    from sklearn.metrics import confusion_matrix, roc_auc_score, roc_curve

    keep = a["has_consensus"]
    y = a["truth"][keep] >= 2
    said = a["ai_codes"][keep] >= 2
    scores = a["probability"][keep]
    confusion_matrix(y, said, labels=[False, True])
    roc_auc_score(y, scores)
    roc_curve(y, scores)


def _median_seconds(fn, repeat: int, before=None) -> tuple[float, float]:
    """Median wall-clock seconds and median CPU seconds of this process (the CPU time does not grow with the load
    others put on the machine; the database server's share, for PostgreSQL, is not in it)."""
    wall, cpu = [], []
    for _ in range(repeat):
        if before:
            before()
        started, started_cpu = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - started)
        cpu.append(time.process_time() - started_cpu)
    return statistics.median(wall), statistics.median(cpu)


def child(backend: str, quick: bool) -> None:
    import django

    django.setup()
    from django.conf import settings
    from django.core.cache import caches
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client

    n = 10_000 if quick else 100_000
    started = time.perf_counter()
    call_command("migrate", verbosity=0)
    log(f"{backend}: migrated a fresh database in {time.perf_counter() - started:.0f}s")
    manager, arrays = _seed(n)
    client = Client()
    client.force_login(manager)
    cache = caches[settings.QUALITY_CACHE_ALIAS]

    requests = {
        "agreement": ("/api/quality/agreement", {"disease": "DR"}, _baseline_agreement),
        "AI performance": (
            "/api/quality/performance",
            {"disease": "DR", "rater": f"ai:{AI_NAME}:{AI_VERSION}"},
            _baseline_performance,
        ),
    }
    figures = []
    size = f"{n:,}"
    for label, (url, params, baseline_fn) in requests.items():

        def get(url=url, params=params):
            response = client.get(url, params)
            if response.status_code != 200:
                raise SystemExit(f"{url} answered {response.status_code}: {response.content[:500]!r}")
            return response

        first = get()
        data = json.loads(first.content)
        if label == "agreement":
            summary = f"{data['n']:,} images, 3 pairs, Fleiss n={data['fleiss_kappa']['n']:,}"
        else:
            summary = f"n={data['n']:,}, AUC {data['auc']['value']:.3f}, {len(data['roc'])} ROC points"
        baseline, _ = _median_seconds(lambda fn=baseline_fn: fn(arrays), 5)
        cold, cold_cpu = _median_seconds(get, 5, before=cache.clear)
        get()
        cached, _ = _median_seconds(get, 7)
        assert get()["X-Quality-Cache"] == "hit"
        load = os.getloadavg()[0]
        note = f"{summary}; cold CPU of the web process {cold_cpu:.2f} s; load {load:.1f} on {os.cpu_count()} cores"
        figures.append(Figure(NAME, f"{backend}: {label}, {size} images, cold", cold, "s", baseline, TARGET, note))
        figures.append(Figure(NAME, f"{backend}: {label}, {size} images, cached", cached, "s", baseline, TARGET, note))
        log(
            f"{backend}: {label}: cold {cold:.3f}s (CPU {cold_cpu:.3f}s), cached {cached:.4f}s, scikit-learn {baseline:.3f}s"
        )
    connection.close()
    print(MARKER + json.dumps([f.__dict__ for f in figures]), flush=True)


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "--child":
        child(sys.argv[2], "--quick" in sys.argv)
    else:
        raise SystemExit("Run it with: python -m bench quality [--quick]")
