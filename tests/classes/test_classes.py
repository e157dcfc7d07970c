"""Classes (issue 11) on the unit fake cloud: a roster is all good or nothing is made, errors name
their lines; every seat launches through the instances' launch path as the class's owner with its
own student's user data (validated by Debian's cloud-init); a failed seat launches again alone."""
from __future__ import annotations

import datetime
import shutil
import subprocess

import pytest
import yaml
from django.core.exceptions import ValidationError

from classes import rendering, services
from classes.models import ClassTemplate, Course, Seat, SeatState
from instances.models import LaunchRequest
from portal import crypto

pytestmark = pytest.mark.django_db
DAY = datetime.date(2026, 12, 1)


def roster(n: int, bad: dict[int, str] | None = None) -> str:
    """A CSV roster with a header and n students; `bad`: line number -> that line instead."""
    lines = ["email,name"] + [f"student{i:02d}@uni.example,Student {i}" for i in range(1, n + 1)]
    for number, text in (bad or {}).items():
        lines[number - 1] = text
    return "\n".join(lines) + "\n"


def make_class(allocation, user, *, template="Ubuntu 24.04 + JupyterLab", students=3, **kw) -> Course:
    return services.course_create(user=user, allocation=allocation, template=ClassTemplate.objects.get(name=template),
                                  name=kw.pop("name", "bio101"), title="Biology 101", starts_on=DAY,
                                  ends_on=DAY + datetime.timedelta(days=90), roster=roster(students), **kw)


def test_a_roster_with_bad_lines_names_them_and_makes_nothing(allocation, user):
    text = roster(30, bad={7: "not-an-address,Someone", 19: "student03@uni.example,Twice"})
    with pytest.raises(ValidationError) as refused:
        services.course_create(user=user, allocation=allocation, template=ClassTemplate.objects.first(),
                               name="bio101", title="", starts_on=DAY, ends_on=DAY, roster=text)
    assert refused.value.messages == ["Line 7: “not-an-address” is not an email address.",
                                      "Line 19: student03@uni.example is already on the roster."]
    assert not Course.objects.exists() and not Seat.objects.exists()
    good, errors = services.roster_parse(text)
    assert len(good) == 28 and len(errors) == 2


def test_seats_get_unique_linux_names_and_a_password_kept_encrypted(allocation, user):
    course = services.course_create(
        user=user, allocation=allocation, template=ClassTemplate.objects.first(), name="cs1", title="", starts_on=DAY,
        ends_on=DAY, roster="Ada.Lovelace+cs@x.example\nada.lovelace@y.example,Ada L\n7of9@z.example\n")
    seats = list(course.seats.order_by("line"))
    assert [s.username for s in seats] == ["adalovelace", "adalovelace2", "u7of9"]
    assert seats[1].name == "Ada L" and seats[0].email == "ada.lovelace+cs@x.example"
    assert len(crypto.decrypt(seats[0].encrypted_password)) >= 12 and "@" not in seats[0].encrypted_password


def test_launch_all_makes_one_launch_per_seat_as_the_owner_with_that_students_user_data(cloud, allocation, user):
    course = make_class(allocation, user, students=3)
    launched = services.course_launch(user=user, course=course)
    assert len(launched) == 3
    launches = {launch.name: launch for launch in LaunchRequest.objects.all()}
    assert sorted(launches) == ["bio101-student01", "bio101-student02", "bio101-student03"]
    for seat in course.seats.all():
        launch = launches[seat.server_name]
        assert launch.requested_by == user and launch.flavor_name == "m3.small" and launch.count == 1
        assert launch.assign_floating_ip  # students reach their seat from outside
        data = yaml.safe_load(launch.user_data)
        account = data["users"][1]
        assert account["name"] == seat.username and account["passwd"].startswith("$6$")
        assert crypto.decrypt(seat.encrypted_password) not in launch.user_data  # only its hash
        assert f"User={seat.username}" in data["write_files"][0]["content"]  # the boot script, filled in
        assert seat.state == SeatState.LAUNCHING and seat.launch_id == launch.pk
    course.refresh_from_db()
    assert course.state == "running"
    # a second "launch all" launches nothing more
    assert services.course_launch(user=user, course=course) == []


def test_a_failed_seat_launches_again_alone(cloud, allocation, user):
    course = make_class(allocation, user, students=2)
    services.course_launch(user=user, course=course)
    first, second = course.seats.order_by("username")
    LaunchRequest.objects.filter(pk=first.launch_id).update(state="failed", error="No valid host was found.")
    LaunchRequest.objects.filter(pk=second.launch_id).update(state="succeeded", server_ids=["srv-2"])
    assert services.seats_follow(course=course) == 2
    first.refresh_from_db(), second.refresh_from_db()
    assert (first.state, first.error) == (SeatState.FAILED, "No valid host was found.")
    assert (second.state, second.server_id) == (SeatState.READY, "srv-2")
    # the finished launches no longer hold the students' password hashes
    assert not LaunchRequest.objects.filter(pk__in=[first.launch_id, second.launch_id]).exclude(user_data="")
    services.course_launch(user=user, course=course)
    assert "passwd" in LaunchRequest.objects.filter(name=first.server_name).latest("created_at").user_data
    assert LaunchRequest.objects.filter(name=first.server_name).count() == 2
    assert LaunchRequest.objects.filter(name=second.server_name).count() == 1


def test_a_template_whose_flavor_the_allocation_lacks_says_so(cloud, allocation, user):
    course = make_class(allocation, user, students=1)
    ClassTemplate.objects.filter(pk=course.template_id).update(flavor_name="m9.huge")
    course.refresh_from_db()
    with pytest.raises(services.ClassCannotLaunch, match="m9.huge is not available"):
        services.course_launch(user=user, course=course)
    assert not LaunchRequest.objects.exists()


@pytest.mark.parametrize("name", ["Ubuntu 24.04", "Ubuntu 24.04 + JupyterLab", "R + RStudio Server"])
def test_each_ready_templates_seat_user_data_passes_cloud_init_schema(name, allocation, user, tmp_path):
    assert shutil.which("cloud-init"), "run scripts/ensure-slurm.sh (make test does): Debian's cloud-init"
    course = make_class(allocation, user, template=name, students=1)
    seat = course.seats.get()
    text = rendering.seat_user_data(course, seat, ssh_keys=["ssh-ed25519 AAAAC3Nza student@laptop"],
                                    password="s3cret-pass")
    path = tmp_path / "seat.yaml"
    path.write_text(text)
    done = subprocess.run(["cloud-init", "schema", "--config-file", str(path)], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "{{" not in text and "{%" not in text  # every placeholder filled


# --- pages ------------------------------------------------------------------------------------

def test_the_educator_makes_a_class_from_a_pasted_roster_and_bad_lines_keep_what_was_typed(
        user_client, allocation, user, cloud):
    from django.urls import reverse

    template = ClassTemplate.objects.get(name="Ubuntu 24.04")
    form = {"project": allocation.pk, "template": str(template.pk), "name": "chem2", "title": "Chemistry 2",
            "starts_on": "2026-12-01", "ends_on": "2026-12-20",
            "roster": "email,name\na@uni.example,A\nnope\nb@uni.example,B\n"}
    page = user_client.post(f"{reverse('classes:create')}?project={allocation.pk}", form).content.decode()
    assert "Line 3: “nope” is not an email address." in page and "b@uni.example,B" in page  # nothing lost
    assert not Course.objects.exists()
    form["roster"] = "email,name\na@uni.example,A\nb@uni.example,B\n"
    response = user_client.post(f"{reverse('classes:create')}?project={allocation.pk}", form, follow=True)
    page = response.content.decode()
    course = Course.objects.get(name="chem2")
    assert response.redirect_chain[-1][0] == reverse("classes:detail", args=[course.pk])
    assert "0/2 ready" in page and "Launch 2 seats" in page and 'data-testid="cost"' in page
    # the cost preview: 2 seats x m3.small's rate x the hours to the end of the last day
    assert "up to" in page and "SU/hour a seat" in page
    user_client.post(reverse("classes:launch", args=[course.pk]))
    page = user_client.get(reverse("classes:detail", args=[course.pk])).content.decode()
    assert page.count('data-testid="seat-row"') == 2 and "Launching" in page and 'hx-trigger="every 3s"' in page


def test_a_student_sees_only_their_own_seat_with_its_ssh_command(client, allocation, user, cloud):
    from allauth.account.models import EmailAddress
    from django.urls import reverse

    from instances.models import Instance
    from tests.factories import UserFactory

    course = make_class(allocation, user, students=2)
    services.course_launch(user=user, course=course)
    mine, theirs = course.seats.order_by("username")
    for seat, ip in ((mine, "10.0.0.31"), (theirs, "10.0.0.32")):
        LaunchRequest.objects.filter(pk=seat.launch_id).update(state="succeeded", server_ids=[f"srv-{seat.pk}"])
        Instance.objects.create(allocation=allocation, project_id=allocation.openstack_project_id,
                                server_id=f"srv-{seat.pk}", name=seat.server_name, status="ACTIVE",
                                addresses=[{"addr": ip, "kind": "fixed"}])
    student = UserFactory(email=mine.email)
    EmailAddress.objects.update_or_create(user=student, email=mine.email, defaults={"verified": True})
    client.force_login(student)
    page = client.get(reverse("classes:list")).content.decode()
    assert f"ssh {mine.username}@10.0.0.31" in page
    assert crypto.decrypt(mine.encrypted_password) in page  # their own password, to sign in with
    assert crypto.decrypt(theirs.encrypted_password) not in page
    assert theirs.email not in page and "10.0.0.32" not in page and theirs.username not in page
    # the class's page and its launch are the instructors' alone
    assert client.get(reverse("classes:detail", args=[course.pk])).status_code == 404
    assert client.post(reverse("classes:launch", args=[course.pk])).status_code == 404


# --- the end of a class -----------------------------------------------------------------------

def _ready_seats(course, allocation, status="ACTIVE"):
    from instances.models import Instance

    for seat in course.seats.all():
        LaunchRequest.objects.filter(pk=seat.launch_id).update(state="succeeded", server_ids=[f"srv-{seat.pk}"])
        Instance.objects.create(allocation=allocation, project_id=allocation.openstack_project_id,
                                server_id=f"srv-{seat.pk}", name=seat.server_name, status=status)


def test_after_the_last_day_seats_are_shelved_and_deleted_fourteen_days_later(cloud, allocation, user):
    from instances.models import CloudAction, Instance

    course = make_class(allocation, user, students=2)  # last day: DAY + 90
    services.course_launch(user=user, course=course)
    _ready_seats(course, allocation)
    last = course.ends_on
    # on the last day nothing happens
    assert services.courses_end(today=last) == {"shelve": 0, "delete": 0}
    # the day after, every seat is shelved as the class's owner, and the class has ended
    assert services.courses_end(today=last + datetime.timedelta(days=1)) == {"shelve": 2, "delete": 0}
    shelves = CloudAction.objects.filter(action="shelve")
    assert shelves.count() == 2 and {a.requested_by for a in shelves} == {user}
    course.refresh_from_db()
    assert course.state == "ended"
    # a run while the shelves are still running asks for nothing twice
    assert services.courses_end(today=last + datetime.timedelta(days=2)) == {"shelve": 0, "delete": 0}
    CloudAction.objects.filter(action="shelve").update(state="succeeded")
    Instance.objects.filter(server_id__startswith="srv-").update(status="SHELVED_OFFLOADED")
    assert services.courses_end(today=last + datetime.timedelta(days=14)) == {"shelve": 0, "delete": 0}
    # 14 days after the last day has passed, the seats are deleted; once gone, so is the class
    assert services.courses_end(today=last + datetime.timedelta(days=15)) == {"shelve": 0, "delete": 2}
    assert CloudAction.objects.filter(action="delete", requested_by=user).count() == 2
    Instance.objects.filter(server_id__startswith="srv-").update(deleted_at=datetime.datetime.now(datetime.UTC))
    services.courses_end(today=last + datetime.timedelta(days=16))
    course.refresh_from_db()
    assert course.state == "deleted" and set(course.seats.values_list("state", flat=True)) == {"removed"}


def test_a_class_not_launched_is_left_alone_at_its_end(cloud, allocation, user):
    course = make_class(allocation, user, students=1)
    assert services.courses_end(today=course.ends_on + datetime.timedelta(days=30)) == {"shelve": 0, "delete": 0}
    course.refresh_from_db()
    assert course.state == "draft"
