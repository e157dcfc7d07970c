"""Settings for `make run` on a developer's machine."""
from .base import *  # noqa: F401,F403
from .base import env

DEBUG = env.bool("DJANGO_DEBUG", default=True)
# A fixed development key (it decodes to "portal-development-key-no-secret"); production refuses it.
PORTAL_ENCRYPTION_KEYS = env.list("PORTAL_ENCRYPTION_KEYS", default=["cG9ydGFsLWRldmVsb3BtZW50LWtleS1uby1zZWNyZXQ="])

# Served straight from static/ by WhiteNoise; `collectstatic` is for production.
STATIC_ROOT = None
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = True
