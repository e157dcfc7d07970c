"""A real Slurm on this machine playing a cluster's head node and its workers' boots (issue 10).

`LocalSlurm` starts Debian's slurmctld with the slurm.conf and resume/suspend programs the portal
rendered for a cluster, pointed at the live test server; the programs call the portal's API with
the cluster's token, as on a real head. What differs from a real head, because one machine plays
it (and the notes in ../shared/notes/local-slurm.md say why): paths are in a folder of the test's,
SlurmctldHost is this machine, each worker has its own slurmd port, nodes are 1 CPU / 500 MB, and
SuspendTime is seconds rather than minutes.

A fake hypervisor's server does not boot, so the harness plays the boot: when the portal reports a
worker's server ACTIVE in the local cloud it starts a local slurmd for that node name (in a time
namespace whose boot time is now: slurmctld only accepts a resumed node that booted after the
resume), and when the portal has deleted the server it stops that slurmd. Needs root.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from clusters import rendering
from clusters.models import Cluster, ClusterNode, NodeState

SLURM_USER = "slurm"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ensure_munged() -> None:
    if subprocess.run(["pgrep", "-x", "munged"], capture_output=True).returncode == 0:
        return
    Path("/run/munge").mkdir(exist_ok=True)
    shutil.chown("/run/munge", "munge", "munge")
    subprocess.run(["runuser", "-u", "munge", "--", "/usr/sbin/munged"], check=True, timeout=30)


def _clear_signal_mask() -> None:
    signal.pthread_sigmask(signal.SIG_SETMASK, [])


class LocalSlurm:
    def __init__(self, cluster: Cluster, *, token: str, portal_url: str, suspend_seconds: int = 20):
        self.cluster = cluster
        self.folder = Path(tempfile.mkdtemp(prefix="portal-slurm-"))
        self.folder.chmod(0o755)  # slurmctld runs its programs as slurm
        names = cluster.slurm_node_names()
        self.paths = rendering.SlurmPaths(
            conf_dir=str(self.folder), programs_dir=str(self.folder), token_file=str(self.folder / "token"),
            state_dir=str(self.folder / "state"), slurmd_spool_dir=str(self.folder / "spool" / "%n"),
            slurmd_pid_file=str(self.folder / "slurmd-%n.pid"), run_dir=str(self.folder),
            log_dir=str(self.folder / "log"), slurm_user=SLURM_USER, slurmctld_port=free_port(),
            node_ports={n: free_port() for n in names}, node_cpus=1, node_memory_mb=500,
            suspend_seconds=suspend_seconds)
        self.conf = self.folder / "slurm.conf"
        self.env = {**os.environ, "SLURM_CONF": str(self.conf), "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
        self.token, self.portal_url = token, portal_url
        self.slurmctld: subprocess.Popen | None = None
        self.slurmd: dict[str, subprocess.Popen] = {}
        self.played: list[str] = []  # what the harness did, for failure messages
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None

    # --- files and daemons ----------------------------------------------------------------------

    def write(self) -> None:
        for sub in ("state", "log"):
            (self.folder / sub).mkdir()
            shutil.chown(self.folder / sub, SLURM_USER, SLURM_USER)
        for name in self.cluster.slurm_node_names():
            (self.folder / "spool" / name).mkdir(parents=True)
        self.conf.write_text(rendering.slurm_conf(self.cluster, paths=self.paths, controller=socket.gethostname()))
        for action in ("resume", "suspend"):
            program = self.folder / f"portal-{action}"
            program.write_text(rendering.program(self.cluster, action, paths=self.paths, portal_url=self.portal_url))
            program.chmod(0o755)
        report = self.folder / "portal-report"
        report.write_text(rendering.report_program(self.cluster, paths=self.paths, portal_url=self.portal_url))
        report.chmod(0o755)
        token = self.folder / "token"
        token.write_text(self.token + "\n")
        shutil.chown(token, SLURM_USER, SLURM_USER)
        token.chmod(0o400)

    def start(self) -> None:
        ensure_munged()
        self.write()
        out = open(self.folder / "slurmctld.out", "wb")  # noqa: SIM115 - written while it runs
        self.slurmctld = subprocess.Popen(["/usr/sbin/slurmctld", "-D", "-f", str(self.conf)], env=self.env,
                                          stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
        log = self.folder / "log" / "slurmctld.log"
        deadline = time.monotonic() + 30
        while not (log.exists() and "Running as primary controller" in log.read_text()):
            if self.slurmctld.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"slurmctld did not start:\n{self.logs()}")
            time.sleep(0.2)
        self._watcher = threading.Thread(target=self._watch, daemon=True)
        self._watcher.start()

    def stop(self) -> None:
        self._stop.set()
        if self._watcher:
            self._watcher.join(timeout=10)
        for name in list(self.slurmd):
            self.stop_slurmd(name)
        if self.slurmctld and self.slurmctld.poll() is None:
            self.slurmctld.terminate()
            try:
                self.slurmctld.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.slurmctld.kill()

    def cleanup(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)

    def logs(self) -> str:
        parts = []
        for path in sorted(self.folder.rglob("*.log")) + [self.folder / "slurmctld.out"]:
            if path.exists():
                parts.append(f"--- {path.name}\n{path.read_text()[-4000:]}")
        return "\n".join(parts + ["--- harness", *self.played])

    # --- the workers' boots, played -------------------------------------------------------------

    def start_slurmd(self, name: str) -> None:
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        self.run("scontrol", "update", f"nodename={name}", "nodeaddr=127.0.0.1", "nodehostname=127.0.0.1")
        out = open(self.folder / "log" / f"slurmd-{name}.out", "wb")  # noqa: SIM115 - written while it runs
        self.slurmd[name] = subprocess.Popen(
            ["unshare", "--time", f"--boottime=-{int(uptime)}", "/usr/sbin/slurmd", "-D", "-N", name,
             "-f", str(self.conf)], env=self.env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            preexec_fn=_clear_signal_mask, start_new_session=True)
        self.played.append(f"{time.strftime('%H:%M:%S')} started slurmd {name}")

    def stop_slurmd(self, name: str) -> None:
        proc = self.slurmd.pop(name, None)
        if proc is None:
            return
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        self.played.append(f"{time.strftime('%H:%M:%S')} stopped slurmd {name}")

    def _watch(self) -> None:
        """Play each worker's boot once the portal has its server ACTIVE, and its end once gone."""
        from django.db import connection

        try:
            while not self._stop.is_set():
                for node in ClusterNode.objects.filter(cluster=self.cluster, role="worker"):
                    running = node.name in self.slurmd and self.slurmd[node.name].poll() is None
                    if node.state == NodeState.ACTIVE and node.server_id and not running:
                        self.start_slurmd(node.name)
                    elif node.state in (NodeState.POWERED_DOWN, NodeState.REFUSED) and node.name in self.slurmd:
                        self.stop_slurmd(node.name)
                self._stop.wait(0.5)
        finally:
            connection.close()

    # --- Slurm's own view -----------------------------------------------------------------------

    def run(self, *args: str, check: bool = True) -> str:
        done = subprocess.run(list(args), env=self.env, capture_output=True, text=True, timeout=30)
        if check and done.returncode != 0:
            raise RuntimeError(f"{' '.join(args)}: {done.stdout}{done.stderr}")
        return done.stdout

    def sbatch(self, *args: str) -> str:
        out = self.run("sbatch", "--parsable", "-D", str(self.folder), "-o", "/dev/null", *args)
        return out.strip().split(";")[0]

    def job_state(self, job_id: str) -> str:
        out = self.run("scontrol", "show", "job", job_id, check=False)
        return next((w.split("=", 1)[1] for w in out.split() if w.startswith("JobState=")), "")

    def node_state(self, name: str) -> tuple[str, str]:
        """sinfo's state ("idle~", "down~", "mixed", ...) and reason for one node."""
        out = self.run("sinfo", "-h", "-n", name, "-o", "%T|%E", check=False).strip()
        state, _, reason = out.partition("|")
        return state, reason
