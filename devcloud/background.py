"""Background servers: make the devcloud a busy cloud. Run by `devcloud/devcloud background N` (and by `up`
when DEVCLOUD_BACKGROUND_SERVERS is set) with the devcloud's venv.

    background.py N    ensure exactly N ACTIVE servers in the project "background" (0 removes them)

They live in a project of their own that no test and no portal allocation uses, made with the admin
connection; m3.tiny on the fake hypervisor, no network ("none"), no volumes. Idempotent: servers in
ERROR are replaced, missing ones are made in parallel batches (Nova's multi-create, one request per
batch), surplus ones deleted. Prints what it did; devcloud/devcloud prints the time and memory.
"""

import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
PROJECT = "background"
FLAVOR = "m3.tiny"
IMAGE = "Featured-Ubuntu24"
BATCH = 25  # servers per multi-create request
PARALLEL = 4  # requests in flight: nova-conductor and nova-scheduler have one worker each
TIMEOUT = 900


def say(msg):
    print(f"background: {msg}", flush=True)


def project_ensure(conn):
    idn = conn.identity
    project = idn.find_project(PROJECT, domain_id="default") or idn.create_project(
        name=PROJECT, domain_id="default", description="devcloud background servers (a busy cloud); no test uses it")
    # The admin works in it through a project-scoped token (multi-create as a member of the project).
    idn.assign_project_role_to_user(project, idn.find_user("admin", domain_id="default"), idn.find_role("member"))
    # Unlimited compute quota: the defaults (100 servers) would stop the background at 100.
    conn.compute.update_quota_set(project.id, instances=-1, cores=-1, ram=-1)
    return project


def servers_of(conn, project_id):
    return list(conn.compute.servers(details=True, all_projects=True, project_id=project_id))


def create_batch(scoped, flavor_id, image_id, prefix, count):
    """One multi-create request for `count` servers, made as admin scoped to the background project."""
    body = {"server": {"name": prefix, "flavorRef": flavor_id, "imageRef": image_id, "networks": "none",
                       "min_count": count, "max_count": count, "metadata": {"devcloud": "background"}}}
    r = scoped.compute.post("/servers", json=body, microversion="2.37")
    if r.status_code >= 400:
        raise RuntimeError(f"multi-create of {count}: {r.status_code} {r.text[:300]}")


def scoped_to(project_id):
    """The admin user with a token scoped to the project (it holds the member role there)."""
    import openstack
    import seed

    return openstack.connection.Connection(
        auth={"auth_url": seed.KEYSTONE, "username": "admin", "password": seed.C.ADMIN_PASSWORD,
              "project_id": project_id, "user_domain_name": "Default"},
        region_name=seed.C.REGION, interface="public", identity_api_version="3")


def wait_settled(conn, project_id, want, started):
    """Until `want` servers are ACTIVE and none is building; the last list."""
    deadline = time.monotonic() + TIMEOUT
    last = -1
    while True:
        servers = servers_of(conn, project_id)
        active = sum(s.status == "ACTIVE" for s in servers)
        building = sum(s.status == "BUILD" for s in servers)
        if active != last:
            say(f"{active}/{want} ACTIVE, {building} building ({time.monotonic() - started:.0f}s)")
            last = active
        if building == 0 and (active >= want or len(servers) >= want):
            return servers
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {active} of {want} servers ACTIVE after {TIMEOUT}s")
        time.sleep(5)  # a list of hundreds of servers costs nova-api seconds of CPU


def wait_gone(conn, project_id, ids):
    deadline = time.monotonic() + TIMEOUT
    while ids:
        ids &= {s.id for s in conn.compute.servers(details=False, all_projects=True, project_id=project_id)}
        if time.monotonic() > deadline:
            raise RuntimeError(f"{len(ids)} background servers not deleted after {TIMEOUT}s")
        time.sleep(3)


def delete(conn, servers):
    with ThreadPoolExecutor(PARALLEL * 2) as pool:
        list(pool.map(lambda s: conn.compute.delete_server(s.id, ignore_missing=True), servers))


def ensure(n):
    started = time.monotonic()
    sys.path.insert(0, HERE)
    import seed  # devcloud/seed.py: the admin connection

    conn = seed.admin()
    project = project_ensure(conn)
    for _ in range(3):  # servers that end in ERROR are replaced in the next round
        if converge(conn, project, n, started):
            say(f"{n} servers ACTIVE in project {PROJECT} ({project.id}) in {time.monotonic() - started:.1f}s")
            return
    raise RuntimeError(f"could not get {n} ACTIVE background servers")


def converge(conn, project, n, started):
    """One round towards n ACTIVE servers; whether they are all there."""
    servers = servers_of(conn, project.id)
    broken = [s for s in servers if s.status not in ("ACTIVE", "BUILD")]
    if broken:
        say(f"deleting {len(broken)} servers in {', '.join(sorted({s.status for s in broken}))}")
        delete(conn, broken)
        wait_gone(conn, project.id, {s.id for s in broken})
        servers = [s for s in servers if s.status in ("ACTIVE", "BUILD")]
    if any(s.status == "BUILD" for s in servers):
        servers = wait_settled(conn, project.id, min(n, len(servers)), started)
    have = len(servers)
    if have > n:
        surplus = sorted(servers, key=lambda s: s.created_at or "", reverse=True)[:have - n]
        say(f"deleting {len(surplus)} of {have} servers")
        delete(conn, surplus)
        wait_gone(conn, project.id, {s.id for s in surplus})
        servers = servers_of(conn, project.id)
    elif have < n:
        flavor = conn.compute.find_flavor(FLAVOR, ignore_missing=False)
        image = conn.image.find_image(IMAGE, ignore_missing=False)
        sizes = [min(BATCH, n - have - i) for i in range(0, n - have, BATCH)]
        stamp = time.strftime("%H%M%S")
        say(f"making {n - have} servers ({have} there) in {len(sizes)} batches of up to {BATCH}, "
            f"{PARALLEL} at a time")
        scoped = scoped_to(project.id)
        with ThreadPoolExecutor(PARALLEL) as pool:
            list(pool.map(lambda ib: create_batch(scoped, flavor.id, image.id, f"bg-{stamp}-{ib[0]}", ib[1]),
                          enumerate(sizes)))
        servers = wait_settled(conn, project.id, n, started)
    errors = [s for s in servers if s.status != "ACTIVE"]
    if errors:
        say(f"{len(errors)} servers ended in {errors[0].status}: {errors[0].fault}")
    return not errors and len(servers) == n


if __name__ == "__main__":
    os.environ.pop("OS_CLOUD", None)
    ensure(int(sys.argv[1]))
