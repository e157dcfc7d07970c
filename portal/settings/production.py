"""Production settings: everything secret or host-specific must come from the environment."""
import base64

from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured

from .base import *  # noqa: F401,F403
from .base import env

DEBUG = False
SECRET_KEY = env("DJANGO_SECRET_KEY")
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS")


def _encryption_keys() -> list[str]:
    """PORTAL_ENCRYPTION_KEYS; the portal refuses to start without real Fernet keys."""
    make_one = 'python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"'
    keys = [key.strip() for key in env.list("PORTAL_ENCRYPTION_KEYS", default=[]) if key.strip()]
    if not keys:
        raise ImproperlyConfigured(
            "Set PORTAL_ENCRYPTION_KEYS: the Fernet keys that encrypt the Keystone passwords the portal keeps "
            f"(comma-separated; the first encrypts, all decrypt). Make a key with: {make_one}")
    for key in keys:
        try:
            Fernet(key)
        except ValueError:  # the message never shows the value: it is a secret, or a typo of one
            raise ImproperlyConfigured(
                f"PORTAL_ENCRYPTION_KEYS holds a value that is not a Fernet key. Make one with: {make_one}") from None
        if base64.urlsafe_b64decode(key).startswith(b"portal-development-key"):
            raise ImproperlyConfigured(
                f"PORTAL_ENCRYPTION_KEYS holds the public development key. Make a key with: {make_one}")
    return keys


PORTAL_ENCRYPTION_KEYS = _encryption_keys()

SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=True)
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^metrics$"]
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
SECURE_HSTS_SECONDS = env.int("DJANGO_SECURE_HSTS_SECONDS", default=31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = env.bool("DJANGO_SECURE_HSTS_PRELOAD", default=True)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
ACCOUNT_DEFAULT_HTTP_PROTOCOL = "https"

STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
EMAIL_BACKEND = env("EMAIL_BACKEND", default="django.core.mail.backends.smtp.EmailBackend")
