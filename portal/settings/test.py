"""Settings for the test suite: the same real services, faster password hashing."""
from .base import *  # noqa: F401,F403
from .base import env

DEBUG = False
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# The fixed development key, whatever the environment says, so tests never touch a real key.
PORTAL_ENCRYPTION_KEYS = ["cG9ydGFsLWRldmVsb3BtZW50LWtleS1uby1zZWNyZXQ="]
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
# Tests use their own Redis database so a run never sees the dev server's queues.
REDIS_URL = env("TEST_REDIS_URL", default="redis://127.0.0.1:6379/15")
CACHE_URL = env("TEST_CACHE_URL", default="redis://127.0.0.1:6379/12")
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": CACHE_URL,
        "KEY_PREFIX": "portal-test",
    }
}
CELERY_BROKER_URL = REDIS_URL
CELERY_RESULT_BACKEND = REDIS_URL
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
STATIC_ROOT = None
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = True
# Concurrent test runs on one machine (e.g. two checkouts) each need their own database.
DATABASES["default"]["TEST"] = {"NAME": env("PORTAL_TEST_DB", default="test_portal")}  # noqa: F405
