"""An educator makes a class from a template and an uploaded roster in Chromium, on the real
devcloud, and launches its seats; a student of the roster signs up from the invitation mail, sees
exactly one machine with its ssh command, and stops it (issue 11)."""
import datetime
import re

import pytest
from django.core import mail

from classes.models import Course
from tests.browser.conftest import SCREENSHOTS, sign_in
from tests.instances.integration_support import devcloud_ready, instances_allocation  # noqa: F401


@pytest.fixture(scope="session")
def devcloud(devcloud_ready):
    return devcloud_ready


@pytest.fixture(autouse=True)
def seeded_templates(transactional_db):
    """A transactional test's flush empties the tables its migrations seeded: seed them again."""
    from classes.seeds import templates_seed

    templates_seed()


pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_an_educator_makes_a_class_from_a_csv_and_a_student_sees_one_machine(
        page, screenshot, instances_allocation, celery_worker_process, tmp_path, chromium_browser, live_server):
    pi = instances_allocation.pi
    sign_in(page, pi)
    page.get_by_role("navigation").get_by_role("link", name="Classes").click()
    page.get_by_role("link", name="New class").click()
    page.get_by_label("Template").select_option(label="Ubuntu 24.04")
    page.get_by_label("Name", exact=True).fill("demo101")
    page.get_by_label("Title").fill("Cloud computing 101")
    today = datetime.date.today()
    page.get_by_label("First day").fill(today.isoformat())
    page.get_by_label("Last day").fill((today + datetime.timedelta(days=6)).isoformat())
    roster = tmp_path / "roster.csv"
    roster.write_text("email,name\nstudent.one@uni.example,Student One\nstudent.two@uni.example,Student Two\n")
    page.get_by_label("…or upload a CSV").set_input_files(str(roster))
    screenshot("new-class")
    page.get_by_role("button", name="Create the class").click()

    page.get_by_test_id("ready-count").filter(has_text="0/2 ready").wait_for()
    page.get_by_test_id("cost").wait_for()  # 2 seats × m3.small until the last day
    page.get_by_role("button", name="Launch 2 seats").click()
    page.get_by_test_id("ready-count").filter(has_text="2/2 ready").wait_for(timeout=240_000)
    screenshot("seats-ready")
    course = Course.objects.get(name="demo101")
    seat = course.seats.get(email="student.one@uni.example")
    assert page.get_by_test_id("seat-row").count() == 2

    # the student follows the invitation mail, signs up with the roster's address, confirms it, and
    # lands on their machines: exactly one, with its ssh command
    invited = [m for m in mail.outbox if m.to == ["student.one@uni.example"]]
    assert len(invited) == 1 and "Cloud computing 101" in invited[0].subject
    signup = re.search(r"https?://\S+/accounts/signup/\?\S+", invited[0].body).group(0)
    context = chromium_browser.new_context(base_url=live_server.url, viewport={"width": 1280, "height": 800})
    other = context.new_page()
    try:
        other.goto(signup)
        assert other.get_by_label("Email").input_value() == "student.one@uni.example"
        other.get_by_label("Password", exact=True).fill("analytical-engine-1843")
        other.get_by_label(re.compile("Password \\(again\\)")).fill("analytical-engine-1843")
        other.get_by_role("button", name=re.compile("sign up", re.I)).click()
        other.get_by_text(re.compile("verify your email", re.I)).first.wait_for()
        confirm = next(m for m in mail.outbox if m.to == ["student.one@uni.example"] and "confirm-email" in m.body)
        other.goto(re.search(r"https?://\S+/accounts/confirm-email/\S+/", confirm.body).group(0))
        other.get_by_role("button", name=re.compile("confirm", re.I)).click()
        other.get_by_role("heading", name="My class machines").wait_for()
        cards = other.get_by_test_id("my-seat")
        cards.first.wait_for()
        assert cards.count() == 1
        other.get_by_test_id("ssh-command").filter(has_text=f"ssh {seat.username}@").wait_for(timeout=60_000)
        assert "student.two@uni.example" not in other.content()
        other.screenshot(path=str(SCREENSHOTS / "test_classes-student-view.png"), full_page=True)
        # they stop their machine themselves, and the card follows it
        other.get_by_role("button", name="Stop").click()
        other.get_by_test_id("seat-status").filter(has_text="shutoff").wait_for(timeout=120_000)
        other.get_by_role("button", name="Start").wait_for()
        other.screenshot(path=str(SCREENSHOTS / "test_classes-student-stopped.png"), full_page=True)
    finally:
        context.close()
    seat.refresh_from_db()
    assert seat.user.email == "student.one@uni.example"
