"""The meter over a frozen clock, with the cloud faked at our gateway (portal.cloud.usage): the
listing (server_usage_list) and Nova's action log (server_action_list). The mirror's record of
states (ServerStateChange) is real rows."""
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from allocations import metering
from allocations.models import LedgerEntry, MeterCursor, ServerStateChange
from portal.cloud.usage import ServerAction, ServerUsage

pytestmark = pytest.mark.django_db
T0 = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)
FLAVORS = {"m3.quad": 4, "g3.large": 16, "m3.small": 2, "r3.large": 64}


def minutes(n: float) -> datetime:
    return T0 + timedelta(minutes=n)


@pytest.fixture
def clock(time_machine):
    """The wall clock frozen at T0; `clock(t)` moves it (the meter is called with the same `now`)."""
    time_machine.move_to(T0, tick=False)
    return lambda when: time_machine.move_to(when, tick=False)


@pytest.fixture
def cloud(monkeypatch, clock, actions):
    """The project's servers as the gateway would report them; tests change `servers` in place.
    `updated` is Nova's updated_at, which every state change moves (by default: when made). Nova's
    action log is `actions`, empty unless a test adds to it."""
    servers = {}
    monkeypatch.setattr("portal.cloud.usage.server_usage_list", lambda **kw: list(servers.values()))

    def put(server_id, flavor, status, created=T0, user_id="", updated=None):
        servers[server_id] = ServerUsage(id=server_id, name=f"vm-{server_id}", status=status, flavor_name=flavor,
                                         vcpus=FLAVORS[flavor], created_at=created, user_id=user_id,
                                         updated_at=updated or created)
    put.servers = servers
    return put


@pytest.fixture
def actions(monkeypatch):
    """Nova's action log per server; `actions(server, "stop", at)` adds one that finished at `at`.
    Records the calls, filtered by changes-since as Nova does."""
    log, calls = {}, []

    def server_action_list(*, scope, server_id, changes_since=None):
        calls.append(server_id)
        return [a for a in log.get(server_id, []) if changes_since is None or
                (a.finish_time or a.start_time) >= changes_since]
    monkeypatch.setattr("portal.cloud.usage.server_action_list", server_action_list)

    def add(server_id, action, at, failed=False, events=1):
        log.setdefault(server_id, []).append(ServerAction(
            action=action, request_id=f"req-{len(calls)}-{action}", failed=failed,
            start_time=at - timedelta(seconds=2), finish_time=at if events else None, events=events))
    add.calls = calls
    return add


def mirror_saw(server_id, status, since, flavor="m3.quad", project_id="proj-1", user_id=""):
    ServerStateChange.objects.create(project_id=project_id, server_id=server_id, status=status, since=since,
                                     flavor_name=flavor, vcpus=FLAVORS[flavor], name=f"vm-{server_id}",
                                     cloud_user_id=user_id, seen_at=since + timedelta(seconds=5))


def meter(allocation, clock, when):
    clock(when)
    return metering.allocation_meter(allocation=allocation, now=when)


def charged(allocation, server_id=None) -> Decimal:
    rows = LedgerEntry.objects.filter(allocation=allocation, kind="usage")
    if server_id:
        rows = rows.filter(resource_id=server_id)
    return -sum((e.sus for e in rows), Decimal(0))


def usage_rows(allocation):
    return [(e.state, e.period_start, e.period_end, -e.sus) for e in
            LedgerEntry.objects.filter(allocation=allocation, kind="usage").order_by("resource_id", "period_start")]


# --- Rates --------------------------------------------------------------------------------------

def test_m3_quad_active_for_ten_hours_charges_40_su(allocation, cloud, clock):
    cloud("a", "m3.quad", "ACTIVE")
    meter(allocation, clock, T0 + timedelta(hours=10))
    assert charged(allocation) == Decimal(40)
    assert allocation.balance() == Decimal(10000 - 40)


def test_g3_large_for_one_hour_charges_32_su_with_the_gpu_multiplier(allocation, cloud, clock):
    cloud("g", "g3.large", "ACTIVE")
    meter(allocation, clock, T0 + timedelta(hours=1))
    entry = LedgerEntry.objects.get(allocation=allocation, kind="usage")
    assert charged(allocation) == Decimal(32) and entry.su_rate == Decimal(32) and entry.flavor == "g3.large"


def test_suspended_for_four_hours_charges_three_quarters_of_the_rate(allocation, cloud, clock):
    cloud("s", "m3.quad", "SUSPENDED")
    meter(allocation, clock, T0 + timedelta(hours=4))
    assert charged(allocation) == Decimal("0.75") * 4 * 4


def test_shelved_and_shutoff_charge_by_their_state(allocation, cloud, clock):
    cloud("shelved", "m3.quad", "SHELVED_OFFLOADED")
    cloud("off", "m3.small", "SHUTOFF")
    meter(allocation, clock, T0 + timedelta(hours=10))
    assert charged(allocation) == Decimal("0.5") * 2 * 10
    assert not LedgerEntry.objects.filter(resource_id="shelved").exists()


def test_flavor_family_multiplier_is_configurable(allocation, cloud, clock):
    from allocations.models import FlavorFamilyRate

    FlavorFamilyRate.objects.filter(family="r3").update(multiplier=Decimal("1.5"))
    cloud("big", "r3.large", "ACTIVE")
    meter(allocation, clock, T0 + timedelta(hours=1))
    assert charged(allocation) == Decimal(96)


# --- State intervals ---------------------------------------------------------------------------

def test_thirty_minutes_active_then_thirty_shutoff_of_an_m3_quad_is_3_su(allocation, cloud, actions, clock):
    # Given an m3.quad that booted at T0 and was stopped 30 minutes later
    actions("a", "create", T0)
    actions("a", "stop", minutes(30))
    cloud("a", "m3.quad", "SHUTOFF", updated=minutes(30))
    # When the meter runs an hour after the boot
    meter(allocation, clock, minutes(60))
    # Then each half is charged at its own state's rate, one row each
    assert charged(allocation) == Decimal("3.0")
    assert usage_rows(allocation) == [("ACTIVE", T0, minutes(30), Decimal(2)),
                                      ("SHUTOFF", minutes(30), minutes(60), Decimal(1))]


def test_a_shelve_after_59_minutes_is_charged_the_59_minutes(allocation, cloud, actions, clock):
    # Before: the whole hour was charged at the state seen at its end (SHELVED_OFFLOADED), so 0.
    actions("a", "create", T0)
    actions("a", "shelve", minutes(59))
    cloud("a", "m3.quad", "SHELVED_OFFLOADED", updated=minutes(59.2))  # offloaded a moment later
    meter(allocation, clock, minutes(60))
    assert charged(allocation) == (Decimal(4) * 59 / 60).quantize(Decimal("0.0001"))
    assert usage_rows(allocation) == [("ACTIVE", T0, minutes(59), Decimal("3.9333"))]


def test_the_listings_updated_at_places_a_change_no_other_source_saw(allocation, cloud, clock):
    # Before: charged [2h, 4h) entirely at the state seen at 4 h (SHUTOFF): 4 SU. Nova's updated_at
    # says the server has been SHUTOFF only since 3 h, so the hour before is charged as ACTIVE.
    cloud("a", "m3.quad", "ACTIVE")
    meter(allocation, clock, T0 + timedelta(hours=2))
    cloud("a", "m3.quad", "SHUTOFF", updated=T0 + timedelta(hours=3))
    meter(allocation, clock, T0 + timedelta(hours=4))
    assert charged(allocation) == Decimal(4 * 2) + Decimal(4) + Decimal("0.5") * 4


def test_state_changes_seen_only_by_the_mirror_are_used(allocation, cloud, actions, clock):
    # Given a guest that powered itself off at 10 minutes (no Nova action; the mirror's sync saw it)
    # and was started again with an action at 40 minutes
    cloud("a", "m3.quad", "ACTIVE")
    meter(allocation, clock, T0)
    mirror_saw("a", "SHUTOFF", minutes(10))
    actions("a", "start", minutes(40))
    cloud("a", "m3.quad", "ACTIVE", updated=minutes(40))
    # When the hour is metered
    meter(allocation, clock, minutes(60))
    # Then 10 + 20 minutes are charged as ACTIVE and 30 as SHUTOFF: 2 + 1 SU
    assert usage_rows(allocation) == [("ACTIVE", T0, minutes(10), Decimal("0.6667")),
                                      ("SHUTOFF", minutes(10), minutes(40), Decimal(1)),
                                      ("ACTIVE", minutes(40), minutes(60), Decimal("1.3333"))]


def test_a_mirror_change_before_a_later_updated_at_still_splits_the_interval(allocation, cloud, clock):
    # The guest powered off at 20 minutes; a lock at 50 minutes moved updated_at again.
    cloud("a", "m3.quad", "ACTIVE")
    meter(allocation, clock, T0)
    mirror_saw("a", "SHUTOFF", minutes(20))
    cloud("a", "m3.quad", "SHUTOFF", updated=minutes(50))
    meter(allocation, clock, minutes(60))
    assert usage_rows(allocation) == [("ACTIVE", T0, minutes(20), Decimal("1.3333")),
                                      ("SHUTOFF", minutes(20), minutes(60), Decimal("1.3333"))]


def test_a_failed_or_unfinished_action_changes_nothing(allocation, cloud, actions, clock):
    cloud("a", "m3.quad", "ACTIVE", updated=minutes(45))
    meter(allocation, clock, T0)
    actions("a", "stop", minutes(20), failed=True)
    actions("a", "suspend", minutes(45), events=0)  # asked for, not carried out yet
    meter(allocation, clock, minutes(60))
    assert usage_rows(allocation) == [("ACTIVE", T0, minutes(60), Decimal(4))]


def test_a_new_server_is_charged_from_when_it_became_active_not_while_it_built(allocation, cloud, actions, clock):
    actions("a", "create", minutes(2))
    cloud("a", "m3.quad", "ACTIVE", updated=minutes(2))
    meter(allocation, clock, minutes(62))
    assert usage_rows(allocation) == [("ACTIVE", minutes(2), minutes(62), Decimal(4))]


def test_transitional_states_at_the_same_rate_make_one_row(allocation, cloud, actions, clock):
    # A reboot (REBOOT is charged as running) does not split the row.
    cloud("a", "m3.quad", "ACTIVE", updated=minutes(31))
    meter(allocation, clock, T0)
    mirror_saw("a", "REBOOT", minutes(30))
    actions("a", "reboot", minutes(31))
    meter(allocation, clock, minutes(60))
    assert usage_rows(allocation) == [("ACTIVE", T0, minutes(60), Decimal(4))]


# --- Idempotency and cost ----------------------------------------------------------------------

def test_running_the_meter_twice_for_one_interval_charges_once(allocation, cloud, actions, clock):
    actions("a", "create", T0)
    actions("a", "stop", minutes(30))
    cloud("a", "m3.quad", "SHUTOFF", updated=minutes(30))
    meter(allocation, clock, minutes(60))
    meter(allocation, clock, minutes(60))
    assert charged(allocation) == Decimal(3)
    assert LedgerEntry.objects.filter(kind="usage").count() == 2


def test_a_second_run_charges_only_what_came_after_the_first(allocation, cloud, actions, clock):
    actions("a", "create", T0)
    actions("a", "stop", minutes(30))
    cloud("a", "m3.quad", "SHUTOFF", updated=minutes(30))
    meter(allocation, clock, minutes(45))
    meter(allocation, clock, minutes(60))
    assert usage_rows(allocation) == [("ACTIVE", T0, minutes(30), Decimal(2)),
                                      ("SHUTOFF", minutes(30), minutes(45), Decimal("0.5")),
                                      ("SHUTOFF", minutes(45), minutes(60), Decimal("0.5"))]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("first_now", [60, 90])
def test_two_runs_at_once_charge_each_interval_once(allocation, cloud, actions, clock, first_now):
    # Two runs (a retried task and the beat, say) up to different times: whichever locks the
    # project's cursors first charges up to its `now`, the other only what comes after.
    import threading

    from django.db import connection

    for i in range(20):
        cloud(f"s{i}", "m3.quad", "ACTIVE")
    meter(allocation, clock, T0)
    for i in range(20):
        cloud(f"s{i}", "m3.quad", "SHUTOFF", updated=minutes(30))
        actions(f"s{i}", "stop", minutes(30))
    clock(minutes(90))
    start, errors = threading.Barrier(2), []

    def run(now):
        try:
            start.wait()
            metering.allocation_meter(allocation=allocation, now=now)
        except Exception as exc:  # noqa: BLE001 -- reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(minutes(m),)) for m in (first_now, 150 - first_now)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert charged(allocation) == 20 * (Decimal(2) + Decimal(2))  # 30 min ACTIVE, 60 min SHUTOFF each
    assert set(MeterCursor.objects.values_list("metered_until", flat=True)) == {minutes(90)}


def test_a_server_that_did_not_change_costs_no_history_call(allocation, cloud, actions, clock):
    for i in range(5):
        cloud(f"s{i}", "m3.quad", "ACTIVE")
    meter(allocation, clock, minutes(60))
    cloud("s0", "m3.quad", "SHUTOFF", updated=minutes(90))
    actions.calls.clear()
    meter(allocation, clock, minutes(120))
    assert actions.calls == ["s0"]


def test_one_run_makes_as_many_queries_for_50_servers_as_for_5(allocation, cloud, actions, clock,
                                                                django_assert_num_queries):
    def run(n, when):
        for i in range(n):
            cloud(f"s{i}", "m3.quad", "ACTIVE" if i % 2 else "SHUTOFF")
        meter(allocation, clock, when)

    run(5, minutes(60))
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as five:
        run(5, minutes(120))
    cloud.servers.clear()
    MeterCursor.objects.all().delete()
    run(50, minutes(180))
    with CaptureQueriesContext(connection) as fifty:
        run(50, minutes(240))
    assert len(fifty) == len(five)


# --- Deletion ------------------------------------------------------------------------------------

def test_a_deleted_server_with_no_known_deletion_time_is_charged_up_to_the_last_run(allocation, cloud, actions,
                                                                                    clock):
    cloud("a", "m3.quad", "ACTIVE")
    meter(allocation, clock, T0 + timedelta(hours=1))
    del cloud.servers["a"]
    meter(allocation, clock, T0 + timedelta(hours=5))
    assert charged(allocation) == Decimal(4)
    assert MeterCursor.objects.get(resource_id="a").gone


def test_a_deleted_server_stops_being_charged_at_its_deletion_in_novas_log(allocation, cloud, actions, clock):
    cloud("a", "m3.quad", "ACTIVE")
    meter(allocation, clock, T0 + timedelta(hours=1))
    del cloud.servers["a"]
    actions("a", "delete", T0 + timedelta(hours=2))
    meter(allocation, clock, T0 + timedelta(hours=5))
    meter(allocation, clock, T0 + timedelta(hours=6))
    assert charged(allocation) == Decimal(8)
    assert MeterCursor.objects.get(resource_id="a").metered_until == T0 + timedelta(hours=2)


def test_a_deleted_server_stops_being_charged_at_the_deletion_the_mirror_saw(allocation, cloud, actions, clock):
    cloud("a", "m3.quad", "ACTIVE")
    meter(allocation, clock, T0 + timedelta(hours=1))
    del cloud.servers["a"]
    mirror_saw("a", "DELETED", T0 + timedelta(hours=2, minutes=30))
    meter(allocation, clock, T0 + timedelta(hours=5))
    assert charged(allocation) == Decimal(10)


def test_a_server_that_came_and_went_between_two_runs_is_charged_from_what_the_mirror_saw(
        allocation, cloud, actions, clock, user):
    cloud("long", "m3.small", "ACTIVE")
    meter(allocation, clock, T0)
    mirror_saw("brief", "ACTIVE", minutes(10), user_id=f"ks-{user.pk}")
    actions("brief", "delete", minutes(40))
    meter(allocation, clock, minutes(60))
    meter(allocation, clock, minutes(120))
    brief = LedgerEntry.objects.get(resource_id="brief")
    assert (brief.period_start, brief.period_end, -brief.sus, brief.user) == (
        minutes(10), minutes(40), Decimal(2), user)


# --- Who is charged ------------------------------------------------------------------------------

def test_usage_is_attributed_to_the_portal_user_who_launched_it(allocation, cloud, actions, clock, user):
    # Nova's user_id decides, not metadata (which anyone with the CLI can write), for every interval
    cloud("mine", "m3.quad", "SHUTOFF", user_id=f"ks-{user.pk}", updated=minutes(30))
    actions("mine", "create", T0)
    actions("mine", "stop", minutes(30))
    cloud("cli", "m3.quad", "ACTIVE", user_id="someone-outside")
    meter(allocation, clock, minutes(60))
    assert {e.user for e in LedgerEntry.objects.filter(resource_id="mine")} == {user}
    assert LedgerEntry.objects.filter(resource_id="mine").count() == 2
    assert LedgerEntry.objects.get(resource_id="cli").user is None


# --- The mirror's record -------------------------------------------------------------------------

def test_the_mirror_records_a_status_only_when_it_changed(allocation):
    from portal.cloud.compute import Flavor, Server

    def server(status, updated):
        return Server(id="a", name="vm", status=status, task_state="", project_id="proj-1", user_id="ks-1",
                      flavor=Flavor(id="f", name="m3.quad", vcpus=4, ram_mb=1, disk_gb=1), image_id="",
                      addresses=(), metadata={}, key_name="", security_groups=(), volume_ids=(), is_locked=False,
                      fault="", created_at=T0, updated_at=updated)

    metering.server_states_record(project_id="proj-1", servers=[server("ACTIVE", T0)], seen_at=minutes(1))
    metering.server_states_record(project_id="proj-1", servers=[server("ACTIVE", minutes(3))], seen_at=minutes(5))
    metering.server_states_record(project_id="proj-1", servers=[server("SHUTOFF", minutes(7))], seen_at=minutes(9))
    assert list(ServerStateChange.objects.order_by("since").values_list("status", "since")) == [
        ("ACTIVE", T0), ("SHUTOFF", minutes(7))]


def test_a_change_listed_just_after_now_is_charged_from_when_it_happened(allocation, cloud, actions, clock):
    # The run's `now` is taken before Nova is asked: a stop a second later shows in the listing.
    cloud("a", "m3.quad", "ACTIVE")
    meter(allocation, clock, T0)
    actions("a", "stop", minutes(60) + timedelta(seconds=1))
    cloud("a", "m3.quad", "SHUTOFF", updated=minutes(60) + timedelta(seconds=1))
    meter(allocation, clock, minutes(60))
    meter(allocation, clock, minutes(120))
    assert usage_rows(allocation) == [
        ("ACTIVE", T0, minutes(60), Decimal(4)),
        ("ACTIVE", minutes(60), minutes(60) + timedelta(seconds=1), Decimal("0.0011")),
        ("SHUTOFF", minutes(60) + timedelta(seconds=1), minutes(120), Decimal("1.9994"))]
