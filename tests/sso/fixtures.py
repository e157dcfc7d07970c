"""A real OpenID Connect provider (tests/sso/provider.js, oidc-provider from npm) for SSO tests.

`make sso-provider` (a prerequisite of `make test`) installs it from package-lock.json.
Import the fixtures into a test module: `from tests.sso.fixtures import oidc_provider, use_sso`.
"""
import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
LOG = HERE.parents[1] / "var" / "log" / "test-sso-provider.log"
READY = re.compile(r"oidc-provider listening on (http://127\.0\.0\.1:\d+)")
PROVIDER_ID = "test-sso"
PROVIDER_NAME = "Test SSO"
CLIENT_ID = "portal"
CLIENT_SECRET = "portal-test-secret"


@dataclass(frozen=True)
class OidcProvider:
    issuer: str

    def socialaccount_providers(self, *, trust_email: bool) -> dict:
        """A SOCIALACCOUNT_PROVIDERS value shaped like portal/settings/base.py's."""
        app = {
            "provider_id": PROVIDER_ID,
            "name": PROVIDER_NAME,
            "client_id": CLIENT_ID,
            "secret": CLIENT_SECRET,
            "settings": {
                "server_url": self.issuer,
                "token_auth_method": "client_secret_basic",
                "scope": ["openid", "email", "profile"],
                "trust_email": trust_email,
            },
        }
        return {"openid_connect": {"OAUTH_PKCE_ENABLED": True, "APPS": [app]}}


def _start(redirect_uri: str) -> tuple[subprocess.Popen, str]:
    node = shutil.which("node")
    if not node or not (HERE / "node_modules" / "oidc-provider").is_dir():
        pytest.fail("the test OpenID Connect provider is not installed: run `make sso-provider`")
    LOG.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "SSO_PORT": "0", "SSO_REDIRECT_URIS": redirect_uri,
           "SSO_CLIENT_ID": CLIENT_ID, "SSO_CLIENT_SECRET": CLIENT_SECRET}
    with LOG.open("w") as log:
        process = subprocess.Popen([node, "provider.js"], cwd=HERE, env=env, stdout=log,
                                   stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and process.poll() is None:
        if match := READY.search(LOG.read_text()):
            return process, match.group(1)
        time.sleep(0.1)
    _stop(process)
    pytest.fail(f"the test OpenID Connect provider did not start:\n{LOG.read_text()}")


def _stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture(scope="session")
def oidc_provider(live_server):
    """The provider, serving on a free port of 127.0.0.1 for the whole session.

    Its one client is the portal, allowed to return only to the live server's callback.
    """
    callback = f"{live_server.url}/accounts/oidc/{PROVIDER_ID}/login/callback/"
    process, issuer = _start(callback)
    yield OidcProvider(issuer=issuer)
    _stop(process)


@pytest.fixture
def use_sso(settings, oidc_provider):
    """Call `use_sso(trust_email=...)` to offer "Sign in with Test SSO" for this test."""

    def configure(*, trust_email: bool) -> None:
        settings.SOCIALACCOUNT_PROVIDERS = oidc_provider.socialaccount_providers(trust_email=trust_email)

    return configure
