"""Direct upload throughput: fundus JPEGs sent to POST /api/direct/upload of a running server (``manage.py serve``
with its background worker) until the job is done, on the embedded default and on PostgreSQL + Redis.

The baseline, measured in the same run on the same files, is the least any upload must do: read each file, MD5-hash
it, copy it and make a thumbnail, in one process. The figure is the time from the first byte sent to the job's
finish, and its ratio to the baseline (target ≤ 2).

Settings (environment): BENCH_PG_URL (default postgres://postgres@127.0.0.1:5432/fgc_bench_direct; the database is
dropped and created), BENCH_REDIS_URL (default redis://127.0.0.1:6379/7; that database is flushed),
BENCH_REQUESTS (files are sent in this many concurrent requests, default 1), WORKER_CONCURRENCY (worker processes).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

from bench import Figure

DESCRIPTION = (
    "fundus JPEGs (2866×2866, ~1 MB) through POST /api/direct/upload until the job is done, embedded default and "
    "PostgreSQL + Redis, against read + MD5 + copy + thumbnail in one process"
)
ROOT = Path(__file__).resolve().parent.parent
SIDE = 2866
IMAGE_SET_VERSION = 1
PASSWORD = "bench-pass-2024"
FIELDS = {"hospital": "city-eye", "lab_unit": "city-retina", "camera": "remidio-fop", "disease": "DR", "area": "left"}


# --- the image set -------------------------------------------------------------------------------------------------


def image_set(count: int) -> list[Path]:
    """``count`` distinct synthetic fundus JPEGs of about 1 MB, generated once into a temporary folder and reused."""
    import numpy as np
    from PIL import Image

    folder = Path(tempfile.gettempdir()) / f"fgc-bench-fundus-{SIDE}-v{IMAGE_SET_VERSION}"
    folder.mkdir(exist_ok=True)
    paths = [folder / f"fundus-{n:03d}.jpg" for n in range(count)]
    missing = [p for p in paths if not p.exists()]
    if not missing:
        return paths
    print(f"  generating {len(missing)} synthetic fundus images in {folder} (once)", flush=True)
    rng = np.random.default_rng(2866)
    yy, xx = np.mgrid[0:SIDE, 0:SIDE].astype(np.float32)
    centre, radius = SIDE / 2, SIDE * 0.45
    d2 = (yy - centre) ** 2 + (xx - centre) ** 2
    inside = d2 <= radius**2
    falloff = np.clip(1 - d2 / radius**2 * 0.5, 0, 1)
    base = np.zeros((SIDE, SIDE, 3), np.float32)
    for channel, value in enumerate((200, 80, 30)):
        base[..., channel] = np.where(inside, value * falloff, 0)
    grain = rng.normal(0, 3, (SIDE + 128, SIDE + 128)).astype(np.float32)
    for path in missing:
        n = int(path.stem.split("-")[1])
        local = np.random.default_rng(n)
        dy, dx = local.integers(0, 128, 2)
        img = base + grain[dy : dy + SIDE, dx : dx + SIDE, None]
        side = 1 if n % 2 else -1  # left and right eyes
        disc = (yy - centre - local.uniform(-40, 40)) ** 2 + (xx - centre - side * radius * 0.55) ** 2
        img[disc <= (radius * 0.12) ** 2] = (255, 230, 170)
        out = io.BytesIO()
        Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(out, "JPEG", quality=90)
        path.write_bytes(out.getvalue())
    return paths


# --- the baseline --------------------------------------------------------------------------------------------------


BASELINE_CPU: list[float] = []


def baseline_seconds(paths: list[Path]) -> float:
    """Read, MD5-hash, copy and thumbnail every file in this one process (its CPU time goes to BASELINE_CPU)."""
    from PIL import Image

    target = Path(tempfile.mkdtemp(prefix="fgc-bench-baseline-"))
    try:
        started, started_cpu = time.perf_counter(), time.process_time()
        for path in paths:
            data = path.read_bytes()
            digest = hashlib.md5(data).hexdigest()  # noqa: S324 - the same fingerprint the upload computes
            (target / f"{digest}.jpg").write_bytes(data)
            img = Image.open(io.BytesIO(data))
            img.thumbnail((320, 320))
            img.convert("RGB").save(target / f"{digest}-thumb.jpg", "JPEG", quality=82)
        BASELINE_CPU.append(time.process_time() - started_cpu)
        return time.perf_counter() - started
    finally:
        shutil.rmtree(target, ignore_errors=True)


# --- a running server ----------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def manage(env: dict, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
    )
    if done.returncode:
        raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return done.stdout


class Server:
    """``manage.py serve`` (web server + worker) on a free port and its own DATA_DIR, stopped with its children."""

    def __init__(self, env: dict):
        self.env = env
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = Path(env["DATA_DIR"]) / "serve.log"

    def __enter__(self) -> Server:
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "manage.py", "serve", "--port", str(self.port)],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, so the worker it starts stops with it
            )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited:\n{self.log.read_text()[-3000:]}")
            try:
                urllib.request.urlopen(f"{self.base}/accounts/login/", timeout=2).read()  # noqa: S310 - our own server
                return self
            except (urllib.error.URLError, OSError):
                time.sleep(0.3)
        raise RuntimeError("server did not start")

    def __exit__(self, *exc) -> None:
        # serve stops its worker and scheduler on SIGTERM; whatever is left of its process group after that goes.
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()

    def cpu_seconds(self) -> float | None:
        """CPU time used so far by the server's process group (web server, worker and its pool processes), read
        from /proc; None where there is no /proc. The database and broker servers are not included."""
        proc = Path("/proc")
        if not proc.is_dir():
            return None
        ticks = os.sysconf("SC_CLK_TCK")
        total = 0
        for entry in proc.iterdir():
            if not entry.name.isdigit():
                continue
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            # After the command name: state, ppid, pgrp, ..., utime (12th), stime (13th).
            if int(fields[2]) == self.proc.pid:
                total += int(fields[11]) + int(fields[12])
        return total / ticks

    def request(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None) -> dict:
        req = urllib.request.Request(self.base + path, data=body, method=method, headers=headers or {})  # noqa: S310
        with urllib.request.urlopen(req, timeout=600) as response:  # noqa: S310 - our own server
            return json.loads(response.read())


def multipart(fields: dict, files: list[tuple[str, bytes]]) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    out = io.BytesIO()
    for name, value in fields.items():
        out.write(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode())
    for filename, data in files:
        out.write(
            f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="{filename}"\r\n'
            "Content-Type: image/jpeg\r\n\r\n".encode()
        )
        out.write(data)
        out.write(b"\r\n")
    out.write(f"--{boundary}--\r\n".encode())
    return out.getvalue(), f"multipart/form-data; boundary={boundary}"


def wait_for_jobs(server: Server, token: str, job_ids: list[str], timeout: float = 1800) -> list[dict]:
    headers = {"Authorization": f"Token {token}"}
    deadline = time.monotonic() + timeout
    docs: dict[str, dict] = {}
    while time.monotonic() < deadline:
        for job_id in job_ids:
            if job_id not in docs:
                doc = server.request("GET", f"/api/upload-jobs/{job_id}/status", headers=headers)
                if doc["status"] in ("done", "error"):
                    docs[job_id] = doc
        if len(docs) == len(job_ids):
            return [docs[j] for j in job_ids]
        # The finish time is the server's ``finished_at``, so polling faster would not sharpen the figure; it would
        # only take CPU from the workers being measured (the processing page polls every 3 s).
        time.sleep(0.5)
    raise RuntimeError(f"jobs did not finish within {timeout}s")


def upload_run(env: dict, paths: list[Path], requests: int) -> dict:
    """Prepare a fresh installation, start it, warm it up, then time the upload of ``paths``."""
    manage(env, "migrate", "--noinput")
    manage(env, "seed_demo", "--quiet")
    manage(env, "adduser", "bench", "--password", PASSWORD, "--role", "uploader", "--lab-unit", FIELDS["lab_unit"])
    manage(
        env,
        "shell",
        "-c",
        "from accounts.models import User; User.objects.filter(username='bench').update(upload_quota=0)",
    )
    with Server(env) as server:
        token = server.request(
            "POST",
            "/api/auth/token/",
            json.dumps({"username": "bench", "password": PASSWORD}).encode(),
            {"Content-Type": "application/json"},
        )["token"]
        headers = {"Authorization": f"Token {token}"}

        def send(files: list[tuple[str, bytes]]) -> str:
            body, content_type = multipart(FIELDS, files)
            return server.request("POST", "/api/direct/upload", body, {**headers, "Content-Type": content_type})[
                "job_id"
            ]

        # Warm-up: one small image, so the worker is up and connected before the clock starts.
        from PIL import Image

        warm = io.BytesIO()
        Image.new("RGB", (64, 64), (uuid.uuid4().int % 256, 40, 20)).save(warm, "JPEG")
        wait_for_jobs(server, token, [send([(f"warm-up-{uuid.uuid4().hex}.jpg", warm.getvalue())])], timeout=180)

        payload = [(p.name, p.read_bytes()) for p in paths]
        chunks = [payload[i::requests] for i in range(requests)]
        cpu_before = server.cpu_seconds()
        started = time.time()
        with ThreadPoolExecutor(max_workers=requests) as pool:
            job_ids = list(pool.map(send, chunks))
        accepted = time.time()
        docs = wait_for_jobs(server, token, job_ids)
        cpu_after = server.cpu_seconds()
    finished = max(datetime.fromisoformat(doc["finished_at"]).timestamp() for doc in docs)
    failed = [item for doc in docs for item in doc["items"] if item["status"] != "completed"]
    if failed:
        raise RuntimeError(f"{len(failed)} files failed, e.g. {failed[0]}")
    cpu = None if cpu_before is None or cpu_after is None else cpu_after - cpu_before
    return {"seconds": finished - started, "request_seconds": accepted - started, "cpu_seconds": cpu}


def base_env(data_dir: Path, **extra: str) -> dict:
    env = {
        k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "CELERY_BROKER_URL", "DJANGO_SETTINGS_MODULE"}
    }
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "DATA_DIR": str(data_dir),
            # The benchmark's images are about 1 MB; the quota is lifted for its user.
            "DIRECT_UPLOAD_MAX_FILE_SIZE_MB": "10",
            "DIRECT_UPLOAD_MAX_FILES": "1000",
            "LOG_LEVEL": "WARNING",
        }
    )
    env.update(extra)
    return env


def postgres_redis_env(data_dir: Path) -> dict | str:
    """Environment for the PostgreSQL + Redis run, on a fresh benchmark database; a reason string if unavailable."""
    from cryptography.fernet import Fernet

    pg_url = os.environ.get("BENCH_PG_URL", "postgres://postgres@127.0.0.1:5432/fgc_bench_direct")
    redis_url = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/7")
    try:
        import psycopg
        import redis

        admin_url, name = pg_url.rsplit("/", 1)
        with psycopg.connect(f"{admin_url}/postgres", autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{name}"')
        redis.Redis.from_url(redis_url, socket_connect_timeout=5).flushdb()
    except Exception as exc:
        return f"PostgreSQL or Redis unavailable: {exc}"
    return base_env(
        data_dir,
        DATABASE_URL=pg_url,
        CELERY_BROKER_URL=redis_url,
        DJANGO_SECRET_KEY="bench-only-secret-key",
        PATIENT_PSEUDONYM_KEY="bench-only-pseudonym-key",
        PATIENT_ENCRYPTION_KEY=Fernet.generate_key().decode(),
    )


def run(quick: bool = False) -> list[Figure]:
    count = 10 if quick else 100
    requests = int(os.environ.get("BENCH_REQUESTS", "1"))
    paths = image_set(count)
    megabytes = sum(p.stat().st_size for p in paths) / 1e6
    base = min(baseline_seconds(paths) for _ in range(2))
    base_cpu = min(BASELINE_CPU)
    figures = [
        Figure(
            "direct_upload",
            f"baseline: read+md5+copy+thumbnail, {count} files",
            count / base,
            "images/s",
            note=f"{megabytes:.0f} MB in {base:.2f}s, one process",
        )
    ]
    stacks = [("embedded (SQLite, file broker)", None), ("PostgreSQL + Redis", "pg")]
    for label, kind in stacks:
        data_dir = Path(tempfile.mkdtemp(prefix="fgc-bench-direct-"))
        try:
            env = base_env(data_dir) if kind is None else postgres_redis_env(data_dir)
            if isinstance(env, str):
                figures.append(Figure("direct_upload", f"{label}: skipped", 0, "", note=env))
                continue
            outcome = upload_run(env, paths, requests)
        finally:
            shutil.rmtree(data_dir, ignore_errors=True)
        seconds = outcome["seconds"]
        workers = os.environ.get("WORKER_CONCURRENCY", "2")
        cpu_note = ""
        if outcome["cpu_seconds"] is not None:
            cpu_note = (
                f"; server CPU {outcome['cpu_seconds']:.1f}s ({outcome['cpu_seconds'] / base_cpu:.2f}× the baseline's "
                f"{base_cpu:.1f}s); load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
            )
        figures.append(
            Figure(
                "direct_upload",
                f"{label}: first byte to job done",
                seconds,
                "s",
                baseline=base,
                target="≤ 2",
                note=f"{count / seconds:.1f} images/s; request {outcome['request_seconds']:.1f}s; "
                f"{requests} request(s), {workers} worker process(es){cpu_note}",
            )
        )
        figures.append(Figure("direct_upload", f"{label}: throughput", count / seconds, "images/s"))
    return figures
