"""Settings, read from the environment.

Embedded defaults (nothing to install by hand): SQLite in WAL mode, local file storage and a Celery broker kept in
files, all under ``DATA_DIR``. Production: ``DATABASE_URL`` (PostgreSQL), ``CELERY_BROKER_URL`` (Redis) and
``STORAGE_BACKEND=s3`` with the ``STORAGE_*`` settings. See the configuration table in the README.
"""

import base64
import hashlib
import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    return default if value is None or value == "" else value


def env_bool(name: str, default: bool = False) -> bool:
    value = env(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_int(name: str, default: int) -> int:
    value = env(name)
    if value is None:
        return default
    try:
        return int(value)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} must be a whole number, got {value!r}") from exc


def env_bytes(name: str, default: str) -> int:
    """Sizes such as ``64MB``, ``512KB``, ``1GB`` or a plain number of bytes."""
    raw = (env(name, default) or default).strip().upper().replace(" ", "")
    units = {"GB": 1024**3, "MB": 1024**2, "KB": 1024, "B": 1}
    for unit, factor in units.items():
        if raw.endswith(unit):
            try:
                return int(float(raw[: -len(unit)]) * factor)
            except ValueError:
                break
    try:
        return int(raw)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} must be a size such as 64MB, got {raw!r}") from exc


def env_list(name: str, default: str = "") -> list[str]:
    return [part.strip() for part in (env(name, default) or "").split(",") if part.strip()]


DATA_DIR = Path(env("DATA_DIR", str(BASE_DIR / "var"))).resolve()
DATA_DIR.mkdir(parents=True, exist_ok=True)

DEBUG = env_bool("DEBUG", default=env("DATABASE_URL") is None)
SECRET_KEY = env("DJANGO_SECRET_KEY")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("DJANGO_SECRET_KEY is required when DEBUG is off.")
    SECRET_KEY = "insecure-development-key-only-for-the-embedded-default"  # noqa: S105 - DEBUG only, refused above

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "127.0.0.1,localhost,[::1],testserver")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")
# Number of reverse proxies in front of the app whose X-Forwarded-For entries we trust (0 = use REMOTE_ADDR).
TRUSTED_PROXY_COUNT = env_int("TRUSTED_PROXY_COUNT", 0)

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "accounts",
    "jobs",
    "uploads",
    "grading",
    "pregraded",
    "remedio",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "accounts.context_processors.access_context",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------------------------------------
DATABASE_URL = env("DATABASE_URL")
if DATABASE_URL:
    DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=env_int("DB_CONN_MAX_AGE", 60))}
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": DATA_DIR / "db.sqlite3",
            "OPTIONS": {
                # WAL lets the web server read while the worker writes; IMMEDIATE takes the write lock at BEGIN so
                # two writers queue on the busy timeout instead of failing on a lock upgrade.
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
                "transaction_mode": "IMMEDIATE",
                "timeout": env_int("SQLITE_BUSY_TIMEOUT_SECONDS", 30),
            },
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_USER_MODEL = "accounts.User"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = env("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

# --- Files ----------------------------------------------------------------------------------------------------------
STATIC_URL = "/static/"
STATIC_ROOT = DATA_DIR / "static"
STATIC_ROOT.mkdir(exist_ok=True)
STATICFILES_DIRS = [BASE_DIR / "static"]
MEDIA_URL = "/media/"  # never served directly: files go through permission-checked views
MEDIA_ROOT = DATA_DIR / "files"

STORAGE_BACKEND = env("STORAGE_BACKEND", "local")
# Named storages: "default" holds graded images and thumbnails; "staging" raw uploads waiting for a worker;
# "duplicates" the bytes of refused duplicates (audit); "restricted" originals that carry burnt-in PII.
_AREAS = {"default": "images", "staging": "staging", "duplicates": "duplicates", "restricted": "restricted"}
if STORAGE_BACKEND == "s3":
    _s3_options = {
        "bucket_name": env("STORAGE_BUCKET_NAME", "fundus-grading"),
        "endpoint_url": env("STORAGE_ENDPOINT_URL"),
        "region_name": env("STORAGE_REGION_NAME"),
        "access_key": env("STORAGE_ACCESS_KEY_ID"),
        "secret_key": env("STORAGE_SECRET_ACCESS_KEY"),
        "default_acl": None,
        "file_overwrite": False,
        "querystring_auth": True,
        "querystring_expire": env_int("STORAGE_URL_EXPIRE_SECONDS", 300),
    }
    STORAGES = {
        name: {"BACKEND": "storages.backends.s3.S3Storage", "OPTIONS": {**_s3_options, "location": area}}
        for name, area in _AREAS.items()
    }
elif STORAGE_BACKEND == "local":
    STORAGES = {
        name: {"BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": MEDIA_ROOT / area}}
        for name, area in _AREAS.items()
    }
else:
    raise ImproperlyConfigured(f"STORAGE_BACKEND must be 'local' or 's3', got {STORAGE_BACKEND!r}")
STORAGES["staticfiles"] = {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"}
if DEBUG:
    STORAGES["staticfiles"] = {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}
WHITENOISE_USE_FINDERS = DEBUG

# Uploads bigger than this spill to a temporary file instead of memory.
FILE_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024
DATA_UPLOAD_MAX_NUMBER_FILES = 1000
DATA_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024

# --- Upload rules ---------------------------------------------------------------------------------------------------
DIRECT_UPLOAD_MAX_FILE_SIZE_MB = env_int("DIRECT_UPLOAD_MAX_FILE_SIZE_MB", 5)
DIRECT_UPLOAD_MAX_FILES = env_int("DIRECT_UPLOAD_MAX_FILES", 100)
DIRECT_UPLOAD_LIFETIME_QUOTA = env_int("DIRECT_UPLOAD_LIFETIME_QUOTA", 50)
# Images with more pixels than this are refused before their pixels are decoded (decompression bombs).
IMAGE_MAX_PIXELS = env_int("IMAGE_MAX_PIXELS", 60_000_000)
THUMBNAIL_SIZE = env_int("THUMBNAIL_SIZE", 320)
PER_FILE_MAX_BYTES = env_bytes("PER_FILE_MAX_BYTES", "64MB")
MAX_FILES_PER_UPLOAD = env_int("MAX_FILES_PER_UPLOAD", 50)

# --- Remidio ZIP ingestion (remedio) --------------------------------------------------------------------------------
# Keys for patient pseudonyms (keyed hash of hospital + patient ID) and for the encrypted identifying fields. Required
# when DEBUG is off; in development they are derived from SECRET_KEY. PATIENT_ENCRYPTION_KEY is a Fernet key (32
# url-safe base64 bytes); several comma-separated keys allow rotation (the first encrypts, all decrypt).
PATIENT_PSEUDONYM_KEY = env("PATIENT_PSEUDONYM_KEY")
PATIENT_ENCRYPTION_KEY = env("PATIENT_ENCRYPTION_KEY")
if not DEBUG and not (PATIENT_PSEUDONYM_KEY and PATIENT_ENCRYPTION_KEY):
    raise ImproperlyConfigured("PATIENT_PSEUDONYM_KEY and PATIENT_ENCRYPTION_KEY are required when DEBUG is off.")
PATIENT_PSEUDONYM_KEY = PATIENT_PSEUDONYM_KEY or hashlib.sha256(f"patient-pseudonym:{SECRET_KEY}".encode()).hexdigest()
PATIENT_ENCRYPTION_KEY = (
    PATIENT_ENCRYPTION_KEY
    or base64.urlsafe_b64encode(hashlib.sha256(f"patient-encryption:{SECRET_KEY}".encode()).digest()).decode()
)
for _key in PATIENT_ENCRYPTION_KEY.split(","):
    try:
        _valid = len(base64.urlsafe_b64decode(_key.strip().encode())) == 32
    except ValueError:
        _valid = False
    if not _valid:
        raise ImproperlyConfigured(
            "PATIENT_ENCRYPTION_KEY must be a Fernet key (32 url-safe base64-encoded bytes), e.g. the output of "
            '`python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"`.'
        )
# Archive safety: caps on what one archive may expand to, checked before and while entries are streamed.
REMEDIO_MAX_UNCOMPRESSED_BYTES = env_bytes("REMEDIO_MAX_UNCOMPRESSED_BYTES", "512MB")
REMEDIO_MAX_ENTRY_BYTES = env_bytes("REMEDIO_MAX_ENTRY_BYTES", "64MB")
REMEDIO_MAX_ENTRIES = env_int("REMEDIO_MAX_ENTRIES", 2000)
REMEDIO_MAX_COMPRESSION_RATIO = env_int("REMEDIO_MAX_COMPRESSION_RATIO", 100)
# Report reading: rasterised pages are rendered at this resolution for OCR; one page may take at most this long.
REMEDIO_OCR_DPI = env_int("REMEDIO_OCR_DPI", 200)
REMEDIO_OCR_TIMEOUT_SECONDS = env_int("REMEDIO_OCR_TIMEOUT_SECONDS", 120)
REMEDIO_OCR_LANGUAGE = env("REMEDIO_OCR_LANGUAGE", "eng")

# --- Grading (grading app) ------------------------------------------------------------------------------------------
# How long a grader holds a task taken from the queue before it returns to the queue (the grading page renews it
# while the grader is active).
GRADING_LEASE_SECONDS = env_int("GRADING_LEASE_SECONDS", 15 * 60)
# Grades written per batch by grade imports (a constant number of queries per batch; an import job writes all its
# batches in one transaction).
GRADING_IMPORT_BATCH_SIZE = env_int("GRADING_IMPORT_BATCH_SIZE", 5000)

# --- Pre-graded uploads and grade import (pregraded app) ------------------------------------------------------------
# Largest grade spreadsheet accepted, and the most data rows one import takes (larger files are refused whole).
PREGRADED_IMPORT_MAX_FILE_MB = env_int("PREGRADED_IMPORT_MAX_FILE_MB", 20)
PREGRADED_IMPORT_MAX_ROWS = env_int("PREGRADED_IMPORT_MAX_ROWS", 100_000)

# --- Background jobs ------------------------------------------------------------------------------------------------
BROKER_DIR = DATA_DIR / "broker"
# The host part means nothing to the filesystem transport; naming one keeps kombu from warning on every connection.
CELERY_BROKER_URL = env("CELERY_BROKER_URL", "filesystem://localhost//")
CELERY_BROKER_TRANSPORT_OPTIONS = {}
if CELERY_BROKER_URL.startswith("filesystem://"):
    for _folder in ("queue", "control"):
        (BROKER_DIR / _folder).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(BROKER_DIR / "queue"),
        "data_folder_out": str(BROKER_DIR / "queue"),
        "control_folder": str(BROKER_DIR / "control"),
        "store_processed": False,
        # The folder is polled (a directory listing, cheap): a short interval keeps items flowing to idle workers.
        "polling_interval": 0.1,
    }
elif CELERY_BROKER_URL.startswith("redis"):
    # Longer than the slowest item, so a late-acknowledged task is not redelivered while it still runs.
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT", 3600)}
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_IGNORE_RESULT = True
# One message per worker process at a time on Redis, so a long item never holds others back behind it. The file broker
# (one machine) is polled rather than pushed: a few messages in hand let a process start its next item at once.
CELERY_WORKER_PREFETCH_MULTIPLIER = 4 if CELERY_BROKER_URL.startswith("filesystem://") else 1
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_BEAT_SCHEDULE_FILENAME = str(DATA_DIR / "celerybeat-schedule")
CELERY_BEAT_SCHEDULE = {
    "reap-stale-job-items": {"task": "jobs.reap_stale_items", "schedule": 60.0},
}
# An item still "processing" this long after its last heartbeat is presumed lost with its worker.
JOB_ITEM_STALE_SECONDS = env_int("JOB_ITEM_STALE_SECONDS", 15 * 60)
# Queued items sent to the broker this long ago that no worker picked up are sent again (a lost message).
JOB_ITEM_REQUEUE_SECONDS = env_int("JOB_ITEM_REQUEUE_SECONDS", 5 * 60)
# Queued items that never reached the broker (it was down when the job was created) are sent after this delay.
JOB_ITEM_UNSENT_SECONDS = env_int("JOB_ITEM_UNSENT_SECONDS", 60)
# Most items the reaper sends again in one run.
JOB_ITEM_RESEND_BATCH = env_int("JOB_ITEM_RESEND_BATCH", 1000)
JOB_ITEM_MAX_ATTEMPTS = env_int("JOB_ITEM_MAX_ATTEMPTS", 2)

# --- API ------------------------------------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": None,
    "EXCEPTION_HANDLER": "common.api.exception_handler",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Fundus Grading Center API",
    "DESCRIPTION": "Upload fundus images, follow jobs, grade and measure. Authenticate with "
    "`Authorization: Token <token>` (POST /api/auth/token/).",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Swagger UI from the installed package, so the docs page works offline.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# --- Security -------------------------------------------------------------------------------------------------------
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", not DEBUG)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", not DEBUG)
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if TRUSTED_PROXY_COUNT else None

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}

# --- Quality metrics (grading.quality) ------------------------------------------------------------------------------
# Grader monitoring (AIROGS protocol defaults): flag a grader whose running sensitivity or specificity against the
# final labels falls below these, once they have at least QUALITY_MONITOR_MIN_CASES referable (and non-referable)
# cases; the recent window is the last QUALITY_MONITOR_WINDOW compared grades.


def _env_fraction(name: str, default: float) -> float:
    value = env(name)
    if value is None:
        return default
    try:
        fraction = float(value.strip().rstrip("%")) / (100 if value.strip().endswith("%") else 1)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} must be a fraction such as 0.8 or a percentage such as 80%") from exc
    if not 0 <= fraction <= 1:
        raise ImproperlyConfigured(f"{name} must be between 0 and 1 (or 0% and 100%), got {value!r}")
    return fraction


QUALITY_MIN_SENSITIVITY = _env_fraction("QUALITY_MIN_SENSITIVITY", 0.80)
QUALITY_MIN_SPECIFICITY = _env_fraction("QUALITY_MIN_SPECIFICITY", 0.95)
QUALITY_MONITOR_MIN_CASES = env_int("QUALITY_MONITOR_MIN_CASES", 20)
QUALITY_MONITOR_WINDOW = env_int("QUALITY_MONITOR_WINDOW", 100)
# Computed figures are cached per selection in this cache (a shared one, e.g. Redis, in production) and invalidated
# when grades change; no entry is older than this.
QUALITY_CACHE_ALIAS = env("QUALITY_CACHE_ALIAS", "default")
QUALITY_CACHE_SECONDS = env_int("QUALITY_CACHE_SECONDS", 600)
