"""DevBench settings: every value comes from the environment (see README, "Configuration").

Without DATABASE_URL the database is SQLite under ``var/``; without REDIS_URL the Channels
layer, the cache and the Celery broker use the embedded Valkey server on a unix socket under
``var/`` (started by ``make run`` and by the test suite, see ``devbench_site.embedded_valkey``).
"""

from __future__ import annotations

import contextlib
import secrets
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()

VAR_DIR = Path(env.str("DEVBENCH_VAR_DIR", default=str(BASE_DIR / "var"))).resolve()
# var/ holds the SQLite database, the secret key and the Valkey socket: only its owner may enter
# it, also when an older start created it open (a directory we do not own stays as it is).
VAR_DIR.mkdir(mode=0o700, parents=True, exist_ok=True)
with contextlib.suppress(PermissionError):
    VAR_DIR.chmod(0o700)


def _secret_key_from_var() -> str:
    """Read the development secret key kept under var/, generating it on first use."""
    key_file = VAR_DIR / "secret_key"
    if not key_file.exists():
        key_file.touch(mode=0o600)
        key_file.write_text(secrets.token_urlsafe(64))
    return key_file.read_text().strip()


SECRET_KEY = env.str("SECRET_KEY", default="") or _secret_key_from_var()
SECRET_KEY_FALLBACKS = env.list("SECRET_KEY_FALLBACKS", default=[])  # earlier keys, still accepted
DEBUG = env.bool("DEBUG", default=False)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

# Behind HTTPS (a TLS-terminating proxy or ingress): secure cookies, HSTS, redirect.
HTTPS = env.bool("DEVBENCH_HTTPS", default=False)

INSTALLED_APPS = [
    "daphne",
    "accounts.apps.AccountsConfig",
    "accounts.apps.DevBenchAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "channels",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "benches.apps.BenchesConfig",
    "sessionhosts.apps.SessionhostsConfig",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "devbench_site.middleware.SecurityHeadersMiddleware",
    "devbench_site.middleware.BodySizeLimitMiddleware",  # before anything reads the body
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "accounts.middleware.APIKeyMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "devbench_site.urls"
ASGI_APPLICATION = "devbench_site.asgi.application"
WSGI_APPLICATION = None

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

# --- Database -------------------------------------------------------------------------------
DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'devbench.sqlite3'}"),
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # SQLite creates the file (and its -wal and -shm files, which copy its mode) world-readable.
    if DATABASES["default"]["NAME"] == str(VAR_DIR / "devbench.sqlite3"):
        Path(DATABASES["default"]["NAME"]).touch(mode=0o600)
    # Daphne, the worker and beat share the file: WAL lets readers run beside one writer.
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
    }
    # A file, not memory: the live-server tests share it with Daphne and worker processes.
    DATABASES["default"]["TEST"] = {
        "NAME": env.str("DEVBENCH_TEST_DATABASE_NAME", default=str(VAR_DIR / "test-devbench.sqlite3"))
    }
else:
    DATABASES["default"].setdefault("CONN_HEALTH_CHECKS", True)  # with a pool: checked when lent out
    # A pool of PostgreSQL connections per process. Under ASGI every request runs in a thread of its
    # own, and Django closes a thread's connection when the request ends: without a pool every
    # request, WebSocket handshake and task opened a new one, and PostgreSQL starts a server
    # process for each, for a few small queries. Connections are opened as needed (none at start),
    # closed after 5 idle minutes; a thread that finds all DEVBENCH_DB_POOL_SIZE lent out waits up
    # to DEVBENCH_DB_POOL_TIMEOUT seconds, then gets the database-unavailable answer (503).
    # Jobs give theirs back while their remote command runs (benches.services). 0 turns it off.
    DEVBENCH_DB_POOL_SIZE = env.int("DEVBENCH_DB_POOL_SIZE", default=20)
    if DEVBENCH_DB_POOL_SIZE > 0:
        DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
            "min_size": 0,
            "max_size": DEVBENCH_DB_POOL_SIZE,
            "max_idle": 300,
            "timeout": env.float("DEVBENCH_DB_POOL_TIMEOUT", default=5.0),
        }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis / Valkey ---------------------------------------------------------------------------
EMBEDDED_VALKEY_SOCKET = VAR_DIR / "valkey.sock"
REDIS_URL = env.str("REDIS_URL", default="") or f"unix://{EMBEDDED_VALKEY_SOCKET}?db=0"
EMBEDDED_VALKEY = "REDIS_URL" not in env


def _redis_db(redis_url: str) -> int:
    """The database number in a Redis URL (``redis://host/3``, ``unix://path?db=3``; default 0)."""
    parts = urlsplit(redis_url)
    number = parse_qs(parts.query).get("db", [parts.path.strip("/") if parts.scheme != "unix" else ""])[0]
    return int(number) if number.isdigit() else 0


def _celery_broker_url(redis_url: str) -> str:
    """Celery (kombu) names a redis unix socket ``redis+socket://``."""
    if redis_url.startswith("unix://"):
        path = redis_url[len("unix://"):].partition("?")[0]
        return f"redis+socket://{path}"
    return redis_url


CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
        # Redis's pub/sub channels are shared by all its databases: the prefix carries the
        # database number, so that two sites on one Redis server never hear each other's events.
        "CONFIG": {"hosts": [{"address": REDIS_URL}], "prefix": f"devbench{_redis_db(REDIS_URL)}"},
    },
}

CACHES = {
    "default": {
        "BACKEND": "devbench_site.cache.RedisCache",  # django-redis + the rate limits' counter
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": "devbench-cache",
        "OPTIONS": {"IGNORE_EXCEPTIONS": True},  # Redis away: fail open, never 500
    },
}
DJANGO_REDIS_LOG_IGNORED_EXCEPTIONS = True

# --- Celery -----------------------------------------------------------------------------------
CELERY_BROKER_URL = _celery_broker_url(REDIS_URL)
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 2 * 3600}
CELERY_TASK_IGNORE_RESULT = True
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
CELERY_BEAT_SCHEDULE: dict = {}
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
CELERY_TASK_EAGER_PROPAGATES = True

# --- Auth -------------------------------------------------------------------------------------
AUTH_USER_MODEL = "accounts.User"
LOGIN_URL = "/login"
LOGIN_REDIRECT_URL = "/dashboard"
AUTHENTICATION_BACKENDS = ["django.contrib.auth.backends.ModelBackend"]
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
]
# For the test suite only (tests/isolated_session.py sets it, and the Daphne and worker processes
# the tests start inherit it): Argon2 is slow by design, so Django's docs advise a fast hasher in
# tests. Argon2 stays the second hasher, so its hashes still verify. Never set in a deployment.
if env.bool("DEVBENCH_TEST_FAST_PASSWORD_HASHER", default=False):
    PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher", *PASSWORD_HASHERS]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
DEVBENCH_ADMIN_USERNAME = env.str("DEVBENCH_ADMIN_USERNAME", default="admin")
DEVBENCH_ADMIN_PASSWORD = env.str("DEVBENCH_ADMIN_PASSWORD", default="")
DEVBENCH_ADMIN_EMAIL = env.str("DEVBENCH_ADMIN_EMAIL", default="admin@localhost")

# Failed sign-ins: 5 a minute per username and per client address (accounts.login_throttle).
DEVBENCH_LOGIN_FAILURE_LIMIT = env.int("DEVBENCH_LOGIN_FAILURE_LIMIT", default=5)
DEVBENCH_LOGIN_WINDOW_SECONDS = env.int("DEVBENCH_LOGIN_WINDOW_SECONDS", default=60)
# Password checks at once per process; more sign-ins at once are told to retry (503).
DEVBENCH_LOGIN_CONCURRENT_CHECKS = env.int("DEVBENCH_LOGIN_CONCURRENT_CHECKS", default=4)

# --- Sessions, CSRF and security headers ------------------------------------------------------
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_AGE = env.int("DEVBENCH_SESSION_AGE_SECONDS", default=14 * 24 * 3600)
CSRF_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_HTTPONLY = True
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
CSRF_FAILURE_VIEW = "devbench_site.views.csrf_failure"
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("DEVBENCH_MAX_BODY_BYTES", default=1024 * 1024)
if HTTPS:
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_SSL_REDIRECT = env.bool("DEVBENCH_SSL_REDIRECT", default=True)
    SECURE_REDIRECT_EXEMPT = [r"^health$"]
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_HSTS_SECONDS = env.int("DEVBENCH_HSTS_SECONDS", default=31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True

# --- REST framework ---------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "accounts.authentication.APIKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PARSER_CLASSES": [
        "devbench_site.api.parsing.JSONParser",  # refuses deep nesting with a 400
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
    # The JSON API (devbench_site.api, docs/api.md): errors, pagination, throttling, OpenAPI.
    "EXCEPTION_HANDLER": "devbench_site.api.exceptions.exception_handler",
    "DEFAULT_PAGINATION_CLASS": "devbench_site.api.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_THROTTLE_CLASSES": ["devbench_site.api.throttles.UserRateThrottle"],
    "DEFAULT_SCHEMA_CLASS": "devbench_site.api.schema.AutoSchema",
}
# Requests per user to the API ("N/sec|min|hour|day"); bench creation has its own hourly limit
# (DEVBENCH_CREATE_LIMIT_PER_HOUR), the same for the compatible route and the API.
DEVBENCH_API_RATE = env.str("DEVBENCH_API_RATE", default="100/min")
REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"] = {"user": DEVBENCH_API_RATE}

SPECTACULAR_SETTINGS = {
    "TITLE": "DevBench API",
    "DESCRIPTION": (
        "DevBench's JSON API (v1) and the compatible routes. Authenticate with an API key "
        "(`Authorization: Bearer dbk_…`) or the session cookie (with the CSRF token on unsafe requests). "
        "Errors are `{\"error\": \"...\"}` with field errors under `fields`. The WebSocket's messages are "
        "the `Ws…` schemas; see docs/websocket.md."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SCHEMA_PATH_PREFIX": r"/api/v[0-9]+",
    "COMPONENT_SPLIT_REQUEST": True,
    # Bodies are documented as JSON or a urlencoded form. Multipart is parsed too (the browsable
    # API's forms) but not offered: Daphne's HTTP layer answers a malformed one with a bare 400.
    "PARSER_WHITELIST": ["rest_framework.parsers.JSONParser", "rest_framework.parsers.FormParser"],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "SWAGGER_UI_SETTINGS": {"deepLinking": True, "persistAuthorization": True},
    "ENUM_NAME_OVERRIDES": {
        "BenchStatusEnum": "benches.models.DevBench.Status",
        "JobStateEnum": "benches.models.Job.State",
        "JobCommandEnum": "benches.models.Job.Command",
        "HostKindEnum": "benches.models.Host.Kind",
        "LogStreamEnum": "benches.models.JobChunk.Stream",
        "SessionHostStateEnum": "sessionhosts.models.SessionHost.State",
    },
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "devbench_site.api.schema.add_error_component",
        "devbench_site.api.compatible_schema.add_compatible_routes",
        "devbench_site.api.schema.add_links",
    ],
}

# --- Static files, i18n -----------------------------------------------------------------------
STATIC_URL = "/static/"
STATIC_ROOT = VAR_DIR / "static"
STATIC_ROOT.mkdir(exist_ok=True)
STATICFILES_DIRS = [BASE_DIR / "static"]
WHITENOISE_USE_FINDERS = True
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- Logging ----------------------------------------------------------------------------------
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {
        "django.channels.server": {"level": "WARNING"},
        "paramiko": {"level": "WARNING"},
    },
}

# --- Benches (benches app) --------------------------------------------------------------------
DEVBENCH_DEFAULT_QUOTA = env.int("DEVBENCH_DEFAULT_QUOTA", default=5)
# Resource limits per user (all benches together); unset: the bench count times the default plan.
DEVBENCH_DEFAULT_VCPU_QUOTA = env.int("DEVBENCH_DEFAULT_VCPU_QUOTA", default=None)
DEVBENCH_DEFAULT_MEMORY_QUOTA_MIB = env.int("DEVBENCH_DEFAULT_MEMORY_QUOTA_MIB", default=None)
DEVBENCH_DEFAULT_DISK_QUOTA_GIB = env.int("DEVBENCH_DEFAULT_DISK_QUOTA_GIB", default=None)
DEVBENCH_MAX_SNAPSHOTS_PER_BENCH = env.int("DEVBENCH_MAX_SNAPSHOTS_PER_BENCH", default=5)
# SSH keys a user may keep; each goes into every new bench (the agent takes at most 32 per VM).
DEVBENCH_MAX_SSH_KEYS_PER_USER = env.int("DEVBENCH_MAX_SSH_KEYS_PER_USER", default=20)
DEVBENCH_CREATE_LIMIT_PER_HOUR = env.int("DEVBENCH_CREATE_LIMIT_PER_HOUR", default=10)
# The built-in "local" host: the bundled agent, no sshd needed. Its backend: "auto" makes real VMs
# with libvirt when this machine has QEMU, libvirtd and an image, else simulates them.
DEVBENCH_LOCAL_HOST = env.bool("DEVBENCH_LOCAL_HOST", default=True)
DEVBENCH_LOCAL_BACKEND = env.str("DEVBENCH_LOCAL_BACKEND", default="auto")
if DEVBENCH_LOCAL_BACKEND not in ("auto", "libvirt", "simulated"):
    raise ImproperlyConfigured("DEVBENCH_LOCAL_BACKEND must be auto, libvirt or simulated")
# Where QEMU (as libvirt's user) reads the local host's images and writes its VMs' disks.
DEVBENCH_LOCAL_IMAGES_DIR = Path(env.str("DEVBENCH_LOCAL_IMAGES_DIR", default="/var/lib/devbench/images"))
DEVBENCH_LOCAL_DISK_DIR = Path(env.str("DEVBENCH_LOCAL_DISK_DIR", default="/var/lib/devbench/disks"))
# kvm, tcg (software emulation) or auto (KVM when /dev/kvm answers): "tcg" where /dev/kvm answers
# but cannot run a guest, as under some nested hypervisors.
DEVBENCH_LOCAL_ACCEL = env.str("DEVBENCH_LOCAL_ACCEL", default="auto")
DEVBENCH_LOCAL_HOST_CAPACITY = env.int("DEVBENCH_LOCAL_HOST_CAPACITY", default=20)
DEVBENCH_LOCAL_AGENT_CONFIG = Path(
    env.str("DEVBENCH_LOCAL_AGENT_CONFIG", default=str(VAR_DIR / "local-agent.conf"))
)
DEVBENCH_LOCAL_STEP_DELAY = env.float("DEVBENCH_LOCAL_STEP_DELAY", default=0.4)
# The account name inside VMs for users' SSH configs; empty means the DevBench username.
DEVBENCH_VM_USERNAME = env.str("DEVBENCH_VM_USERNAME", default="")
DEVBENCH_STATUS_TIMEOUT = env.int("DEVBENCH_STATUS_TIMEOUT", default=60)
DEVBENCH_STATUS_SYNC_SECONDS = env.int("DEVBENCH_STATUS_SYNC_SECONDS", default=60)
DEVBENCH_JOB_HEARTBEAT_TIMEOUT = env.int("DEVBENCH_JOB_HEARTBEAT_TIMEOUT", default=60)
DEVBENCH_QUEUED_JOB_TTL = env.int("DEVBENCH_QUEUED_JOB_TTL", default=3600)
CELERY_BEAT_SCHEDULE["bench-status-sync"] = {
    "task": "benches.tasks.sync_statuses",
    "schedule": float(DEVBENCH_STATUS_SYNC_SECONDS),
}
CELERY_BEAT_SCHEDULE["bench-stale-job-sweep"] = {
    "task": "benches.tasks.sweep_stale_jobs",
    "schedule": 30.0,
}

# --- Session hosts on Kubernetes (sessionhosts app) -------------------------------------------
# Kubernetes access (docs/kubernetes.md): a kubeconfig file, else the in-cluster service account.
# With neither, the session-host endpoints answer 503 and the rest of DevBench works as before.
DEVBENCH_KUBECONFIG = env.str("DEVBENCH_KUBECONFIG", default="") or env.str("KUBECONFIG", default="").split(":")[0]
DEVBENCH_KUBE_CONTEXT = env.str("DEVBENCH_KUBE_CONTEXT", default="")
DEVBENCH_KUBE_IN_CLUSTER = env.bool("DEVBENCH_KUBE_IN_CLUSTER", default="KUBERNETES_SERVICE_HOST" in env)
DEVBENCH_KUBE_TIMEOUT_SECONDS = env.float("DEVBENCH_KUBE_TIMEOUT_SECONDS", default=10.0)  # per request, connect+read
# The Celery tasks retry when the API server fails (429/5xx, no answer): at most this many times,
# after 2, 4, 8… seconds (full jitter), each wait capped.
DEVBENCH_KUBE_RETRY_MAX = env.int("DEVBENCH_KUBE_RETRY_MAX", default=5)
DEVBENCH_KUBE_RETRY_BACKOFF_SECONDS = env.int("DEVBENCH_KUBE_RETRY_BACKOFF_SECONDS", default=2)
DEVBENCH_KUBE_RETRY_BACKOFF_MAX_SECONDS = env.int("DEVBENCH_KUBE_RETRY_BACKOFF_MAX_SECONDS", default=60)
# What each user's session host is made of.
DEVBENCH_SESSIONHOST_IMAGE = env.str("DEVBENCH_SESSIONHOST_IMAGE", default="ghcr.io/devbench/session-host:latest")
DEVBENCH_SESSIONHOST_IMAGE_PULL_POLICY = env.str("DEVBENCH_SESSIONHOST_IMAGE_PULL_POLICY", default="IfNotPresent")
DEVBENCH_SESSIONHOST_PORT = env.int("DEVBENCH_SESSIONHOST_PORT", default=8080)
DEVBENCH_SESSIONHOST_DOMAIN = env.str("DEVBENCH_SESSIONHOST_DOMAIN", default="devbench.example.com")
DEVBENCH_SESSIONHOST_CLUSTER_ISSUER = env.str("DEVBENCH_SESSIONHOST_CLUSTER_ISSUER", default="letsencrypt")
DEVBENCH_SESSIONHOST_INGRESS_CLASS = env.str("DEVBENCH_SESSIONHOST_INGRESS_CLASS", default="")
# Controller-specific ingress annotations as JSON, e.g. {"nginx.ingress.kubernetes.io/proxy-read-timeout": "3600"}
DEVBENCH_SESSIONHOST_INGRESS_ANNOTATIONS = env.json("DEVBENCH_SESSIONHOST_INGRESS_ANNOTATIONS", default={})
DEVBENCH_SESSIONHOST_STORAGE_CLASS = env.str("DEVBENCH_SESSIONHOST_STORAGE_CLASS", default="")
DEVBENCH_SESSIONHOST_HOME_SIZE = env.str("DEVBENCH_SESSIONHOST_HOME_SIZE", default="10Gi")
DEVBENCH_SESSIONHOST_WORKSPACE_SIZE = env.str("DEVBENCH_SESSIONHOST_WORKSPACE_SIZE", default="20Gi")
DEVBENCH_SESSIONHOST_NAMESPACE_PREFIX = env.str("DEVBENCH_SESSIONHOST_NAMESPACE_PREFIX", default="devbench-")
DEVBENCH_SESSIONHOST_CPU_REQUEST = env.str("DEVBENCH_SESSIONHOST_CPU_REQUEST", default="250m")
DEVBENCH_SESSIONHOST_MEMORY_REQUEST = env.str("DEVBENCH_SESSIONHOST_MEMORY_REQUEST", default="512Mi")
DEVBENCH_SESSIONHOST_CPU_LIMIT = env.str("DEVBENCH_SESSIONHOST_CPU_LIMIT", default="2")
DEVBENCH_SESSIONHOST_MEMORY_LIMIT = env.str("DEVBENCH_SESSIONHOST_MEMORY_LIMIT", default="4Gi")
DEVBENCH_SESSIONHOST_RUN_AS_USER = env.int("DEVBENCH_SESSIONHOST_RUN_AS_USER", default=1000)
DEVBENCH_SESSIONHOST_SERVICE_ACCOUNT = env.str("DEVBENCH_SESSIONHOST_SERVICE_ACCOUNT", default="")
# Drift repair of every session host by Celery beat (one LIST per kind).
DEVBENCH_SESSIONHOST_RESYNC_SECONDS = env.int("DEVBENCH_SESSIONHOST_RESYNC_SECONDS", default=300)
CELERY_BEAT_SCHEDULE["sessionhost-resync"] = {
    "task": "sessionhosts.tasks.resync_session_hosts",
    "schedule": DEVBENCH_SESSIONHOST_RESYNC_SECONDS,
    "options": {"expires": DEVBENCH_SESSIONHOST_RESYNC_SECONDS},
}
