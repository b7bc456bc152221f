"""Settings for every environment, read from environment variables only.

With nothing set, the project runs embedded: a SQLite file, Celery tasks run eagerly in the
web process, e-mail printed to the console. Production sets the variables listed in the
README's configuration table (and uses ``config.settings.production``).
"""
from pathlib import Path

import environ
from celery.schedules import crontab

BASE_DIR = Path(__file__).resolve().parent.parent.parent

env = environ.Env()

SECRET_KEY = env("SECRET_KEY", default="insecure-demo-key-change-me-in-production-0123456789")
DEBUG = env.bool("DEBUG", default=True)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "simple_history",
    "core",
    "trials",
    "patients",
    "crfs",
    "safety",
    "supply",
    "scheduling",
    "randomisation",
    "outcomes",
    "reports",
    "pages",
    "demo",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "django_otp.plugins.otp_static",
    "axes",
    "csp",
    "accounts",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "api",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "accounts.middleware.SecurityHeadersMiddleware",
    "csp.middleware.CSPMiddleware",
    "accounts.middleware.DatabaseUnavailableMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.auth.middleware.LoginRequiredMiddleware",
    "accounts.middleware.IdleSessionMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "accounts.middleware.TwoFactorMiddleware",
    "accounts.middleware.ProfileLanguageMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "simple_history.middleware.HistoryRequestMiddleware",
    "core.middleware.AdminAccessAuditMiddleware",
    "axes.middleware.AxesMiddleware",
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
                "django.template.context_processors.i18n",
            ],
        },
    },
]

# An empty variable counts as unset, so `DATABASE_URL= make test` means "the embedded default".
DATABASES = {"default": env.db_url_config(
    env.str("DATABASE_URL", default="") or f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
DATABASES["default"]["ATOMIC_REQUESTS"] = False
DATABASES["default"]["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=0)
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Serialise writers instead of failing with "database is locked" under concurrent requests.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"timeout": 20, "transaction_mode": "IMMEDIATE"}
    )
else:
    # Server-side binding: parameters travel apart from the SQL text instead of being quoted
    # into it in Python, and psycopg prepares a statement once a connection has run it five
    # times, so PostgreSQL no longer parses and plans the same queries on every request.
    # Off for a connection pooler in transaction mode (PgBouncer before 1.21): prepared
    # statements do not survive a switch of server connection there.
    prepared = env.bool("DATABASE_PREPARED_STATEMENTS", default=True)
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"server_side_binding": prepared, "prepare_threshold": 5 if prepared else None}
    )

# The role that owns the tables: `manage.py migrate` connects as it when set, then gives the
# runtime role of DATABASE_URL only the rights the application needs (core/db_roles.py,
# docs/operations.md "Database roles"). Not a DATABASES alias: nothing else may use it.
DATABASE_OWNER = (env.db_url_config(env.str("DATABASE_OWNER_URL", default=""))
                  if env.str("DATABASE_OWNER_URL", default="") else None)

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
     "OPTIONS": {"min_length": 12}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

# Dates are shown in the trials' time zone; every instant is stored in UTC.
LANGUAGE_CODE = "en"
LANGUAGES = [("en", "English"), ("fr", "Français")]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = env("TIME_ZONE", default="Europe/Paris")
USE_I18N = True
# One way of writing dates per language (config/formats/<language>/formats.py), used by pages,
# PDFs and e-mails alike; exports stay ISO 8601.
FORMAT_MODULE_PATH = ["config.formats"]
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(env("STATIC_ROOT", default=str(BASE_DIR / "staticfiles")))
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
MEDIA_ROOT = Path(env("MEDIA_ROOT", default=str(BASE_DIR / "media")))

vars().update(env.email_url_config(env.str("EMAIL_URL", default="") or "consolemail://"))
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", default="trials@localhost")
# A hung SMTP server must fail the send (and let Celery retry it), not block a worker forever.
EMAIL_TIMEOUT = env.int("EMAIL_TIMEOUT", default=30)
# Where e-mails link to (the reminder digests): the address users reach the site at.
SITE_URL = env("SITE_URL", default="http://127.0.0.1:8000")

# Celery: with no broker configured, tasks run eagerly in the calling process.
CELERY_BROKER_URL = env("CELERY_BROKER_URL", default="")
CELERY_TASK_ALWAYS_EAGER = not CELERY_BROKER_URL
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_RESULT_BACKEND = env("CELERY_RESULT_BACKEND", default=None)
CELERY_TIMEZONE = TIME_ZONE
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# A page that enqueues a task while Redis is down must answer quickly: give up publishing
# after about half a second (callers catch the error, see core.notify).
CELERY_TASK_PUBLISH_RETRY_POLICY = {"max_retries": 2, "interval_start": 0,
                                    "interval_step": 0.2, "interval_max": 0.3}
CELERY_BROKER_CONNECTION_TIMEOUT = 2
# The daily visit reminder job (patients.tasks), at 07:00 in CELERY_TIMEZONE (Europe/Paris),
# and the schedule extension an hour before it (visits created up to the planning horizon).
CELERY_BEAT_SCHEDULE = {
    "visit-reminders": {
        "task": "patients.send_visit_reminders",
        "schedule": crontab(hour=env.int("VISIT_REMINDER_HOUR", default=7), minute=0),
    },
    "extend-schedules": {
        "task": "patients.extend_schedules",
        "schedule": crontab(hour=(env.int("VISIT_REMINDER_HOUR", default=7) - 1) % 24, minute=0),
    },
}
# Visits are created this many months ahead of today (scheduling.services, "planning horizon").
SCHEDULE_PLANNING_MONTHS = env.int("SCHEDULE_PLANNING_MONTHS", default=6)

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # Token first: an anonymous API call gets 401 with "WWW-Authenticate: Token".
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "api.schema.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "api.pagination.PageNumberPagination",
    "EXCEPTION_HANDLER": "api.errors.exception_handler",
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
}

# The OpenAPI 3 schema of the REST API (/api/schema/, docs at /api/docs/), see api/.
SPECTACULAR_SETTINGS = {
    "TITLE": "CTMS API",
    "DESCRIPTION": "Trials, participants, randomisation, visits, CRFs, data queries and the "
                   "investigational product's supply (kits). "
                   "Every answer follows the same permission policy as the pages.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",  # served by the project: no CDN
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "SCHEMA_PATH_PREFIX": "/api/v1",
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    "ENUM_NAME_OVERRIDES": {
        "ParticipantStatusEnum": "patients.models.Status",
        "VisitStatusEnum": "patients.models.VisitStatus",
        "VisitStateEnum": "patients.models.VisitState",
        "CRFStatusEnum": "crfs.models.CRFStatus",
        "QueryStatusEnum": "crfs.models.QueryStatus",
        "KitStatusEnum": "supply.models.KitStatus",
        "ShipmentStatusEnum": "supply.models.ShipmentStatus",
        "KitListStatusEnum": "supply.models.KitListStatus",
    },
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", default="INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}
# The SAE clock (safety.tasks): reminders before the site's 24-hour deadline and the
# escalation after it, checked every 15 minutes (each sent once: safety.reminders).
CELERY_BEAT_SCHEDULE["sae-clock"] = {
    "task": "safety.check_sae_clock",
    "schedule": crontab(minute="*/15"),
}
# Supply (supply.tasks): every site's stock against its coming visits, daily; a resupply
# request is raised once and e-mailed once (supply.resupply).
CELERY_BEAT_SCHEDULE["supply-stock"] = {
    "task": "supply.check_stock",
    "schedule": crontab(hour=6, minute=15),
}
# Reports (reports.tasks): hand the broker again, every minute, the report requests it never
# got while Redis was down, and the builds whose worker died.
CELERY_BEAT_SCHEDULE["report-redispatch"] = {
    "task": "outcomes.redispatch_reports",
    "schedule": 60.0,
}

# Accounts and security (docs/accounts-and-security.md, SECURITY.md).
# Argon2id first; older hashes are upgraded at the next login.
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2SHA1PasswordHasher",
    "django.contrib.auth.hashers.ScryptPasswordHasher",
]
# django-axes counts failed logins per username + IP and locks that pair out for a while;
# its backend must come first to refuse a locked-out pair before the password is checked.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "accounts.backends.UserWithProfileBackend",
]
AXES_FAILURE_LIMIT = env.int("LOGIN_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = env.int("LOGIN_LOCKOUT_MINUTES", default=15) / 60  # hours
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AXES_RESET_ON_SUCCESS = True
AXES_VERBOSE = False
# Sessions end after SESSION_IDLE_MINUTES without a request (accounts.middleware.
# IdleSessionMiddleware pushes the expiry back at most once a minute), and when the browser closes.
SESSION_COOKIE_AGE = env.int("SESSION_IDLE_MINUTES", default=30) * 60
SESSION_EXPIRE_AT_BROWSER_CLOSE = True
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
# Two-factor authentication (django-otp, TOTP + backup codes): accounts.middleware.
OTP_TOTP_ISSUER = env("OTP_ISSUER", default="CTMS")
OTP_TOTP_THROTTLE_FACTOR = 1
# Response headers (SecurityMiddleware, XFrameOptionsMiddleware, accounts.middleware, django-csp).
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
PERMISSIONS_POLICY = "camera=(), microphone=(), geolocation=(), payment=(), usb=()"
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "frame-ancestors": ["'none'"],
        "form-action": ["'self'"],
    },
}
# A task that is running when its worker dies goes back to the queue after this many seconds
# (Redis transport); it must be longer than the longest task (see bench/fault_worker_kill.py).
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": env.int("CELERY_VISIBILITY_TIMEOUT",
                                                                 default=3600)}
