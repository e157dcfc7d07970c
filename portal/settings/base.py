"""Settings shared by every environment, read from the process environment.

Local defaults point at the services `make run` starts on this machine: PostgreSQL and Redis
on 127.0.0.1 and the devcloud's clouds.yaml. Production overrides live in `production.py`.
"""
from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

DEBUG = env.bool("DJANGO_DEBUG", default=False)
SECRET_KEY = env("DJANGO_SECRET_KEY", default="insecure-local-development-key-change-me")
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["127.0.0.1", "localhost"])
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django_htmx",
    "template_partials",
    "django_celery_beat",
    "allauth",
    "allauth.account",
    "allauth.socialaccount",
    "allauth.socialaccount.providers.openid_connect",
    "rest_framework",
    "drf_spectacular",
    "django_prometheus",
    "portal",
    "api",
    "allocations",
    "instances",
    "clusters",
    "classes",
    "stacks",
]

MIDDLEWARE = [
    "django_prometheus.middleware.PrometheusBeforeMiddleware",  # first: times everything below
    "portal.middleware.RequestIdMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # Every page needs a signed-in user unless its view says otherwise.
    "django.contrib.auth.middleware.LoginRequiredMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "allauth.account.middleware.AccountMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",  # last
]

ROOT_URLCONF = "portal.urls"
WSGI_APPLICATION = "portal.wsgi.application"

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
                "portal.context_processors.portal",
            ],
        },
    },
]

DATABASES = {
    "default": env.db("DATABASE_URL", default="postgres://postgres@127.0.0.1:5432/portal"),
}
DATABASES["default"]["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":  # the same backend, counting queries
    DATABASES["default"]["ENGINE"] = "django_prometheus.db.backends.postgresql"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env("REDIS_URL", default="redis://127.0.0.1:6379/0")
# The cache lives in its own Redis database: clearing it must never touch Celery's queues.
CACHE_URL = env("CACHE_URL", default="redis://127.0.0.1:6379/1")
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": CACHE_URL,
        "KEY_PREFIX": "portal",
    }
}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = env("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = env("STATIC_ROOT", default=str(BASE_DIR / "var" / "staticfiles"))

# --- The REST API (api/) ------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "api.authentication.BearerTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",  # the browser, with CSRF
    ],
    "DEFAULT_PERMISSION_CLASSES": ["api.permissions.TokenScopePermission"],
    "DEFAULT_THROTTLE_CLASSES": ["api.common.TokenRateThrottle"],
    "DEFAULT_THROTTLE_RATES": {"token": env("PORTAL_API_RATE", default="600/minute")},
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "api.problems.exception_handler",
    "UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Research Cloud Portal API",
    "DESCRIPTION": "Allocations, flavors, images, instances, volumes, keys, public IPs and security groups of "
                   "an OpenStack research cloud, with the portal's own checks and charging.",
    "VERSION": "1.0.0",
    "OAS_VERSION": "3.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SCHEMA_PATH_PREFIX": "/api/v1",
    "COMPONENT_SPLIT_REQUEST": True,
}

# --- Login (django-allauth) -------------------------------------------------------------
LOGIN_URL = "account_login"
LOGIN_REDIRECT_URL = "dashboard"
ACCOUNT_LOGIN_METHODS = {"email"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "password1*", "password2*"]
ACCOUNT_EMAIL_VERIFICATION = "mandatory"
ACCOUNT_UNIQUE_EMAIL = True
ACCOUNT_LOGOUT_ON_PASSWORD_CHANGE = False
ACCOUNT_LOGIN_ON_EMAIL_CONFIRMATION = True
ACCOUNT_CONFIRM_EMAIL_ON_GET = False
ACCOUNT_EMAIL_SUBJECT_PREFIX = env("PORTAL_EMAIL_SUBJECT_PREFIX", default="[Research Cloud] ")
# SSO email trust is per provider (`trust_email` in the app's settings, off by default) and
# applied by portal/adapters.py: an email the provider is not trusted to vouch for is confirmed
# by mail like a local signup, and never signs in to, or connects to, an existing local account.
SOCIALACCOUNT_ADAPTER = "portal.adapters.SocialAccountAdapter"
SOCIALACCOUNT_EMAIL_VERIFICATION = ACCOUNT_EMAIL_VERIFICATION
SOCIALACCOUNT_EMAIL_AUTHENTICATION = True  # the adapter limits it to trusted, verified emails
SOCIALACCOUNT_EMAIL_AUTHENTICATION_AUTO_CONNECT = True

# A generic OpenID Connect provider (CILogon, Globus, Keycloak, ...) configured by the operator.
OIDC_SERVER_URL = env("OIDC_SERVER_URL", default="")
SOCIALACCOUNT_PROVIDERS = {}
if OIDC_SERVER_URL:
    SOCIALACCOUNT_PROVIDERS["openid_connect"] = {
        "OAUTH_PKCE_ENABLED": True,
        "APPS": [
            {
                "provider_id": env("OIDC_PROVIDER_ID", default="sso"),
                "name": env("OIDC_PROVIDER_NAME", default="Institutional login"),
                "client_id": env("OIDC_CLIENT_ID"),
                "secret": env("OIDC_CLIENT_SECRET", default=""),
                "settings": {
                    "server_url": OIDC_SERVER_URL,
                    "token_auth_method": env("OIDC_TOKEN_AUTH_METHOD", default="client_secret_basic"),
                    "scope": env.list("OIDC_SCOPES", default=["openid", "email", "profile"]),
                    # Believe this provider's email_verified claim (portal/adapters.py).
                    "trust_email": env.bool("OIDC_TRUST_EMAIL", default=False),
                },
            }
        ],
    }

EMAIL_BACKEND = env("EMAIL_BACKEND", default="django.core.mail.backends.console.EmailBackend")
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", default="Research Cloud Portal <portal@localhost>")
if env("EMAIL_URL", default=""):
    vars().update(env.email_url("EMAIL_URL"))

# --- Celery ----------------------------------------------------------------------------
CELERY_BROKER_URL = env("CELERY_BROKER_URL", default=REDIS_URL)
CELERY_RESULT_BACKEND = env("CELERY_RESULT_BACKEND", default=REDIS_URL)
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_RESULT_EXPIRES = 24 * 3600
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TRACK_STARTED = True
CELERY_TIMEZONE = TIME_ZONE
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
# Work that talks to a cloud goes to that cloud's queue ("cloud.<region>"), so a worker can
# run next to each region. The mirror sync has a queue of its own ("sync.<region>"): slow cloud
# work (a class's 200 launches) must never hold up the sync that keeps pages fresh. Everything
# else goes to "default". `make run` runs a worker for each of the three.
CELERY_TASK_DEFAULT_QUEUE = env("PORTAL_DEFAULT_QUEUE", default="default")
PORTAL_CLOUD_QUEUE = env("PORTAL_CLOUD_QUEUE", default="cloud.primary")
PORTAL_SYNC_QUEUE = env("PORTAL_SYNC_QUEUE", default="sync." + PORTAL_CLOUD_QUEUE.split(".", 1)[-1])
# A region beside the primary has queues of its own, "cloud.<region>" and "sync.<region>" (with this
# prefix before the region's name; tests set one), so a slow or down region never blocks another.
# `make run` runs one worker for the regions' queues it is given in PORTAL_REGION_QUEUES.
PORTAL_REGION_QUEUE_PREFIX = env("PORTAL_REGION_QUEUE_PREFIX", default="")
# Celery tries the patterns in this order: the sync's must come before "instances.tasks.*".
CELERY_TASK_ROUTES = {
    "instances.tasks.sync_*": {"queue": PORTAL_SYNC_QUEUE},
    "instances.tasks.*": {"queue": PORTAL_CLOUD_QUEUE},
    "clusters.tasks.*": {"queue": PORTAL_CLOUD_QUEUE},
    "stacks.tasks.sync_*": {"queue": PORTAL_SYNC_QUEUE},
    "stacks.tasks.*": {"queue": PORTAL_CLOUD_QUEUE},
    "allocations.tasks.provision_*": {"queue": PORTAL_CLOUD_QUEUE},
    "allocations.tasks.close_allocation": {"queue": PORTAL_CLOUD_QUEUE},
    "allocations.tasks.grant_membership": {"queue": PORTAL_CLOUD_QUEUE},
    "allocations.tasks.revoke_membership": {"queue": PORTAL_CLOUD_QUEUE},
    "allocations.tasks.restore_quotas": {"queue": PORTAL_CLOUD_QUEUE},
    "allocations.tasks.sync_flavor_access": {"queue": PORTAL_CLOUD_QUEUE},
}
# One retry policy for "the cloud did not answer" (portal.cloud.errors.CloudUnavailable: refused
# connections, timeouts, 5xx): up to PORTAL_CLOUD_RETRIES retries, the n-th after a random wait
# of up to min(BACKOFF * 2**(n-1), BACKOFF_MAX) seconds (Celery's retry_backoff with full jitter).
# The defaults give up after about 15 minutes at worst, well inside PORTAL_OPERATION_DEADLINE.
PORTAL_CLOUD_RETRIES = env.int("PORTAL_CLOUD_RETRIES", default=8)
PORTAL_CLOUD_RETRY_BACKOFF = env.int("PORTAL_CLOUD_RETRY_BACKOFF", default=5)
PORTAL_CLOUD_RETRY_BACKOFF_MAX = env.int("PORTAL_CLOUD_RETRY_BACKOFF_MAX", default=300)
# A long operation is checked again after elapsed/4 seconds, within these bounds (portal.runner).
PORTAL_RECHECK_MIN = env.float("PORTAL_RECHECK_MIN", default=0.5)
PORTAL_RECHECK_MAX = env.float("PORTAL_RECHECK_MAX", default=10.0)
# Seconds the network and groups an "Automatic" launch found in a project are reused by the next ones.
PORTAL_PROJECT_SETUP_CACHE_SECONDS = env.int("PORTAL_PROJECT_SETUP_CACHE_SECONDS", default=60)
CELERY_BEAT_SCHEDULE = {
    "fail-stale-operations": {
        "task": "portal.tasks.fail_stale_operations",
        "schedule": 60.0,
    },
}

# --- The cloud -------------------------------------------------------------------------
OS_CLIENT_CONFIG_FILE = env(
    "OS_CLIENT_CONFIG_FILE", default=str(BASE_DIR / "var" / "devcloud" / "clouds.yaml")
)
# The cloud admin: used only by the provisioning module (projects, quotas, role grants, flavor access).
OS_CLOUD = env("OS_CLOUD", default="devcloud-admin")
# The portal's service identity: a user with no admin role, given the member role on each
# allocation's project; background work (mirror sync, meter, enforcement) runs as it.
PORTAL_SERVICE_CLOUD = env("PORTAL_SERVICE_CLOUD", default="devcloud-portal")
# Seconds an API call may take before the portal tells the user the cloud is not answering.
PORTAL_CLOUD_TIMEOUT = env.float("PORTAL_CLOUD_TIMEOUT", default=30.0)
# An operation still "running" after this many seconds is failed by the sweep.
PORTAL_OPERATION_DEADLINE = env.int("PORTAL_OPERATION_DEADLINE", default=3600)
PORTAL_NAME = env("PORTAL_NAME", default="Research Cloud")
# Fernet keys for the secrets the portal keeps, comma-separated: the first encrypts, all decrypt.
PORTAL_ENCRYPTION_KEYS = env.list("PORTAL_ENCRYPTION_KEYS", default=[])

# --- Observability (portal/observability/) -------------------------------------------------
# /metrics answers these networks (direct connections only, not through a proxy), or anyone
# with `Authorization: Bearer <PORTAL_METRICS_TOKEN>` (unset: no token is accepted).
PORTAL_METRICS_ALLOWED = env.list("PORTAL_METRICS_ALLOWED", default=["127.0.0.1/32", "::1/128"])
PORTAL_METRICS_TOKEN = env("PORTAL_METRICS_TOKEN", default="")
# A project's mirror older than this counts in portal_sync_projects_behind.
PORTAL_METRICS_SYNC_LAG_SECONDS = env.int("PORTAL_METRICS_SYNC_LAG_SECONDS", default=120)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request_id": {"()": "portal.observability.RequestIdFilter"}},
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s]: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain", "filters": ["request_id"]}},
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", default="INFO")},
    "loggers": {
        "keystoneauth": {"level": "WARNING"},
        "openstack": {"level": "WARNING"},
        "stevedore": {"level": "WARNING"},
    },
}

# --- Allocations (Jetstream2's rules; every period configurable) ------------------------
PORTAL_MIN_RUNWAY_HOURS = env.int("PORTAL_MIN_RUNWAY_HOURS", default=24)
PORTAL_GRACE_DAYS = env.int("PORTAL_GRACE_DAYS", default=10)  # disabled -> servers shelved
PORTAL_REMOVAL_DAYS = env.int("PORTAL_REMOVAL_DAYS", default=30)  # disabled -> everything deleted
PORTAL_METER_INTERVAL = env.int("PORTAL_METER_INTERVAL", default=3600)  # seconds between meter runs
PORTAL_KEYSTONE_DOMAIN = env("PORTAL_KEYSTONE_DOMAIN", default="Default")
PORTAL_PROJECT_PREFIX = env("PORTAL_PROJECT_PREFIX", default="alloc")
PORTAL_MEMBER_ROLE = env("PORTAL_MEMBER_ROLE", default="member")
CELERY_BEAT_SCHEDULE["meter-allocations"] = {
    "task": "allocations.tasks.meter_allocations", "schedule": float(PORTAL_METER_INTERVAL)}
CELERY_BEAT_SCHEDULE["enforce-allocations"] = {
    "task": "allocations.tasks.enforce_allocations", "schedule": float(PORTAL_METER_INTERVAL)}

# --- Instances and volumes (instances/) --------------------------------------------------
PORTAL_SYNC_INTERVAL = env.float("PORTAL_SYNC_INTERVAL", default=10.0)  # seconds between mirror syncs
PORTAL_SYNC_FULL_INTERVAL = env.int("PORTAL_SYNC_FULL_INTERVAL", default=300)  # full pass catches deletions
PORTAL_SYNC_CLOCK_SKEW = env.int("PORTAL_SYNC_CLOCK_SKEW", default=5)
PORTAL_SYNC_SOON_SECONDS = env.int("PORTAL_SYNC_SOON_SECONDS", default=2)  # pages in flux sync this often
PORTAL_LAUNCH_MAX_COUNT = env.int("PORTAL_LAUNCH_MAX_COUNT", default=10)
PORTAL_LAUNCH_DEADLINE = env.int("PORTAL_LAUNCH_DEADLINE", default=600)  # seconds a server may stay in BUILD

PORTAL_LAUNCH_STALE_SECONDS = env.int("PORTAL_LAUNCH_STALE_SECONDS", default=120)  # then a launch is re-enqueued
PORTAL_ACTION_DEADLINE = env.int("PORTAL_ACTION_DEADLINE", default=300)
PORTAL_INSTANCE_PAGE_SIZE = env.int("PORTAL_INSTANCE_PAGE_SIZE", default=50)  # rows per page of the instance list
CELERY_BEAT_SCHEDULE["regions-refresh"] = {"task": "allocations.tasks.refresh_regions", "schedule": 600.0}
CELERY_BEAT_SCHEDULE["instances-sync"] = {"task": "instances.tasks.sync_all_projects",
                                          "schedule": PORTAL_SYNC_INTERVAL}
CELERY_BEAT_SCHEDULE["instances-resume-stale-launches"] = {"task": "instances.tasks.resume_stale_launches",
                                                           "schedule": 60.0}

# --- Slurm clusters (clusters/) ----------------------------------------------------------
# The address a cluster's head node calls back (its resume/suspend programs and reports).
PORTAL_PUBLIC_URL = env("PORTAL_PUBLIC_URL", default="http://127.0.0.1:8000")
# slurm.conf ResumeTimeout / SuspendTimeout: a worker boots and installs slurmd + Apptainer first.
PORTAL_CLUSTER_RESUME_TIMEOUT = env.int("PORTAL_CLUSTER_RESUME_TIMEOUT", default=1800)
PORTAL_CLUSTER_SUSPEND_TIMEOUT = env.int("PORTAL_CLUSTER_SUSPEND_TIMEOUT", default=30)
CELERY_BEAT_SCHEDULE["clusters-resume-stale-operations"] = {"task": "clusters.tasks.resume_stale_operations",
                                                            "schedule": 60.0}

# --- Classes (classes/): seats shelved after a class's last day, deleted later ---------------------
CELERY_BEAT_SCHEDULE["classes-end"] = {"task": "classes.tasks.end_classes", "schedule": 3600.0}
# --- Heat stacks (stacks/): stacks made with the CLI or Horizon reach the mirror; stalled operations resume
CELERY_BEAT_SCHEDULE["stacks-sync"] = {"task": "stacks.tasks.sync_all_stacks", "schedule": PORTAL_SYNC_INTERVAL * 3}
CELERY_BEAT_SCHEDULE["classes-schedule"] = {"task": "classes.tasks.run_schedules", "schedule": 300.0}
