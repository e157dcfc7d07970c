"""How far the portal believes what a single sign-on provider says about a person's email.

Each provider app carries a `trust_email` flag in its settings dict (the configured OpenID
Connect provider takes it from `OIDC_TRUST_EMAIL`; it is off unless set). Off: every email
from that provider is stored unverified, so the person confirms it by mail like a local
signup, and an SSO login never lands in, or connects to, an existing local account by
email. On: an email counts as verified only when the provider says `email_verified: true`,
and only such an email may sign in to the existing account that has it.

Without this, an account at any provider that lets people type their own email (and many
do) could take over the portal account, and the allocations and cloud projects behind it,
of whoever owns that address here.
"""
from __future__ import annotations

from allauth.socialaccount.adapter import DefaultSocialAccountAdapter

TRUST_EMAIL = "trust_email"


def provider_trusts_email(provider) -> bool:
    """True only when the provider's app settings say `trust_email` is exactly true."""
    app = getattr(provider, "app", None)
    return app is not None and (app.settings or {}).get(TRUST_EMAIL) is True


def claim_says_verified(value) -> bool:
    """An `email_verified` claim is JSON true, or "true" as some providers send it.

    allauth keeps the raw claim and tests it for truth, so a provider sending the string
    "false" would otherwise count as verified.
    """
    return value is True or (isinstance(value, str) and value.strip().lower() == "true")


class SocialAccountAdapter(DefaultSocialAccountAdapter):
    def populate_user(self, request, sociallogin, data):
        # Runs once per login, after the provider has read the addresses and before allauth
        # looks for an existing account, so every later step (email authentication, the
        # EmailAddress rows saved at signup, the serialized pending signup) sees only this.
        user = super().populate_user(request, sociallogin, data)
        trusted = provider_trusts_email(sociallogin.provider)
        for address in sociallogin.email_addresses:
            address.verified = trusted and claim_says_verified(address.verified)
        return user

    def is_email_verified(self, provider, email) -> bool:
        # allauth's `verified_email` provider setting would mark addresses verified whatever
        # the provider said; here only a trusted provider's own claim counts.
        return False

    def can_authenticate_by_email(self, login, email: str) -> bool:
        if not provider_trusts_email(login.provider):
            return False
        verified = any(
            address.verified is True and address.email.lower() == email.lower()
            for address in login.email_addresses
        )
        return verified and super().can_authenticate_by_email(login, email)
