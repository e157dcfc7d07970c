"""What a cluster's servers boot with: cloud-init user data for the head and the workers, the
head's slurm.conf and its resume/suspend/report programs.

The cloud-config is built as Python data and dumped as YAML; the files it writes are Django
templates (templates/clusters/node/). Two image families: Ubuntu 24.04 (Slurm and munge from the
archive, Apptainer from its PPA) and Rocky 9 (Slurm, munge and Apptainer from EPEL).
"""
from __future__ import annotations

import base64
import json
import secrets
from dataclasses import dataclass, field

import yaml
from django.conf import settings
from django.template.loader import render_to_string
from django.utils.safestring import SafeString

from portal import crypto

from .models import Cluster, ImageFamily

MUNGE_KEY_BYTES = 1024
# Part of the flavor's memory the OS keeps: a worker that registers with less than RealMemory is
# drained by slurmctld ("Low RealMemory").
MEMORY_HEADROOM = 0.9


@dataclass(frozen=True)
class Packages:
    head: tuple[str, ...]
    worker: tuple[str, ...]
    nfs_server: str  # its systemd unit
    slurmd_env: str  # the file slurmd.service reads SLURMD_OPTIONS from


FAMILIES = {
    ImageFamily.UBUNTU: Packages(
        head=("munge", "slurmctld", "slurm-client", "nfs-kernel-server", "apptainer", "python3"),
        worker=("munge", "slurmd", "slurm-client", "nfs-common", "apptainer"),
        nfs_server="nfs-kernel-server", slurmd_env="/etc/default/slurmd"),
    ImageFamily.ROCKY: Packages(
        head=("munge", "slurm", "slurm-slurmctld", "nfs-utils", "apptainer", "python3"),
        worker=("munge", "slurm", "slurm-slurmd", "nfs-utils", "apptainer"),
        nfs_server="nfs-server", slurmd_env="/etc/sysconfig/slurmd"),
}
EPEL = {"name": "Extra Packages for Enterprise Linux 9", "enabled": True, "gpgcheck": True,
        "baseurl": "https://dl.fedoraproject.org/pub/epel/9/Everything/$basearch/",
        "gpgkey": "https://dl.fedoraproject.org/pub/epel/RPM-GPG-KEY-EPEL-9"}
APPTAINER_PPA = "ppa:apptainer/als"


@dataclass(frozen=True)
class SlurmPaths:
    """Where Slurm's files live on the head. The defaults are a real head node's; the local
    elastic-loop test points them into a temporary folder and gives each node its own port."""

    conf_dir: str = "/etc/slurm"
    programs_dir: str = "/usr/local/sbin"
    token_file: str = "/etc/slurm/portal-token"
    state_dir: str = "/var/spool/slurmctld"
    slurmd_spool_dir: str = "/var/spool/slurmd"
    slurmd_pid_file: str = "/run/slurmd.pid"
    run_dir: str = "/run"
    log_dir: str = "/var/log/slurm"
    bin_dir: str = "/usr/bin"
    slurm_user: str = "slurm"
    slurmctld_port: int = 6817
    slurmd_port: int = 6818
    node_ports: dict = field(default_factory=dict)  # node name -> its own slurmd port (one host, many slurmd)
    node_cpus: int | None = None  # node size override (a local slurmd cannot be an m3.quad)
    node_memory_mb: int | None = None
    suspend_seconds: int | None = None  # SuspendTime override (a test cannot wait a whole idle minute)


def munge_key_new() -> str:
    """A new cluster's munge key, encrypted for the row (base64 inside)."""
    return crypto.encrypt(base64.b64encode(secrets.token_bytes(MUNGE_KEY_BYTES)).decode())


def munge_key_b64(cluster: Cluster) -> str:
    return crypto.decrypt(cluster.encrypted_munge_key)


def _hostlist(names: list[str]) -> str:
    """w1..w4 as Slurm writes them: w[1-4]."""
    numbers = [int(n[1:]) for n in names]
    if len(numbers) == 1:
        return names[0]
    return f"w[{min(numbers)}-{max(numbers)}]" if numbers == list(range(min(numbers), max(numbers) + 1)) \
        else f"w[{','.join(map(str, numbers))}]"


def slurm_conf(cluster: Cluster, *, paths: SlurmPaths = SlurmPaths(), controller: str = "") -> str:
    names = cluster.slurm_node_names()
    cpus = paths.node_cpus or cluster.worker_vcpus
    memory = paths.node_memory_mb or max(1, int(cluster.worker_ram_mb * MEMORY_HEADROOM))
    nodes = [{"name": n, "port": paths.node_ports.get(n), "cpus": cpus, "memory_mb": memory} for n in names]
    return render_to_string("clusters/node/slurm.conf", {
        "cluster": cluster, "controller": controller or cluster.head_hostname, "paths": paths, "nodes": nodes,
        "partition_nodes": partition_nodes(cluster),
        "suspend_seconds": paths.suspend_seconds or cluster.idle_minutes * 60,
        "resume_timeout": settings.PORTAL_CLUSTER_RESUME_TIMEOUT,
        "suspend_timeout": settings.PORTAL_CLUSTER_SUSPEND_TIMEOUT})


def partition_nodes(cluster: Cluster) -> str:
    """The batch partition's nodes: the workers Slurm may use now ("w[1-4]")."""
    return _hostlist(cluster.worker_names())


def gres_conf(cluster: Cluster) -> str:
    last = cluster.worker_gpus - 1
    files = "/dev/nvidia0" if last == 0 else f"/dev/nvidia[0-{last}]"
    return f"NodeName={_hostlist(cluster.slurm_node_names())} Name=gpu File={files}\n"


def program(cluster: Cluster, action: str, *, paths: SlurmPaths = SlurmPaths(), portal_url: str = "") -> str:
    """The head's portal-resume or portal-suspend (a Python 3 script, standard library only)."""
    return render_to_string("clusters/node/portal-program.py", {**_program_context(cluster, paths, portal_url),
                                                               "action": action})


def report_program(cluster: Cluster, *, paths: SlurmPaths = SlurmPaths(), portal_url: str = "") -> str:
    return render_to_string("clusters/node/portal-report.py", _program_context(cluster, paths, portal_url))


def _program_context(cluster: Cluster, paths: SlurmPaths, portal_url: str) -> dict:
    # Values go into Python source as JSON literals (a valid Python string for any text).
    return {"cluster": cluster, "paths": paths,
            "portal_url_json": json.dumps((portal_url or settings.PORTAL_PUBLIC_URL).rstrip("/")),
            "token_file_json": json.dumps(paths.token_file),
            "conf_json": json.dumps(f"{paths.conf_dir}/slurm.conf"),
            "scontrol_json": json.dumps(f"{paths.bin_dir}/scontrol"),
            "sinfo_json": json.dumps(f"{paths.bin_dir}/sinfo"), "squeue_json": json.dumps(f"{paths.bin_dir}/squeue"),
            "log_file_json": json.dumps(f"{paths.log_dir}/portal-programs.log")}


REPORT_SERVICE = """[Unit]
Description=Report Slurm's nodes and jobs to the research cloud portal
After=slurmctld.service

[Service]
Type=oneshot
User=slurm
ExecStart=/usr/local/sbin/portal-report
"""
REPORT_TIMER = """[Unit]
Description=Report Slurm's nodes and jobs to the research cloud portal every 30 s

[Timer]
OnBootSec=30s
OnUnitActiveSec=30s
AccuracySec=1s

[Install]
WantedBy=timers.target
"""
# slurmd.service in Debian/Ubuntu starts only when slurm.conf exists; a configless worker has none.
SLURMD_DROP_IN = "[Unit]\nConditionPathExists=\n"
# /home and /opt go to the head's own private network only (the default security group also fences them).
EXPORTS_SCRIPT = (
    "net=$(ip -o -f inet addr show scope global | awk 'NR==1 {print $4}'); "
    "net=$(python3 -c \"import ipaddress,sys; print(ipaddress.ip_interface(sys.argv[1]).network)\" \"$net\"); "
    "printf '/home %s(rw,sync,no_subtree_check,no_root_squash)\\n/opt %s(rw,sync,no_subtree_check,no_root_squash)\\n' "
    "\"$net\" \"$net\" > /etc/exports")


# The cloud's metadata service hands this user data (the munge key, the cluster's token) to any
# process on the node that asks: from the first boot stage on, only root may reach it. nftables where
# the image has it (Ubuntu 24.04, Rocky 9), else iptables; re-applied at every boot.
METADATA_ADDRESS = "169.254.169.254"
METADATA_FENCE = (
    "if command -v nft >/dev/null 2>&1; then "
    "nft add table inet portal_fence && "
    "nft 'add chain inet portal_fence out { type filter hook output priority 0; }' && "
    "nft flush chain inet portal_fence out && "
    f"nft add rule inet portal_fence out ip daddr {METADATA_ADDRESS} meta skuid != 0 reject; "
    "elif command -v iptables >/dev/null 2>&1; then "
    f"iptables -C OUTPUT -d {METADATA_ADDRESS} -m owner ! --uid-owner 0 -j REJECT 2>/dev/null || "
    f"iptables -I OUTPUT -d {METADATA_ADDRESS} -m owner ! --uid-owner 0 -j REJECT; fi")


def _file(path: str, content: str, *, owner: str = "root:root", permissions: str = "0644", **extra) -> dict:
    # Deferred to the end of boot: the owners (munge, slurm) exist only once the packages are in.
    return {"path": path, "content": str(content), "owner": owner, "permissions": permissions, "defer": True, **extra}


def _repositories(cluster: Cluster) -> dict:
    """Where the packages come from, and the first boot stage's commands (the metadata fence first)."""
    bootcmd = [["sh", "-c", METADATA_FENCE]]
    if cluster.image_family == ImageFamily.ROCKY:
        # Slurm and munge need CodeReady Builder next to EPEL.
        return {"yum_repos": {"epel": EPEL},
                "bootcmd": [*bootcmd, ["sh", "-c", "dnf config-manager --set-enabled crb || true"]]}
    return {"apt": {"sources": {"apptainer": {"source": APPTAINER_PPA}}}, "bootcmd": bootcmd}


def head_user_data(cluster: Cluster, *, token: str, portal_url: str = "") -> str:
    """The head's cloud-config: slurmctld + munge, NFS exports of /home and /opt, Apptainer, the
    slurm.conf with power saving and the programs that call the portal with the cluster's token."""
    family = FAMILIES[ImageFamily(cluster.image_family)]
    paths = SlurmPaths()
    files = [
        _file("/etc/munge/munge.key", munge_key_b64(cluster), encoding="b64", owner="munge:munge",
              permissions="0400"),
        _file(f"{paths.conf_dir}/slurm.conf", slurm_conf(cluster, paths=paths)),
        _file(paths.token_file, token + "\n", owner=f"{paths.slurm_user}:{paths.slurm_user}", permissions="0400"),
        _file(f"{paths.programs_dir}/portal-resume", program(cluster, "resume", portal_url=portal_url),
              permissions="0755"),
        _file(f"{paths.programs_dir}/portal-suspend", program(cluster, "suspend", portal_url=portal_url),
              permissions="0755"),
        _file(f"{paths.programs_dir}/portal-report", report_program(cluster, portal_url=portal_url),
              permissions="0755"),
        _file("/etc/systemd/system/portal-report.service", REPORT_SERVICE),
        _file("/etc/systemd/system/portal-report.timer", REPORT_TIMER),
    ]
    if cluster.worker_gpus:
        files.append(_file(f"{paths.conf_dir}/gres.conf", gres_conf(cluster)))
    runcmd = [
        ["install", "-d", "-o", "slurm", "-g", "slurm", paths.state_dir, paths.log_dir],
        ["mkdir", "-p", "/opt"],
        ["sh", "-c", EXPORTS_SCRIPT],
        ["systemctl", "enable", "--now", family.nfs_server],
        ["exportfs", "-ra"],
        ["systemctl", "restart", "munge"],
        ["systemctl", "enable", "munge"],
        ["systemctl", "restart", "slurmctld"],
        ["systemctl", "enable", "slurmctld"],
        ["systemctl", "daemon-reload"],
        ["systemctl", "enable", "--now", "portal-report.timer"],
    ]
    return _cloud_config({"hostname": cluster.head_hostname, **_repositories(cluster), "package_update": True,
                          "packages": list(family.head), "write_files": files, "runcmd": runcmd})


def worker_user_data(cluster: Cluster, *, node: str) -> str:
    """A worker's cloud-config: slurmd + munge + Apptainer, /home and /opt from the head, slurmd
    under its Slurm node name fetching its configuration from the head (configless)."""
    family = FAMILIES[ImageFamily(cluster.image_family)]
    head = cluster.head_address
    options = f'SLURMD_OPTIONS="-N {node} --conf-server {head}"\n'
    files = [
        _file("/etc/munge/munge.key", munge_key_b64(cluster), encoding="b64", owner="munge:munge",
              permissions="0400"),
        _file(family.slurmd_env, options),
        _file("/etc/systemd/system/slurmd.service.d/portal.conf", SLURMD_DROP_IN),
    ]
    mounts = [[f"{head}:{path}", path, "nfs", "defaults,_netdev,nofail", "0", "0"] for path in ("/home", "/opt")]
    runcmd = [
        ["sh", "-c", f"grep -q ' {cluster.head_hostname}$' /etc/hosts || "
                     f"echo '{head} {cluster.head_hostname}' >> /etc/hosts"],
        ["mount", "-a"],
        ["install", "-d", "/var/spool/slurmd", "/var/log/slurm"],
        ["systemctl", "daemon-reload"],
        ["systemctl", "restart", "munge"],
        ["systemctl", "enable", "munge"],
        ["systemctl", "restart", "slurmd"],
        ["systemctl", "enable", "slurmd"],
    ]
    return _cloud_config({"hostname": cluster.server_name(node), **_repositories(cluster), "package_update": True,
                          "packages": list(family.worker), "write_files": files, "mounts": mounts,
                          "runcmd": runcmd})


class _Dumper(yaml.SafeDumper):
    pass


def _str(dumper, value: str):
    # Files keep their lines: literal blocks read like the files they become.
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", str(value), style=style)


_Dumper.add_representer(str, _str)
_Dumper.add_representer(SafeString, _str)


def _cloud_config(data: dict) -> str:
    return "#cloud-config\n" + yaml.dump(data, Dumper=_Dumper, sort_keys=False, width=1000)
