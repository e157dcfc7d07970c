"""Members by email: several at once, verified accounts join at once, anyone else is invited and
joins on signing up (or signing in) with the invited address, verified."""
import re
from datetime import timedelta

import pytest
from allauth.account.models import EmailAddress
from django.urls import reverse
from django.utils import timezone

from allocations import invitations
from allocations.models import Invitation, Membership
from tests.factories import PASSWORD, UserFactory

pytestmark = pytest.mark.django_db

LINK = re.compile(r"https?://[^\s]+/invitations/[\w-]+/")


def add(client, allocation, email, role="member"):
    return client.post(reverse("allocations:member_add", args=[allocation.pk]), {"email": email, "role": role})


def link_in(mail) -> str:
    return LINK.search(mail.body).group(0)


def path_in(mail) -> str:
    link = link_in(mail)
    return link[link.index("/invitations/"):]


def sign_up_and_confirm(client, email, mailoutbox, password="a-long-enough-passphrase", next_url=""):
    """Sign up as a visitor would, then open the confirmation mail's link and confirm."""
    before = len(mailoutbox)
    client.post(reverse("account_signup") + (f"?next={next_url}" if next_url else ""),
                {"email": email, "password1": password, "password2": password})
    confirmation = next(m for m in mailoutbox[before:] if "confirm-email" in m.body)
    key_url = re.search(r"https?://[^/\s]+(/accounts/confirm-email/[^\s]+)", confirmation.body).group(1)
    return client.post(key_url, follow=True)


def test_several_addresses_at_once_verified_ones_join_others_are_invited(
        user_client, allocation, mailoutbox, django_capture_on_commit_callbacks):
    colleague = UserFactory(email="colleague@university.example")
    with django_capture_on_commit_callbacks(execute=True):
        response = add(user_client, allocation,
                       "colleague@university.example,  new.student@university.example\nPostdoc <postdoc@lab.example>",
                       role="manager")
    assert response.status_code == 302 and response["Location"].endswith("#members")
    assert allocation.memberships.get(user=colleague).role == "manager"
    invited = {i.email: i for i in Invitation.objects.filter(allocation=allocation)}
    assert set(invited) == {"new.student@university.example", "postdoc@lab.example"}
    assert all(i.role == "manager" and i.is_pending for i in invited.values())

    # one mail per invited address, to that address, with a link whose token is not stored
    assert sorted(m.to[0] for m in mailoutbox) == ["new.student@university.example", "postdoc@lab.example"]
    mail = next(m for m in mailoutbox if m.to == ["postdoc@lab.example"])
    assert "Protein folding" in mail.subject and "invited you to join" in mail.body
    token = link_in(mail).rstrip("/").rsplit("/", 1)[1]
    assert not Invitation.objects.filter(token_hash=token).exists()
    assert invited["postdoc@lab.example"].token_hash == invitations.token_hash(token)


def test_bad_addresses_are_named_at_the_field_and_nothing_is_done(user_client, allocation, mailoutbox):
    response = add(user_client, allocation, "good@university.example, bob@, not an address", role="manager")
    body = response.content.decode()
    assert response.status_code == 200
    error = body[body.index('data-testid="member-email-error"'):].split("</div>", 1)[0]
    for bad in ["“bob@” is not an email address.", "“not” is not an email address.",
                "“an” is not an email address.", "“address” is not an email address."]:
        assert bad.replace("“", "&ldquo;").replace("”", "&rdquo;") in error or bad in error
    # what was typed is still there, role included
    assert ">good@university.example, bob@, not an address</textarea>" in body
    assert '<option value="manager" selected>' in body
    assert not Invitation.objects.exists() and allocation.memberships.count() == 1 and not mailoutbox


def test_an_existing_member_is_named_and_nobody_else_is_added(user_client, allocation, user, mailoutbox):
    colleague = UserFactory(email="colleague@university.example")
    response = add(user_client, allocation, f"{user.email}, colleague@university.example, someone@new.example")
    body = response.content.decode()
    assert f"{user.email} is already a member." in body
    assert f"{user.email}, colleague@university.example, someone@new.example</textarea>" in body
    assert not allocation.memberships.filter(user=colleague).exists()
    assert not Invitation.objects.exists() and not mailoutbox


def test_an_empty_form_asks_for_an_address(user_client, allocation):
    body = add(user_client, allocation, "  , ").content.decode()
    assert "Enter at least one email address." in body


def test_the_invitation_binds_on_sign_up_once_the_address_is_confirmed(
        client, user_client, allocation, mailoutbox, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        add(user_client, allocation, "new.student@university.example")
    path = path_in(mailoutbox[-1])
    user_client.logout()

    # the link shows what it is for and leads to sign-up with the address filled in
    page = client.get(path)
    body = page.content.decode()
    assert page.status_code == 200 and "Join “Protein folding”" in body
    signup = re.search(r'href="(/accounts/signup/\?[^"]+)"', body).group(1).replace("&amp;", "&")
    assert 'value="new.student@university.example"' in client.get(signup).content.decode()

    # signing up is not enough: only the confirmed address binds
    client.post(signup, {"email": "new.student@university.example", "password1": "a-long-enough-passphrase",
                         "password2": "a-long-enough-passphrase"})
    assert not Membership.objects.filter(user__email="new.student@university.example").exists()

    confirmation = next(m for m in mailoutbox if "confirm-email" in m.body)
    key_path = re.search(r"https?://[^/\s]+(/accounts/confirm-email/[^\s]+)", confirmation.body).group(1)
    with django_capture_on_commit_callbacks(execute=False) as queued:
        response = client.post(key_path, follow=True)
    membership = Membership.objects.get(user__email="new.student@university.example")
    assert membership.allocation == allocation and membership.role == "member"
    invitation = Invitation.objects.get()
    assert invitation.accepted_by == membership.user and invitation.accepted_at
    assert "You joined “Protein folding”" in response.content.decode()
    assert queued, "the Keystone grant is enqueued through membership_add"
    # the dashboard now shows the project
    assert "Protein folding" in client.get("/").content.decode()


def test_signing_up_with_another_address_binds_nothing(client, user_client, allocation, mailoutbox,
                                                       django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        add(user_client, allocation, "invited@university.example")
    user_client.logout()
    client.get(path_in(mailoutbox[-1]))
    sign_up_and_confirm(client, "someone.else@university.example", mailoutbox)
    assert not Membership.objects.filter(user__email="someone.else@university.example").exists()
    assert Invitation.objects.get().is_pending


def test_an_unverified_account_with_the_address_joins_only_when_it_confirms(
        client, user_client, allocation, mailoutbox, django_capture_on_commit_callbacks):
    squatter = UserFactory(email="pi-colleague@university.example", verified=False)
    address = EmailAddress.objects.create(user=squatter, email=squatter.email, verified=False, primary=True)
    with django_capture_on_commit_callbacks(execute=True):
        response = add(user_client, allocation, "PI-colleague@university.example")
    assert response.status_code == 302
    assert not allocation.memberships.filter(user=squatter).exists()
    assert Invitation.objects.get().email == "PI-colleague@university.example"

    client.force_login(squatter)  # a sign-in alone, unverified: nothing binds
    assert not allocation.memberships.filter(user=squatter).exists()
    address.verified = True
    address.save()
    client.force_login(squatter)  # signed in again with the address now verified
    assert allocation.memberships.filter(user=squatter).exists()


def test_an_expired_or_withdrawn_invitation_binds_nothing(client, user_client, allocation, mailoutbox,
                                                          django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        add(user_client, allocation, "late@university.example, withdrawn@university.example")
    late = Invitation.objects.get(email="late@university.example")
    Invitation.objects.filter(pk=late.pk).update(expires_at=timezone.now() - timedelta(minutes=1))
    withdrawn = Invitation.objects.get(email="withdrawn@university.example")
    response = user_client.post(reverse("allocations:invitation_revoke", args=[allocation.pk, withdrawn.pk]))
    assert response.status_code == 302
    user_client.logout()

    for invitation, words in [(late, "expired on"), (withdrawn, "was withdrawn")]:
        mail = next(m for m in mailoutbox if m.to == [invitation.email])
        body = client.get(path_in(mail)).content.decode()
        assert words in body and "Sign up with" not in body
        UserFactory(username=invitation.email.split("@")[0], email=invitation.email)
    for email in ["late@university.example", "withdrawn@university.example"]:
        client.force_login(EmailAddress.objects.get(email=email).user)
    assert allocation.memberships.count() == 1


def test_inviting_again_replaces_the_earlier_link(user_client, allocation, mailoutbox, client,
                                                  django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        add(user_client, allocation, "twice@university.example")
        add(user_client, allocation, "twice@university.example")
    first, second = (path_in(m) for m in mailoutbox)
    user_client.logout()
    assert "was withdrawn" in client.get(first).content.decode()
    assert "Sign up with twice@university.example" in client.get(second).content.decode()
    assert Invitation.objects.filter(revoked_at__isnull=True).count() == 1


def test_an_unknown_link_says_so_and_reveals_nothing(client):
    response = client.get(reverse("allocations:invitation_open", args=["not-a-real-token"]))
    assert response.status_code == 404 and "This invitation link is not valid" in response.content.decode()


def test_signed_in_as_someone_else_the_link_explains_and_does_not_bind(client, user_client, allocation, mailoutbox,
                                                                       django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        add(user_client, allocation, "invited@university.example")
    path = path_in(mailoutbox[-1])
    other = UserFactory(email="other@university.example")
    client.force_login(other)
    body = client.get(path).content.decode()
    assert ("This invitation is for invited@university.example, and you are signed in as other@university.example"
            in body)
    response = client.post(path)
    assert "This invitation is for invited@university.example" in response.content.decode()
    assert not allocation.memberships.filter(user=other).exists()


def test_an_existing_account_joins_by_signing_in_from_the_link(client, user_client, allocation, mailoutbox,
                                                               django_capture_on_commit_callbacks):
    # invited under an address the account verifies later (e.g. a second address)
    with django_capture_on_commit_callbacks(execute=True):
        add(user_client, allocation, "work@lab.example")
    person = UserFactory(email="home@mail.example")
    EmailAddress.objects.create(user=person, email="work@lab.example", verified=True)
    path = path_in(mailoutbox[-1])
    user_client.logout()
    login = re.search(r'href="(/accounts/login/\?[^"]+)"', client.get(path).content.decode()).group(1)
    response = client.post(login.replace("&amp;", "&"), {"login": "home@mail.example", "password": PASSWORD},
                           follow=True)
    assert allocation.memberships.filter(user=person).exists()
    assert "You are a member" in response.content.decode()


def test_the_pi_sees_open_invitations_and_can_withdraw_them(user_client, allocation,
                                                            django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        add(user_client, allocation, "pending@university.example")
    body = user_client.get(reverse("allocations:detail", args=[allocation.pk])).content.decode()
    invites = body[body.index('data-testid="invitations"'):]
    assert "pending@university.example" in invites and "waiting; the link works until" in invites
    invitation = Invitation.objects.get()
    response = user_client.post(reverse("allocations:invitation_revoke", args=[allocation.pk, invitation.pk]),
                                follow=True)
    assert "The invitation to pending@university.example was withdrawn" in response.content.decode()
    assert 'data-testid="invitations"' not in response.content.decode()


def test_only_the_pi_and_managers_invite_or_withdraw(client, allocation, mailoutbox,
                                                     django_capture_on_commit_callbacks):
    member, outsider = UserFactory(), UserFactory()
    allocation.memberships.create(user=member, role="member")
    invitation, _ = invitations._invitation_create(allocation=allocation, email="x@university.example",
                                                   role="member", by=allocation.pi)
    client.force_login(member)
    assert add(client, allocation, "y@university.example").status_code == 403
    assert client.post(reverse("allocations:invitation_revoke", args=[allocation.pk, invitation.pk])).status_code == 403
    assert 'data-testid="invitations"' not in client.get(
        reverse("allocations:detail", args=[allocation.pk])).content.decode()
    client.force_login(outsider)
    assert add(client, allocation, "y@university.example").status_code == 404
    assert client.post(reverse("allocations:invitation_revoke", args=[allocation.pk, invitation.pk])).status_code == 404
    invitation.refresh_from_db()
    assert invitation.is_pending and Invitation.objects.count() == 1 and not mailoutbox


def test_a_closed_allocation_takes_no_new_members(user_client, allocation, mailoutbox):
    allocation.status = "closed"
    allocation.save()
    body = add(user_client, allocation, "someone@new.example").content.decode()
    assert "Members cannot be added to a closed or rejected allocation." in body
    assert not Invitation.objects.exists() and not mailoutbox
