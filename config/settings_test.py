"""Settings for the test suite: the embedded defaults (or DATABASE_URL / CELERY_BROKER_URL when CI sets them),
with every piece of state in a throwaway DATA_DIR."""

import os
import tempfile

os.environ.setdefault("DATA_DIR", tempfile.mkdtemp(prefix="fgc-test-"))
# Parallel runs (pytest -n): each test process gets its own folder (a worker process it starts inherits it).
_xdist = os.environ.get("PYTEST_XDIST_WORKER")
if _xdist and os.path.basename(os.environ["DATA_DIR"].rstrip("/")) != _xdist:
    os.environ["DATA_DIR"] = os.path.join(os.environ["DATA_DIR"], _xdist)
os.environ.setdefault("DJANGO_SECRET_KEY", "test-only-secret-key")
os.environ.setdefault("PATIENT_PSEUDONYM_KEY", "test-only-pseudonym-key")
os.environ.setdefault("PATIENT_ENCRYPTION_KEY", "QgVNMLQtmhjKj6Bv3Qi2WjhT__GLapI502kPLvc-bBs=")

from config.settings import *  # noqa: E402, F403 - extends the real settings once the environment above is set

DEBUG = False
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# Tasks run inline unless a test starts a real worker process (the celery_worker_process fixture).
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", True)  # noqa: F405
if env("FGC_WORKER_DB_NAME"):  # noqa: F405
    # A worker process started by a test works on that test's database.
    DATABASES["default"]["NAME"] = env("FGC_WORKER_DB_NAME")  # noqa: F405
STORAGES["staticfiles"] = {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}  # noqa: F405
WHITENOISE_USE_FINDERS = True
SESSION_COOKIE_SECURE = False
CSRF_COOKIE_SECURE = False
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):  # noqa: F405
    # A file, not memory, so a worker process started by a test shares the test database.
    DATABASES["default"]["TEST"] = {"NAME": str(DATA_DIR / "test-db.sqlite3")}  # noqa: F405
LOGGING["root"]["level"] = "WARNING"  # noqa: F405
