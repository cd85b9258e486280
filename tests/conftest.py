"""Shared fixtures. Tests that need PostgreSQL, Redis, a worker process or Chromium skip on a bare machine with the
reason; with FGC_REQUIRE_ALL=1 (set by .ci/run) every such skip is a failure instead."""

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile

from accounts.models import Role
from tests.factories import CameraFactory, LabUnitFactory, UserFactory
from tests.images import jpeg_bytes

REQUIRE_ALL = os.environ.get("FGC_REQUIRE_ALL") == "1"
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


def require(condition: bool, reason: str) -> None:
    """Skip (or, in CI, fail) when a real service the test needs is missing."""
    if condition:
        return
    if REQUIRE_ALL:
        pytest.fail(f"Required in CI but unavailable: {reason}")
    pytest.skip(reason)


def is_postgres() -> bool:
    return settings.DATABASES["default"]["ENGINE"].endswith("postgresql")


@pytest.fixture(autouse=True)
def reference_data(request):
    """Diseases, areas and the seeded grade schemes come from data migrations, but transactional tests flush them:
    put them back."""
    if {"db", "transactional_db", "live_server"} & set(request.fixturenames):
        from accounts.services import reference_data_ensure
        from grading.services import schemes_ensure

        transactional = {"transactional_db", "live_server"} & set(request.fixturenames)
        request.getfixturevalue("transactional_db" if transactional else "db")
        reference_data_ensure()
        schemes_ensure()


@pytest.fixture
def icdr(db):
    from grading.models import GradeScheme

    return GradeScheme.objects.prefetch_related("options").get(code="icdr")


@pytest.fixture
def data_manager(make_user, lab_unit):
    return make_user(Role.DATA_MANAGER, lab_units=[lab_unit])


@pytest.fixture
def resident(make_user, lab_unit):
    return make_user(Role.RESIDENT, lab_units=[lab_unit])


@pytest.fixture
def ophthalmologist(make_user, lab_unit):
    return make_user(Role.OPHTHALMOLOGIST, lab_units=[lab_unit])


@pytest.fixture
def postgres_only():
    require(is_postgres(), "needs PostgreSQL: set DATABASE_URL=postgres://…")


@pytest.fixture
def lab_unit(db):
    return LabUnitFactory()


@pytest.fixture
def other_lab_unit(db):
    return LabUnitFactory()


@pytest.fixture
def camera(db):
    return CameraFactory()


@pytest.fixture
def make_user(db):
    def make(*roles, lab_units=(), **kwargs):
        return UserFactory(roles=list(roles), lab_units=list(lab_units), **kwargs)

    return make


@pytest.fixture
def uploader(make_user, lab_unit):
    return make_user(Role.UPLOADER, lab_units=[lab_unit])


@pytest.fixture
def admin_user(make_user):
    return make_user(Role.ADMIN)


@pytest.fixture
def upload_fields(lab_unit, camera):
    return {
        "hospital": str(lab_unit.hospital_id),
        "lab_unit": str(lab_unit.pk),
        "camera": str(camera.pk),
        "disease": "DR",
        "area": "left",
        "mydriatic": "false",
    }


@pytest.fixture
def jpeg_file():
    counter = iter(range(10_000))

    def make(name: str = "fundus.jpg", **kwargs) -> SimpleUploadedFile:
        kwargs.setdefault("seed", next(counter))
        return SimpleUploadedFile(name, jpeg_bytes(**kwargs), content_type="image/jpeg")

    return make


@pytest.fixture
def api_client():
    from rest_framework.test import APIClient

    return APIClient()


@pytest.fixture
def run_jobs(django_capture_on_commit_callbacks):
    """Run, inline, the job items a block enqueues: ``with run_jobs(): client.post(...)``."""

    def runner():
        return django_capture_on_commit_callbacks(execute=True)

    return runner


# --- A real Celery worker process ----------------------------------------------------------------------------------


@pytest.fixture
def celery_worker_process(transactional_db, settings):
    """Start ``celery worker`` in a subprocess on the test database and the configured broker (Redis in CI, the file
    broker otherwise); tasks in the test process are sent to it instead of running inline."""
    from django.db import connection

    from config.celery import app

    broker = settings.CELERY_BROKER_URL
    if REQUIRE_ALL:
        require(broker.startswith("redis"), "CI runs the worker test on Redis: set CELERY_BROKER_URL=redis://…")
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings_test",
        "DATA_DIR": str(settings.DATA_DIR),
        "CELERY_TASK_ALWAYS_EAGER": "0",
        "FGC_WORKER_DB_NAME": str(connection.settings_dict["NAME"]),
    }
    log_path = Path(settings.DATA_DIR) / f"worker-{time.time_ns()}.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "config", "worker", "--pool", "solo", "--loglevel", "INFO",
             "--without-mingle", "--without-gossip", "--without-heartbeat"],
            env=env,
            cwd=settings.BASE_DIR,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    previous = app.conf.task_always_eager
    app.conf.task_always_eager = False
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                pytest.fail(f"Worker exited early:\n{log_path.read_text()[-3000:]}")
            if "ready" in log_path.read_text():
                break
            time.sleep(0.2)
        else:
            pytest.fail(f"Worker did not become ready:\n{log_path.read_text()[-3000:]}")
        yield proc
    finally:
        app.conf.task_always_eager = previous
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


def wait_for(predicate, timeout: float = 60, interval: float = 0.25, message: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    pytest.fail(f"Timed out after {timeout}s waiting for {message}")


# --- Headless Chromium -----------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def browser():
    require(shutil.which(CHROMIUM) is not None or os.path.exists(CHROMIUM), f"needs Chromium at {CHROMIUM}")
    # Playwright's sync API runs an event loop in this thread; the ORM calls tests make around it are synchronous.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        instance = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield instance
        instance.close()


@pytest.fixture
def page(browser, live_server):
    context = browser.new_context(base_url=live_server.url, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(20_000)
    pg = context.new_page()
    yield pg
    context.close()


@pytest.fixture
def login(page):
    def do_login(user, password: str = "pw-for-tests"):
        page.goto("/accounts/login/")
        page.fill("#id_username", user.username)
        page.fill("#id_password", password)
        page.click("button[type=submit]")
        page.wait_for_url(lambda url: "/accounts/login" not in url)
        return page

    return do_login
