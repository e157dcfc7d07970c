"""`make run`'s processes under honcho (Procfile) and scripts/respawn: a worker killed with SIGKILL
comes back, and the web server and the other processes never notice.

The stack runs with the test settings on a free port, against the test database and Redis, with
queue names of its own so that neither it nor the session's worker takes the other's tasks."""
import os
import signal
import socket
import subprocess
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest

from tests.fixtures.celery_worker import wait_for
from tests.instances.integration_support import devcloud_ready  # noqa: F401 - the cloud /healthz asks

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
WORKERS = ("cloud", "sync", "default")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def status_of(url: str) -> int | None:
    """The HTTP status of a GET (an error status is an answer too), None when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return None


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"  # a zombie is gone too


class Stack:
    def __init__(self, tmp_path: Path, database_url: str):
        tag = uuid.uuid4().hex[:8]
        self.port, self.run_dir, self.log = free_port(), tmp_path / "run", tmp_path / "run.log"
        self.queues = {"cloud": f"cloud.sup-{tag}", "sync": f"sync.sup-{tag}", "default": f"default-sup-{tag}"}
        self.env = {**os.environ, "DJANGO_SETTINGS_MODULE": "portal.settings.test", "DATABASE_URL": database_url,
                    "DATABASE_CONN_MAX_AGE": "0", "PORTAL_BIND": f"127.0.0.1:{self.port}",
                    "PORTAL_RUN_DIR": str(self.run_dir), "PORTAL_CLOUD_QUEUE": self.queues["cloud"],
                    "PORTAL_SYNC_QUEUE": self.queues["sync"], "PORTAL_DEFAULT_QUEUE": self.queues["default"],
                    "WEB_CONCURRENCY": "1", "PORTAL_CLOUD_CONCURRENCY": "1"}
        self.proc = None

    @property
    def healthz(self) -> str:
        return f"http://127.0.0.1:{self.port}/healthz"

    def start(self):
        with open(self.log, "wb") as out:  # the way `make run` starts it, in a session of its own
            self.proc = subprocess.Popen([str(ROOT / "scripts" / "run.sh")], cwd=ROOT, env=self.env, stdout=out,
                                         stderr=subprocess.STDOUT, start_new_session=True)

    def worker_pid(self, name: str) -> int | None:
        pidfile = self.run_dir / f"worker-{name}.pid"
        try:
            pid = int(pidfile.read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if alive(pid) else None

    def runs_a_task(self, name: str, timeout: float = 90) -> bool:
        """A task sent to this worker's queue only is done by it (the task reads the test database)."""
        from portal.celery import app

        result = app.send_task("portal.tasks.fail_stale_operations", queue=self.queues[name])
        return result.get(timeout=timeout) == 0

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # honcho: SIGTERM to every process group, SIGKILL after 5 s
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@pytest.fixture
def stack(devcloud_ready, transactional_db, tmp_path):  # noqa: F811 - the fixture imported above
    from django.db import connection

    db = connection.settings_dict
    stack = Stack(tmp_path, f"postgres://{db['USER'] or 'postgres'}@{db['HOST'] or '127.0.0.1'}:"
                            f"{db['PORT'] or 5432}/{db['NAME']}")
    stack.start()
    try:
        wait_for(lambda: status_of(stack.healthz) == 200 and all(stack.worker_pid(w) for w in WORKERS),
                 timeout=120, message="the web server and the three workers to start")
        yield stack
    except BaseException:
        print(stack.output()[-4000:])
        raise
    finally:
        stack.stop()


def test_a_worker_killed_with_sigkill_comes_back_and_stopping_the_supervisor_stops_all(stack):
    # given every process of `make run` is up
    assert stack.runs_a_task("cloud")
    others = {name: stack.worker_pid(name) for name in ("sync", "default")}
    killed = stack.worker_pid("cloud")

    # when the cloud worker dies at once, as with the OOM killer
    os.kill(killed, signal.SIGKILL)
    wait_for(lambda: not alive(killed), timeout=10, message="the worker to die")

    # then a new cloud worker is started, while the web server answers all the while
    answers = []

    def restarted():
        answers.append(status_of(stack.healthz))
        pid = stack.worker_pid("cloud")
        return pid if pid and pid != killed else None

    new = wait_for(restarted, timeout=60, interval=0.5, message="a new cloud worker")
    assert set(answers) == {200}
    assert alive(new)
    # and nothing else was stopped; the restart is logged; the new worker takes the queue's work
    assert stack.proc.poll() is None, stack.output()[-4000:]
    assert {name: stack.worker_pid(name) for name in others} == others
    assert "respawn: cloud exited with status 137" in stack.output()
    assert stack.runs_a_task("cloud")
    assert status_of(stack.healthz) == 200
    assert stack.proc.poll() is None

    # and stopping the supervisor (Ctrl-C does the same) stops every process, none restarted
    pids = [stack.worker_pid(name) for name in WORKERS]
    stack.stop()
    assert stack.proc.returncode is not None
    wait_for(lambda: not any(alive(pid) for pid in pids), timeout=20, message="every worker to stop")
    assert status_of(stack.healthz) is None
    assert "starting it again" not in stack.output().split("SIGTERM received")[-1]

