"""Grading queue: "next task" latency with 1,000,000 tasks against 10,000, for one grader and 16 at once.

Runs on PostgreSQL only (the queue relies on its row locks). The benchmark creates its own database
(``fgc_bench_grading`` on the server of ``BENCH_POSTGRES_URL``, else of ``DATABASE_URL`` when that is PostgreSQL, else
``postgres://postgres@127.0.0.1:5432/postgres``), migrates it, bulk-loads images, tasks and grades with COPY, and
drops it at the end (``BENCH_KEEP_DB=1`` keeps it). The work runs in a child process so its settings never mix with
the caller's.

Measured, in milliseconds: the queue query alone (the database's share: ``FOR UPDATE SKIP LOCKED ... LIMIT 1``), and
the server-side time of ``grading.services.task_next`` (the service behind ``POST /api/grading/next``: access checks,
per-grader lock, held-lease check, queue query, lease update) for one grader asking repeatedly, a resident (primary
slots only, so their queue passes over every secondary and arbitration slot) and an ophthalmologist (every slot)
separately, and for 16 graders (8 of each) asking at the same moment (16 processes released by a barrier each round).
The machine's load average is printed with each figure: on a shared 2-core machine, 16 simultaneous requests queue for
the CPU. Each grader grades the task it got (not timed), as in real use, so the queue moves. The data mimics a
reading center: 80% DR, 4 lab units (each grader works in 2), 30% of images fully graded, 20% half-graded, 5% in
arbitration, some leases running or expired, a pool of 40 graders who did the finished work.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import Figure

DESCRIPTION = 'Grading queue "next task" latency, 1,000,000 vs 10,000 tasks, 1 and 16 graders (PostgreSQL)'
DB_NAME = "fgc_bench_grading"
GRADERS = 16
TARGET_MS = 20.0
WARMUP = 20


def _server_url() -> str:
    for name in ("BENCH_POSTGRES_URL", "DATABASE_URL"):
        value = os.environ.get(name, "")
        if value.startswith(("postgres://", "postgresql://")):
            return value
    return "postgres://postgres@127.0.0.1:5432/postgres"


def _with_db(url: str, name: str) -> str:
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, parts.fragment))


def _admin(url: str, sql: str) -> None:
    import psycopg

    with psycopg.connect(_with_db(url, "postgres"), autocommit=True) as conn:
        conn.execute(sql)


def run(quick: bool) -> list[Figure]:
    sizes = [10_000, 100_000] if quick else [10_000, 1_000_000]
    samples = 150 if quick else 400
    rounds = 10 if quick else 25
    server = _server_url()
    _admin(server, f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')
    _admin(server, f'CREATE DATABASE "{DB_NAME}"')
    try:
        with tempfile.TemporaryDirectory(prefix="fgc-bench-") as tmp:
            out = Path(tmp) / "result.json"
            env = {
                **os.environ,
                "DATABASE_URL": _with_db(server, DB_NAME),
                "DJANGO_SETTINGS_MODULE": "config.settings",
                "DJANGO_SECRET_KEY": "benchmark-only",
                "DEBUG": "0",
                "DATA_DIR": tmp,
                "DB_CONN_MAX_AGE": "600",
                # Required with DEBUG off; the benchmark stores no patient data.
                "PATIENT_PSEUDONYM_KEY": "benchmark-only",
                "PATIENT_ENCRYPTION_KEY": base64.urlsafe_b64encode(b"benchmark-only".ljust(32, b"-")).decode(),
            }
            args = [sys.executable, "-m", "bench.grading_next", "--out", str(out), "--samples", str(samples)]
            args += ["--rounds", str(rounds), "--sizes", *map(str, sizes)]
            subprocess.run(args, env=env, cwd=Path(__file__).resolve().parent.parent, check=True)
            results = json.loads(out.read_text())
    finally:
        if os.environ.get("BENCH_KEEP_DB") != "1":
            _admin(server, f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')
    return _figures(results, sizes)


def _figures(results: dict, sizes: list[int]) -> list[Figure]:
    small, large = (results[str(s)] for s in sizes)
    label = f"{large['tasks']:,} tasks"
    figures = []
    for mode, name in (
        ("sql", "queue query alone, ophthalmologist"),
        ("sql_resident", "queue query alone, resident"),
        ("single", "1 grader, ophthalmologist"),
        ("single_resident", "1 grader, resident"),
        ("concurrent", f"{GRADERS} graders at once"),
    ):
        for stat in ("p50", "p95"):
            target = (
                f"≤ {TARGET_MS:g} ms, ≤ 2× the {small['tasks']:,}-task figure"
                if stat == "p95" and not mode.startswith("sql")
                else ""
            )
            figures.append(
                Figure(
                    benchmark="grading_next",
                    metric=f"next task {stat}, {name}, {label}",
                    value=large[mode][stat],
                    unit="ms",
                    baseline=small[mode][stat],
                    target=target,
                    note=f"baseline: {small['tasks']:,} tasks; n={large[mode]['n']}; load avg {large['load_avg']:.1f} "
                    f"on {os.cpu_count()} CPUs",
                )
            )
    figures.append(
        Figure(
            benchmark="grading_next",
            metric=f"queries per next task, {label}",
            value=large["queries"],
            unit="queries",
            baseline=small["queries"],
            target="constant",
        )
    )
    figures.append(
        Figure(
            benchmark="grading_next",
            metric=f"setup (generate, COPY, indexes, ANALYZE), {label}",
            value=large["load_seconds"],
            unit="s",
            baseline=small["load_seconds"],
        )
    )
    return figures


# --- Child process: Django on the benchmark database -------------------------------------------------------------------


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def _stats(latencies: list[float]) -> dict:
    return {"p50": _percentile(latencies, 50), "p95": _percentile(latencies, 95), "n": len(latencies)}


class _Copier:
    """COPY rows of a model, giving every column its model default unless the row sets it."""

    def __init__(self, model, given: list[str]):
        from django.db.models import NOT_PROVIDED

        self.table = model._meta.db_table
        pk = model._meta.pk
        # An auto-increment key not given is left to its sequence.
        fields = [
            f
            for f in model._meta.concrete_fields
            if f is not pk or pk.name in given or not f.get_internal_type().endswith("AutoField")
        ]
        self.columns = [f.column for f in fields]
        self.positions = [self.columns.index(model._meta.get_field(name).column) for name in given]
        template = []
        for field in fields:
            if field.has_default() and field.default is not NOT_PROVIDED and not callable(field.default):
                template.append(field.default)
            elif field.null:
                template.append(None)
            elif field.get_internal_type() in ("CharField", "TextField", "FileField", "SlugField"):
                template.append("")
            elif field.get_internal_type() == "JSONField":
                template.append(json.dumps(field.get_default()))
            else:
                template.append(field.get_default())
        self.template = template

    def copy(self, rows) -> int:
        from django.db import connection

        count = 0
        with connection.cursor() as cursor:
            raw = cursor.cursor
            columns = ", ".join(f'"{column}"' for column in self.columns)
            with raw.copy(f'COPY "{self.table}" ({columns}) FROM STDIN') as copy:
                for values in rows:
                    row = list(self.template)
                    for position, value in zip(self.positions, values, strict=True):
                        row[position] = value
                    copy.write_row(row)
                    count += 1
        return count


def _reset() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "TRUNCATE grading_consensus_grades, grading_consensus, grading_grade, grading_gradingskip, "
            "grading_gradingtask, uploads_image RESTART IDENTITY CASCADE"
        )


def _people():
    """Hospitals, lab units, the 16 benchmark graders (each in 2 of 4 lab units) and a pool of 40 graders."""
    from accounts.models import Hospital, LabUnit, Role, User, UserRole

    hospital, _ = Hospital.objects.get_or_create(code="bench", defaults={"name": "Benchmark Hospital"})
    units = [
        LabUnit.objects.get_or_create(code=f"bench-{i}", defaults={"name": f"Unit {i}", "hospital": hospital})[0]
        for i in range(4)
    ]
    users = []
    for i in range(40):
        user, created = User.objects.get_or_create(username=f"bench-grader-{i}")
        if created:
            role = Role.RESIDENT if i % 2 == 0 else Role.OPHTHALMOLOGIST
            UserRole.objects.create(user=user, role=role)
            user.lab_units.set([units[i % 4], units[(i + 1) % 4]])
        users.append(user)
    uploader, _ = User.objects.get_or_create(username="bench-uploader")
    return hospital, units, users, uploader


@contextlib.contextmanager
def _bulk_load(cursor, tables: list[str]):
    """The usual bulk-load settings: the tables' secondary indexes are dropped during the COPY and built again after it
    (primary keys and constraints stay), and row triggers (foreign-key checks) are off; the generated rows are
    consistent by construction. Everything is as migrated afterwards."""
    from django.db import DatabaseError

    cursor.execute(
        "SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid) FROM pg_index i "
        "WHERE i.indrelid = ANY(%s::regclass[]) AND NOT i.indisprimary "
        "AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)",
        [tables],
    )
    indexes = cursor.fetchall()
    for name, _definition in indexes:
        cursor.execute(f"DROP INDEX {name}")
    triggers_off = True
    try:
        cursor.execute("SET session_replication_role = replica")
    except DatabaseError:  # not a superuser: the foreign keys are checked row by row, which is only slower
        triggers_off = False
    try:
        yield
    finally:
        if triggers_off:
            cursor.execute("SET session_replication_role = DEFAULT")
        cursor.execute("SET maintenance_work_mem = '256MB'")
        for _name, definition in indexes:
            cursor.execute(definition)
        cursor.execute("RESET maintenance_work_mem")


def _load(n_tasks: int, people, seed: int = 7) -> dict:
    import hashlib
    import random
    import uuid
    from datetime import timedelta

    from django.utils import timezone

    from accounts.models import Disease
    from grading.models import Grade, GradeScheme, GradingTask
    from uploads.models import Image

    started = time.perf_counter()
    rng = random.Random(seed)
    hospital, units, users, uploader = people
    diseases = {d.code: d.pk for d in Disease.objects.all()}
    schemes = {s.disease_id: s for s in GradeScheme.objects.filter(is_active=True).prefetch_related("options")}
    options = {d: [o.pk for o in s.options.all() if not o.ungradable] for d, s in schemes.items()}
    n_images = n_tasks // 2
    now = timezone.now()
    start = now - timedelta(days=400)
    image_copier = _Copier(
        Image,
        [
            "id",
            "file",
            "thumbnail",
            "original_name",
            "md5",
            "size",
            "mime",
            "width",
            "height",
            "hospital",
            "lab_unit",
            "disease",
            "uploaded_by",
            "uploaded_at",
            "grading_status",
        ],
    )
    task_copier = _Copier(
        GradingTask,
        [
            "id",
            "image",
            "disease",
            "scheme",
            "lab_unit",
            "slot",
            "status",
            "priority",
            "queued_at",
            "leased_to",
            "leased_at",
            "lease_expires_at",
            "completed_by",
            "completed_at",
            "created_at",
        ],
    )
    grade_copier = _Copier(
        Grade,
        [
            "image",
            "disease",
            "scheme",
            "option",
            "raw_value",
            "grader_type",
            "grader",
            "task",
            "seconds_spent",
            "created_at",
            "is_current",
        ],
    )
    images, tasks, grades = [], [], []
    task_id = 0
    for i in range(n_images):
        image_id = uuid.UUID(int=rng.getrandbits(128), version=4)
        when = start + timedelta(seconds=i * 60)
        roll = i % 10
        disease = diseases["DR"] if roll < 8 else diseases["GLAUCOMA"] if roll == 8 else diseases["AMD"]
        scheme = schemes[disease]
        unit = units[rng.randrange(4)]
        state = rng.random()
        status = (
            "graded"
            if state < 0.30
            else "in_progress"
            if state < 0.50
            else "in_arbitration"
            if state < 0.55
            else "awaiting"
        )
        images.append(
            (
                image_id,
                f"bench/{image_id.hex}.jpg",
                f"thumbs/bench/{image_id.hex}.jpg",
                "bench.jpg",
                hashlib.md5(image_id.bytes).hexdigest(),  # noqa: S324 - a synthetic unique fingerprint
                1000,
                "image/jpeg",
                512,
                512,
                hospital.pk,
                unit.pk,
                disease,
                uploader.pk,
                when,
                status,
            )
        )
        p_grader, s_grader = rng.sample(users, 2)
        slots = [("primary", state < 0.55, p_grader), ("secondary", state < 0.30 or 0.50 <= state < 0.55, s_grader)]
        if 0.50 <= state < 0.55:
            slots.append(("arbitration", False, None))
        half = 0.30 <= state < 0.50
        for slot, done, grader in slots:
            task_id += 1
            leased_to = leased_at = expires = None
            task_status = "done" if done else "pending"
            if not done:
                lease = rng.random()
                if lease < 0.03:
                    task_status, leased_to = "leased", rng.choice(users[GRADERS:]).pk
                    leased_at = now - timedelta(minutes=5)
                    # two thirds running, one third expired (abandoned: available again)
                    expires = now + timedelta(minutes=10) if lease < 0.02 else now - timedelta(minutes=1)
            priority = 2 if slot == "arbitration" else 1 if (half and slot == "secondary") else 0
            tasks.append(
                (
                    task_id,
                    image_id,
                    disease,
                    scheme.pk,
                    unit.pk,
                    slot,
                    task_status,
                    priority,
                    when,
                    leased_to,
                    leased_at,
                    expires,
                    grader.pk if done else None,
                    when + timedelta(hours=1) if done else None,
                    when,
                )
            )
            if done:
                option = rng.choice(options[disease])
                grades.append(
                    (
                        image_id,
                        disease,
                        scheme.pk,
                        option,
                        "",
                        slot,
                        grader.pk,
                        task_id,
                        30,
                        when + timedelta(hours=1),
                        True,
                    )
                )
    from django.db import connection

    tables = ["uploads_image", "grading_gradingtask", "grading_grade"]
    with connection.cursor() as cursor, _bulk_load(cursor, tables):
        image_copier.copy(images)
        task_copier.copy(tasks)
        grade_copier.copy(grades)
    with connection.cursor() as cursor:
        cursor.execute("SELECT setval(pg_get_serial_sequence('grading_gradingtask', 'id'), %s)", [task_id])
        cursor.execute("ANALYZE uploads_image, grading_gradingtask, grading_grade, grading_gradingskip")
    return {
        "tasks": len(tasks),
        "images": len(images),
        "grades": len(grades),
        "load_seconds": time.perf_counter() - started,
    }


def _grade(user, task) -> None:
    from grading import services

    option = next(o for o in task.scheme.options.all() if not o.ungradable)
    services.grade_submit(user=user, task_id=task.pk, option=option.code)


def _fresh(user):
    from accounts.models import User

    return User.objects.get(pk=user.pk)


def _measure_sql(user, samples: int) -> list[float]:
    """The queue query alone (FOR UPDATE SKIP LOCKED, LIMIT 1), in a transaction rolled back: the database's share."""
    from django.db import transaction
    from django.utils import timezone

    from accounts import access
    from accounts.models import Disease
    from grading import selectors
    from grading.services.tasks import queue_queryset

    disease = Disease.objects.get(code="DR")
    slots, units = selectors.slots_allowed(user), access.lab_unit_ids(user)
    latencies = []
    for index in range(samples + WARMUP):
        with transaction.atomic():
            qs = queue_queryset(user=user, disease_id=disease.pk, slots=slots, lab_unit_ids=units, now=timezone.now())
            sql, params = qs.select_for_update(skip_locked=True)[:1].query.sql_with_params()
            from django.db import connection

            with connection.cursor() as cursor:
                started = time.perf_counter()
                cursor.execute(sql, params)
                cursor.fetchall()
                elapsed = (time.perf_counter() - started) * 1000
            transaction.set_rollback(True)
        if index >= WARMUP:
            latencies.append(elapsed)
    return latencies


def _measure_single(user, samples: int) -> list[float]:
    from grading import services

    for _ in range(WARMUP):  # connection, plan and code caches, as in a running server
        user = _fresh(user)
        task = services.task_next(user=user, disease="DR")
        if task is not None:
            services.task_skip(user=user, task_id=task.pk)
    latencies = []
    for _ in range(samples):
        user = _fresh(user)  # one request: roles and lab units are read again
        started = time.perf_counter()
        task = services.task_next(user=user, disease="DR")
        latencies.append((time.perf_counter() - started) * 1000)
        if task is None:
            break
        _grade(user, task)
    return latencies


def _concurrent_worker(user_id: int, rounds: int, barrier, queue) -> None:
    import django
    from django.db import connections

    django.setup()
    from accounts.models import User
    from grading import services

    latencies = []
    try:
        user = User.objects.get(pk=user_id)
        task = services.task_next(user=user, disease="DR")  # warm-up: connection, plans, code
        if task is not None:
            services.task_skip(user=user, task_id=task.pk)
        for _ in range(rounds):
            user = User.objects.get(pk=user_id)
            barrier.wait(timeout=120)
            started = time.perf_counter()
            task = services.task_next(user=user, disease="DR")
            latencies.append((time.perf_counter() - started) * 1000)
            if task is not None:
                _grade(user, task)
    finally:
        connections.close_all()
        queue.put(latencies)


def _measure_concurrent(users, rounds: int) -> list[float]:
    import multiprocessing

    from django.db import connections

    connections.close_all()
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(len(users))
    queue = context.Queue()
    processes = [context.Process(target=_concurrent_worker, args=(u.pk, rounds, barrier, queue)) for u in users]
    for process in processes:
        process.start()
    latencies: list[float] = []
    for _ in processes:
        latencies.extend(queue.get(timeout=900))
    for process in processes:
        process.join(timeout=60)
    return latencies


def _queries_per_next(user) -> int:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from grading import services

    counts = set()
    for _ in range(5):
        user = _fresh(user)
        with CaptureQueriesContext(connection) as ctx:
            task = services.task_next(user=user, disease="DR")
        counts.add(len(ctx))
        if task is not None:
            services.task_skip(user=user, task_id=task.pk)
    if len(counts) != 1:
        print(f"  warning: queries per next task varied: {sorted(counts)}", flush=True)
    return max(counts)


def _child(sizes: list[int], samples: int, rounds: int, out: Path) -> None:
    import django

    django.setup()
    from django.core.management import call_command

    started = time.perf_counter()
    call_command("migrate", verbosity=0)
    print(f"  migrated the benchmark database in {time.perf_counter() - started:.1f}s", flush=True)
    people = _people()
    graders = people[2][:GRADERS]
    results = {}
    for size in sizes:
        _reset()
        loaded = _load(size, people)
        print(
            f"  loaded {loaded['tasks']:,} tasks, {loaded['images']:,} images, {loaded['grades']:,} grades "
            f"in {loaded['load_seconds']:.1f}s",
            flush=True,
        )
        # Even graders are residents (primary slots only), odd ones ophthalmologists (every slot): both kinds of
        # queue are measured, since a resident's queue skips every secondary and arbitration slot.
        queries = max(_queries_per_next(graders[1]), _queries_per_next(graders[0]))
        measured = {
            "sql": _measure_sql(graders[5], samples),
            "sql_resident": _measure_sql(graders[4], samples),
            "single": _measure_single(graders[3], samples),
            "single_resident": _measure_single(graders[2], samples),
            "concurrent": _measure_concurrent(graders, rounds),
        }
        results[str(size)] = {
            **loaded,
            "load_avg": os.getloadavg()[0],
            "queries": queries,
            **{mode: _stats(latencies) for mode, latencies in measured.items()},
        }
        summary = ", ".join(
            f"{mode} p50/p95 {results[str(size)][mode]['p50']:.2f}/{results[str(size)][mode]['p95']:.2f} ms"
            for mode in measured
        )
        print(f"  {results[str(size)]['tasks']:,} tasks: {summary}", flush=True)
    out.write_text(json.dumps(results))


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="Child process of the grading_next benchmark (use python -m bench).")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--sizes", type=int, nargs="+", required=True)
    parser.add_argument("--samples", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=25)
    options = parser.parse_args()
    _child(options.sizes, options.samples, options.rounds, options.out)
