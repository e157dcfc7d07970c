import os
import subprocess
import sys
from pathlib import Path

from cryptography.fernet import Fernet

ROOT = Path(__file__).resolve().parents[2]
MAKE_A_KEY = 'python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"'


def _manage(*args, **env_overrides) -> subprocess.CompletedProcess:
    env = {
        **{k: v for k, v in os.environ.items() if k != "DJANGO_ALLOW_ASYNC_UNSAFE"},  # set for browser tests
        "DJANGO_SETTINGS_MODULE": "portal.settings.production",
        "DJANGO_SECRET_KEY": "k8Z!r2v#Qp9x@L4m^T7w&N1c*F6b%H3j$D5s(G0y)Ue-Vq_Ra+Sz=Pt",
        "DJANGO_ALLOWED_HOSTS": "portal.example.org",
        "PORTAL_ENCRYPTION_KEYS": f"{Fernet.generate_key().decode()},{Fernet.generate_key().decode()}",
        **env_overrides,
    }
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True)


def test_production_settings_pass_the_deploy_check():
    result = _manage("check", "--deploy", "--fail-level", "WARNING")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_production_refuses_to_start_without_encryption_keys():
    # Set but empty, so a .env file in the checkout cannot fill it in.
    result = _manage("check", PORTAL_ENCRYPTION_KEYS="")
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr and "Set PORTAL_ENCRYPTION_KEYS" in result.stderr
    assert MAKE_A_KEY in result.stderr


def test_production_refuses_a_malformed_key_or_the_development_key():
    malformed = _manage("check", PORTAL_ENCRYPTION_KEYS="hunter2-not-a-key")
    assert malformed.returncode != 0 and "not a Fernet key" in malformed.stderr
    assert "hunter2" not in malformed.stderr

    development = _manage("check", PORTAL_ENCRYPTION_KEYS="cG9ydGFsLWRldmVsb3BtZW50LWtleS1uby1zZWNyZXQ=")
    assert development.returncode != 0 and "public development key" in development.stderr
