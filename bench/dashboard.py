"""Image dashboard at scale, on PostgreSQL.

Creates a dedicated database (``BENCH_DATABASE_URL``, default ``postgres://postgres@127.0.0.1:5432/fgc_bench_dashboard``;
dropped and re-created on each run, dropped at the end), migrates it, bulk-inserts 100,000 images (10,000 with
``--quick``) spread over six lab units, and times, through the whole Django stack (middleware, session, access
checks, view, template or serializer), as a data manager of four of the six lab units:

- the dashboard page filtered on disease and mydriatic status (48 images), on page 1 and 500 pages deep (keyset
  cursor of row 23,952 of the filtered list; 50 pages deep with ``--quick``, which has fewer rows);
- the API list with the same filters (50 images), on page 1 and as deep;
- the number of queries each of those requests runs (the same on page 1 and deep down: constant);

each against a baseline measured in the same run: a plain ``SELECT`` of the same page's rows, in the same order, with
the same filters and keyset condition. Target: p95 ≤ 150 ms and a constant query count.

The measurements run in a child process, so Django is configured for the benchmark database only.
"""

from __future__ import annotations

import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlparse, urlunparse

from bench import Figure

DESCRIPTION = (
    "image dashboard and API list with 100,000 images on PostgreSQL: p95 of a filtered page (first and 500 pages "
    "deep) and queries per page, against a plain SELECT of the same rows"
)
NAME = "dashboard"
DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/fgc_bench_dashboard"
MARKER = "BENCH_FIGURES:"
PER_PAGE = 48
API_LIMIT = 50
TARGET_MS = "≤ 150 ms"


def database_url() -> str:
    if os.environ.get("BENCH_DATABASE_URL"):
        return os.environ["BENCH_DATABASE_URL"]
    base = os.environ.get("DATABASE_URL", "")
    if base.startswith("postgres"):
        return urlunparse(urlparse(base)._replace(path="/fgc_bench_dashboard"))
    return DEFAULT_URL


def _fernet_key() -> str:
    from cryptography.fernet import Fernet

    return Fernet.generate_key().decode()


def run(quick: bool) -> list[Figure]:
    root = Path(__file__).resolve().parent.parent
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DJANGO_SECRET_KEY": os.environ.get("DJANGO_SECRET_KEY") or "benchmark-only-secret",
        # Production settings (DEBUG off) refuse to start without the patient-data keys; the benchmark stores none.
        "PATIENT_PSEUDONYM_KEY": os.environ.get("PATIENT_PSEUDONYM_KEY") or "benchmark-only-pseudonym-key",
        "PATIENT_ENCRYPTION_KEY": os.environ.get("PATIENT_ENCRYPTION_KEY") or _fernet_key(),
        "DATA_DIR": tempfile.mkdtemp(prefix="fgc-bench-dashboard-"),
        "LOG_LEVEL": "WARNING",
    }
    command = [sys.executable, "-m", "bench.dashboard", "--child"] + (["--quick"] if quick else [])
    proc = subprocess.run(command, cwd=root, env=env, stdout=subprocess.PIPE, text=True, check=False)
    lines = [line for line in proc.stdout.splitlines() if line.startswith(MARKER)]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"The dashboard benchmark failed (exit {proc.returncode}); see the messages above.")
    return [Figure(**item) for item in json.loads(lines[-1][len(MARKER) :])]


# --- Child process ----------------------------------------------------------------------------------------------------


def log(message: str) -> None:
    print(f"  [{NAME}] {message}", file=sys.stderr, flush=True)


def _recreate_database(url: str) -> None:
    import psycopg

    parsed = urlparse(url)
    name = parsed.path.lstrip("/")
    if not name.replace("_", "").isalnum():
        raise SystemExit(f"Refusing an unusual database name for the benchmark: {name!r}")
    admin = urlunparse(parsed._replace(path="/postgres"))
    try:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as exc:
        raise SystemExit(
            f"The dashboard benchmark needs PostgreSQL ({admin}): {exc}. Set BENCH_DATABASE_URL to a server "
            "where it may create and drop its own database."
        ) from None


def _drop_database(url: str) -> None:
    import psycopg

    parsed = urlparse(url)
    with psycopg.connect(urlunparse(parsed._replace(path="/postgres")), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{parsed.path.lstrip("/")}" WITH (FORCE)')


def _seed(n_images: int) -> dict:
    """Reference data, people and ``n_images`` images inserted in bulk (no files: pages never read them)."""
    import uuid

    from accounts.models import Area, Camera, Disease, Hospital, LabUnit, Role
    from accounts.services import reference_data_ensure, user_provision
    from uploads.models import GradingStatus, Image

    rng = random.Random(20260123)
    reference_data_ensure()
    units = []
    for h in range(3):
        hospital = Hospital.objects.create(code=f"bench-h{h}", name=f"Bench Hospital {h}")
        for u in range(2):
            units.append(LabUnit.objects.create(hospital=hospital, code=f"bench-u{h}{u}", name=f"Unit {h}.{u}"))
    cameras = [Camera.objects.create(code=f"bench-cam{c}", name=f"Camera {c}") for c in range(4)]
    diseases = {d.code: d for d in Disease.objects.all()}
    areas = list(Area.objects.all())
    manager, _ = user_provision(
        username="bench-manager", password=None, roles=[Role.DATA_MANAGER], lab_units=[u.code for u in units[:4]]
    )
    uploaders = [
        user_provision(username=f"bench-uploader{i}", password=None, roles=[Role.UPLOADER], lab_units=[units[i].code])[
            0
        ]
        for i in range(len(units))
    ]
    disease_weights = [(diseases["DR"], 0.6), (diseases["GLAUCOMA"], 0.25), (diseases["AMD"], 0.15)]
    status_weights = [
        (GradingStatus.NOT_QUEUED, 0.1),
        (GradingStatus.AWAITING, 0.3),
        (GradingStatus.IN_PROGRESS, 0.15),
        (GradingStatus.IN_ARBITRATION, 0.05),
        (GradingStatus.GRADED, 0.4),
    ]
    batch: list[Image] = []
    started = time.perf_counter()
    for i in range(n_images):
        unit_index = rng.randrange(len(units))
        unit = units[unit_index]
        image_id = uuid.UUID(int=rng.getrandbits(128), version=4)
        batch.append(
            Image(
                id=image_id,
                file=f"bench/{image_id.hex}.jpg",
                thumbnail=f"thumbs/bench/{image_id.hex}.jpg",
                original_name=f"IMG_{rng.randrange(10**8):08d}_{'LR'[i % 2]}.jpg",
                md5=image_id.hex,
                size=rng.randrange(300_000, 4_000_000),
                mime="image/jpeg",
                width=2048,
                height=1536,
                hospital_id=unit.hospital_id,
                lab_unit=unit,
                camera=rng.choice(cameras),
                disease=rng.choices([d for d, _ in disease_weights], [w for _, w in disease_weights])[0],
                area=rng.choice(areas),
                mydriatic=rng.random() < 0.3,
                is_pregraded=rng.random() < 0.1,
                uploaded_by=uploaders[unit_index],
                grading_status=rng.choices([s for s, _ in status_weights], [w for _, w in status_weights])[0],
            )
        )
        if len(batch) == 5000:
            Image.objects.bulk_create(batch)
            batch = []
    if batch:
        Image.objects.bulk_create(batch)
    log(f"inserted {n_images:,} images in {time.perf_counter() - started:.1f}s")
    return {"manager": manager, "units": units, "dr": diseases["DR"]}


def _spread_upload_times(n_images: int) -> None:
    """bulk_create fills ``uploaded_at`` (auto_now_add) with the insert time: spread it over two years, as a real
    archive is, so ordering and date filters work on realistic values."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE uploads_image SET uploaded_at = now() - "
            "(abs(('x' || substr(md5, 1, 8))::bit(32)::bigint) % 63072000) * interval '1 second'"
        )
        # The UPDATE left a dead copy of every row, which a real archive (filled by inserts over two years) never
        # carries and autovacuum would remove: compact the table and refresh its statistics and visibility map.
        cursor.execute("VACUUM (FULL) uploads_image")
        # A full vacuum rewrites the table but leaves its visibility map empty; the plain one sets it (as autovacuum
        # does on a live table), so index-only scans need not visit the table.
        cursor.execute("VACUUM (ANALYZE) uploads_image")
    log(f"spread the upload times of {n_images:,} images over two years, vacuumed and analysed the table")


def _timed(fn, iterations: int, cpu: list[float] | None = None) -> list[float]:
    """Wall-clock milliseconds per call; with ``cpu``, also this process's CPU milliseconds per call (the
    application's own work, which other load on the machine delays but does not inflate)."""
    samples = []
    for _ in range(iterations):
        started, started_cpu = time.perf_counter(), time.process_time()
        fn()
        samples.append((time.perf_counter() - started) * 1000)
        if cpu is not None:
            cpu.append((time.process_time() - started_cpu) * 1000)
    return samples


def _p95(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=100, method="inclusive")[94]


def child(quick: bool) -> None:
    url = os.environ["DATABASE_URL"]
    n_images = 10_000 if quick else 100_000
    deep_page = 50 if quick else 500
    iterations = 40 if quick else 200
    _recreate_database(url)
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext
    from rest_framework.authtoken.models import Token

    from uploads import pagination
    from uploads.models import Image

    try:
        started = time.perf_counter()
        call_command("migrate", verbosity=0)
        log(f"migrated a fresh database in {time.perf_counter() - started:.1f}s")
        seeded = _seed(n_images)
        _spread_upload_times(n_images)
        manager, dr = seeded["manager"], seeded["dr"]
        scope = [u.pk for u in seeded["units"][:4]]

        # The filtered list as the page orders it, for the deep cursors and the baselines.
        filtered = Image.objects.filter(lab_unit_id__in=scope, disease=dr, mydriatic=False)
        total = filtered.count()
        order = pagination.order_by("newest")

        def cursor_for(page: int, per_page: int) -> str:
            row = filtered.order_by(*order).only("id", "uploaded_at")[(page - 1) * per_page - 1]
            return pagination.encode("newest", row, page)

        deep_after = cursor_for(deep_page, PER_PAGE)
        deep_after_api = cursor_for(deep_page, API_LIMIT)
        log(f"{total:,} images match the filter; page {deep_page} starts after row {(deep_page - 1) * PER_PAGE:,}")

        query = f"disease={dr.pk}&mydriatic=no"
        web = Client()
        web.force_login(manager)
        api = Client(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=manager).key}")
        requests = {
            "dashboard page 1": (web, f"/images/?{query}"),
            f"dashboard page {deep_page}": (web, f"/images/?{query}&after={deep_after}"),
            "API list page 1": (api, f"/api/images/?{query}"),
            f"API list page {deep_page}": (api, f"/api/images/?{query}&after={deep_after_api}"),
        }

        # Baselines: the same rows, same order, same keyset condition, as one plain SELECT.
        table = Image._meta.db_table
        placeholders = ", ".join(["%s"] * len(scope))
        where = f"lab_unit_id IN ({placeholders}) AND disease_id = %s AND NOT mydriatic"

        def plain_select(limit: int, after: str | None):
            params: list = [*scope, dr.pk]
            keyset = ""
            if after:
                cur = pagination.decode(after, "newest")
                keyset = " AND uploaded_at <= %s AND (uploaded_at < %s OR id < %s)"
                params += [cur.value, cur.value, cur.id]
            # Only our own table name, fixed clauses and an int are formatted in; every value is a parameter.
            sql = f"SELECT * FROM {table} WHERE {where}{keyset} ORDER BY uploaded_at DESC, id DESC LIMIT {limit:d}"  # noqa: S608

            def go():
                with connection.cursor() as c:
                    c.execute(sql, params)
                    c.fetchall()

            return go

        baselines = {
            "dashboard page 1": plain_select(PER_PAGE, None),
            f"dashboard page {deep_page}": plain_select(PER_PAGE, deep_after),
            "API list page 1": plain_select(API_LIMIT, None),
            f"API list page {deep_page}": plain_select(API_LIMIT, deep_after_api),
        }

        figures = []
        queries = {}
        for label, (client, path) in requests.items():
            for _ in range(10):  # warm caches and the connection
                response = client.get(path)
                assert response.status_code == 200, (path, response.status_code, response.content[:500])
                baselines[label]()
            with CaptureQueriesContext(connection) as ctx:
                client.get(path)
            queries[label] = len(ctx.captured_queries)
            cpu: list[float] = []
            load_before = os.getloadavg()[0]
            samples = _timed(lambda client=client, path=path: client.get(path), iterations, cpu)
            load_after = os.getloadavg()[0]
            base = _timed(baselines[label], iterations)
            rows = PER_PAGE if label.startswith("dashboard") else API_LIMIT
            figures.append(
                {
                    "benchmark": NAME,
                    "metric": f"p95 {label} ({rows} rows)",
                    "value": round(_p95(samples), 2),
                    "unit": "ms",
                    "baseline": round(_p95(base), 3),
                    "target": TARGET_MS,
                    "note": f"p50 {statistics.median(samples):.1f} ms; Django CPU p50 {statistics.median(cpu):.1f} ms, "
                    f"p95 {_p95(cpu):.1f} ms; load average {load_before:.1f}→{load_after:.1f} on "
                    f"{os.cpu_count()} CPUs; baseline: plain SELECT of the same rows; "
                    f"{n_images:,} images, {total:,} match, {iterations} requests",
                }
            )
            log(f"{label}: p95 {figures[-1]['value']} ms ({queries[label]} queries)")
        for label, count in queries.items():
            first = queries["dashboard page 1" if label.startswith("dashboard") else "API list page 1"]
            figures.append(
                {
                    "benchmark": NAME,
                    "metric": f"queries per request: {label}",
                    "value": count,
                    "unit": "queries",
                    "baseline": first,
                    "target": "constant (= page 1)",
                    "note": "same as page 1" if count == first else "DIFFERS from page 1",
                }
            )
        print(MARKER + json.dumps(figures), flush=True)
    finally:
        connection.close()
        if os.environ.get("BENCH_KEEP_DATABASE") != "1":
            _drop_database(url)


if __name__ == "__main__":
    if "--child" not in sys.argv:
        raise SystemExit("Run the benchmarks with: python -m bench dashboard [--quick]")
    child(quick="--quick" in sys.argv)
