import base64
import hashlib

import pytest
from cryptography.fernet import Fernet, InvalidToken
from django.core.exceptions import ImproperlyConfigured
from django.core.management import CommandError, call_command

from allocations.models import KeystoneIdentity
from portal import crypto
from tests.factories import UserFactory

NEW_KEY = Fernet.generate_key().decode()
OLD_KEY = Fernet.generate_key().decode()


def _legacy_token(text: str, secret_key: str) -> str:
    """What the portal stored before PORTAL_ENCRYPTION_KEYS: a key derived from SECRET_KEY."""
    key = base64.urlsafe_b64encode(hashlib.sha256(f"portal-secrets:{secret_key}".encode()).digest())
    return Fernet(key).encrypt(text.encode()).decode()


def _identity(token: str) -> KeystoneIdentity:
    user = UserFactory()
    return KeystoneIdentity.objects.create(user=user, keystone_user_id=f"ks-{user.pk}",
                                           keystone_username=user.username, encrypted_password=token)


def test_encrypts_with_the_first_key_and_decrypts_with_any(settings):
    settings.PORTAL_ENCRYPTION_KEYS = [NEW_KEY, OLD_KEY]

    token = crypto.encrypt("s3cret")

    assert Fernet(NEW_KEY).decrypt(token.encode()) == b"s3cret"
    assert crypto.decrypt(token) == "s3cret"
    assert crypto.decrypt(Fernet(OLD_KEY).encrypt(b"older").decode()) == "older"


def test_secrets_from_before_the_keys_still_decrypt_with_the_legacy_key(settings):
    settings.PORTAL_ENCRYPTION_KEYS = [NEW_KEY]
    assert crypto.decrypt(_legacy_token("from-2024", settings.SECRET_KEY)) == "from-2024"


def test_rotating_secret_key_keeps_legacy_secrets_readable_through_its_fallbacks(settings):
    token = _legacy_token("from-2024", settings.SECRET_KEY)
    settings.SECRET_KEY, settings.SECRET_KEY_FALLBACKS = "a-brand-new-secret-key", [settings.SECRET_KEY]
    assert crypto.decrypt(token) == "from-2024"


def test_rotating_secret_key_does_not_touch_secrets_under_the_encryption_keys(settings):
    settings.PORTAL_ENCRYPTION_KEYS = [NEW_KEY]
    token = crypto.encrypt("s3cret")
    settings.SECRET_KEY = "a-brand-new-secret-key"
    assert crypto.decrypt(token) == "s3cret"


def test_a_token_no_key_opens_is_refused(settings):
    settings.PORTAL_ENCRYPTION_KEYS = [NEW_KEY]
    with pytest.raises(InvalidToken):
        crypto.decrypt(Fernet(Fernet.generate_key()).encrypt(b"x").decode())


def test_missing_or_malformed_keys_say_how_to_make_one_without_echoing_the_value(settings):
    settings.PORTAL_ENCRYPTION_KEYS = []
    with pytest.raises(ImproperlyConfigured, match="Fernet.generate_key"):
        crypto.encrypt("x")

    settings.PORTAL_ENCRYPTION_KEYS = ["not-a-key-but-someones-password"]
    with pytest.raises(ImproperlyConfigured) as error:
        crypto.encrypt("x")
    assert "Fernet.generate_key" in str(error.value) and "someones-password" not in str(error.value)


@pytest.mark.django_db
def test_rotate_command_reencrypts_every_secret_not_under_the_first_key(settings, capsys):
    # given secrets under the legacy key, an old key and the current key
    settings.PORTAL_ENCRYPTION_KEYS = [NEW_KEY, OLD_KEY]
    legacy = _identity(_legacy_token("legacy-pw", settings.SECRET_KEY))
    old = _identity(Fernet(OLD_KEY).encrypt(b"old-pw").decode())
    current = _identity(crypto.encrypt("current-pw"))
    current_token = current.encrypted_password

    # when the command runs
    call_command("rotate_encryption_keys")

    # then it rewrote the two that needed it, under the first key, and said so
    assert "Re-encrypted 2 stored secret(s)" in capsys.readouterr().out
    for row, password in ((legacy, "legacy-pw"), (old, "old-pw")):
        row.refresh_from_db()
        assert Fernet(NEW_KEY).decrypt(row.encrypted_password.encode()).decode() == password
    current.refresh_from_db()
    assert current.encrypted_password == current_token

    # and the old key can now go
    settings.PORTAL_ENCRYPTION_KEYS = [NEW_KEY]
    settings.SECRET_KEY = "a-brand-new-secret-key"
    assert crypto.decrypt(old.encrypted_password) == "old-pw"
    call_command("rotate_encryption_keys")
    assert "Re-encrypted 0 stored secret(s)" in capsys.readouterr().out


@pytest.mark.django_db
def test_rotate_command_reports_secrets_no_key_opens_and_leaves_them(settings, capsys):
    settings.PORTAL_ENCRYPTION_KEYS = [NEW_KEY]
    lost = _identity(Fernet(Fernet.generate_key()).encrypt(b"pw").decode())
    fine = _identity(Fernet(OLD_KEY).encrypt(b"pw").decode())
    settings.PORTAL_ENCRYPTION_KEYS = [NEW_KEY, OLD_KEY]
    lost_token = lost.encrypted_password

    with pytest.raises(CommandError, match=f"1 stored secret.*KeystoneIdentity {lost.pk} encrypted_password"):
        call_command("rotate_encryption_keys")

    assert "Re-encrypted 1 stored secret(s)" in capsys.readouterr().out
    lost.refresh_from_db()
    fine.refresh_from_db()
    assert lost.encrypted_password == lost_token
    assert crypto.decrypt(fine.encrypted_password) == "pw"


@pytest.mark.django_db
def test_rotate_command_works_through_more_rows_than_one_batch(settings):
    settings.PORTAL_ENCRYPTION_KEYS = [NEW_KEY, OLD_KEY]
    for i in range(5):
        _identity(Fernet(OLD_KEY).encrypt(f"pw-{i}".encode()).decode())

    assert crypto.stored_secrets_rotate(batch_size=2) == (5, [])
    assert crypto.stored_secrets_rotate(batch_size=2) == (0, [])


def test_the_rotation_finds_the_keystone_passwords():
    assert (KeystoneIdentity, "encrypted_password") in crypto.encrypted_fields()
