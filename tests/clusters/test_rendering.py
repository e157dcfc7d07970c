"""What a cluster's servers boot with, checked by the real tools (issue 10).

- Every cloud-config (head and worker, Ubuntu 24.04 and Rocky 9, CPU and GPU workers) passes
  Debian's `cloud-init schema --config-file`.
- The head's slurm.conf is read by a real slurmctld (Debian's slurm-wlm): it is started with the
  file, in a UTS namespace whose hostname is the cluster's head (so `SlurmctldHost` is the rendered
  one) and a mount namespace whose /etc/hosts names it; it must come up as primary controller with
  power saving enabled (the programs are executable), and `scontrol` must show the CLOUD nodes sized
  from the worker flavor and the power-saving settings as rendered. Only the paths (state, logs,
  programs, ports) point into a temporary folder, because the test does not own /etc or /var.

`make test` installs the tools (scripts/ensure-slurm.sh); slurmctld's check needs root (namespaces).
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import textwrap
from pathlib import Path

import pytest
import yaml

from clusters import rendering
from clusters.models import Cluster, ImageFamily

NEED = "run scripts/ensure-slurm.sh (make test does): Debian's cloud-init, slurm-wlm and munge"


def make_cluster(family: str = ImageFamily.UBUNTU, *, gpus: int = 0, **fields) -> Cluster:
    values = dict(pk=7, name="demo", image_family=family, head_flavor_name="m3.small", worker_flavor_name="m3.quad",
                  worker_vcpus=4, worker_ram_mb=15 * 1024, worker_gpus=gpus, max_workers=4, idle_minutes=10,
                  encrypted_munge_key=rendering.munge_key_new(), head_address="10.0.0.5")
    values.update(fields)
    return Cluster(**values)


def cloud_init_schema(path: Path) -> subprocess.CompletedProcess:
    assert shutil.which("cloud-init"), NEED
    return subprocess.run(["cloud-init", "schema", "--config-file", str(path)], capture_output=True, text=True,
                          timeout=60)


@pytest.mark.parametrize("family", [ImageFamily.UBUNTU, ImageFamily.ROCKY])
@pytest.mark.parametrize("gpus", [0, 1])
def test_user_data_passes_cloud_init_schema(family, gpus, tmp_path):
    cluster = make_cluster(family, gpus=gpus)
    for role, text in (("head", rendering.head_user_data(cluster, token="rcc_abc_secret")),
                       ("worker", rendering.worker_user_data(cluster, node="w2"))):
        path = tmp_path / f"{role}.yaml"
        path.write_text(text)
        result = cloud_init_schema(path)
        assert result.returncode == 0 and "Valid cloud-config" in result.stdout, \
            f"{family} {role}: {result.stdout}{result.stderr}"


def test_a_broken_cloud_config_is_refused_by_the_same_check(tmp_path):
    """The check is real: cloud-init refuses what its schema does not allow."""
    path = tmp_path / "broken.yaml"
    path.write_text("#cloud-config\nwrite_files:\n- content: no path\n")
    assert cloud_init_schema(path).returncode != 0


def _files(text: str) -> dict[str, dict]:
    return {f["path"]: f for f in yaml.safe_load(text)["write_files"]}


def test_the_head_holds_the_key_the_token_and_the_programs():
    cluster = make_cluster(ImageFamily.UBUNTU)
    data = yaml.safe_load(rendering.head_user_data(cluster, token="rcc_abc_secret", portal_url="https://p.example"))
    files = _files(rendering.head_user_data(cluster, token="rcc_abc_secret", portal_url="https://p.example"))
    assert data["hostname"] == "demo-head"
    assert data["apt"]["sources"]["apptainer"]["source"] == "ppa:apptainer/als"
    assert {"slurmctld", "munge", "nfs-kernel-server", "apptainer"} <= set(data["packages"])
    key = files["/etc/munge/munge.key"]
    assert key["encoding"] == "b64" and key["content"] == rendering.munge_key_b64(cluster)
    assert (key["owner"], key["permissions"]) == ("munge:munge", "0400")
    token = files["/etc/slurm/portal-token"]
    assert (token["content"].strip(), token["owner"], token["permissions"]) == ("rcc_abc_secret", "slurm:slurm",
                                                                                "0400")
    resume = files["/usr/local/sbin/portal-resume"]["content"]
    assert '"https://p.example"' in resume and "rcc_abc_secret" not in resume  # the token only in its own file
    assert "/api/v1/clusters/{CLUSTER}/nodes/{node}/{ACTION}/" in resume and "CLUSTER = 7" in resume
    conf = files["/etc/slurm/slurm.conf"]["content"]
    for line in ("SuspendTime=600", "ResumeProgram=/usr/local/sbin/portal-resume", "PrivateData=cloud",
                 "SuspendProgram=/usr/local/sbin/portal-suspend", "ResumeFailProgram=/usr/local/sbin/portal-suspend",
                 "NodeName=w1 CPUs=4 RealMemory=13824 State=CLOUD"):
        assert line in conf.splitlines(), line
    assert "idle_on_node_suspend" in next(ln for ln in conf.splitlines() if ln.startswith("SlurmctldParameters="))
    assert "portal-report.timer" in files["/etc/systemd/system/portal-report.timer"]["path"]
    assert "OnUnitActiveSec=30s" in files["/etc/systemd/system/portal-report.timer"]["content"]
    assert ["systemctl", "enable", "--now", "portal-report.timer"] in data["runcmd"]


def test_rocky_gets_everything_from_epel_and_workers_mount_the_head():
    cluster = make_cluster(ImageFamily.ROCKY, gpus=1)
    head = yaml.safe_load(rendering.head_user_data(cluster, token="t"))
    assert "epel" in head["yum_repos"] and {"slurm-slurmctld", "apptainer", "munge"} <= set(head["packages"])
    assert "Gres=gpu:1" in _files(rendering.head_user_data(cluster, token="t"))["/etc/slurm/slurm.conf"]["content"]
    worker = yaml.safe_load(rendering.worker_user_data(cluster, node="w3"))
    assert worker["hostname"] == "demo-w3" and {"slurm-slurmd", "apptainer", "nfs-utils"} <= set(worker["packages"])
    assert ["10.0.0.5:/home", "/home", "nfs", "defaults,_netdev,nofail", "0", "0"] in worker["mounts"]
    assert ["10.0.0.5:/opt", "/opt", "nfs", "defaults,_netdev,nofail", "0", "0"] in worker["mounts"]
    options = _files(rendering.worker_user_data(cluster, node="w3"))["/etc/sysconfig/slurmd"]["content"]
    assert options.strip() == 'SLURMD_OPTIONS="-N w3 --conf-server 10.0.0.5"'


# --- slurm.conf read by a real slurmctld --------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ensure_munged() -> None:
    """munged as Debian's package would run it (no systemd here): the key the package made."""
    if subprocess.run(["pgrep", "-x", "munged"], capture_output=True).returncode == 0:
        return
    Path("/run/munge").mkdir(exist_ok=True)
    shutil.chown("/run/munge", "munge", "munge")
    subprocess.run(["runuser", "-u", "munge", "--", "/usr/sbin/munged"], check=True, timeout=30)


def start_slurmctld_checked(cluster: Cluster, folder: Path, *, commands: str) -> str:
    """Start slurmctld with the cluster's rendered slurm.conf (paths in `folder`) as the head,
    run `commands` (shell, $CONF set) once it is the primary controller, stop it; their output."""
    paths = rendering.SlurmPaths(
        conf_dir=str(folder), programs_dir=str(folder), token_file=str(folder / "token"),
        state_dir=str(folder / "state"), slurmd_spool_dir=str(folder / "spool"), run_dir=str(folder),
        log_dir=str(folder), slurm_user="root", slurmctld_port=_free_port())
    (folder / "state").mkdir()
    conf = folder / "slurm.conf"
    conf.write_text(rendering.slurm_conf(cluster, paths=paths))
    for action in ("resume", "suspend"):
        program = folder / f"portal-{action}"
        program.write_text(rendering.program(cluster, action, paths=paths))
        program.chmod(0o755)
    (folder / "hosts").write_text(f"127.0.0.1 localhost {cluster.head_hostname}\n")
    script = folder / "run.sh"
    script.write_text(textwrap.dedent(f"""\
        set -e
        mount --bind {folder}/hosts /etc/hosts
        hostname {cluster.head_hostname}
        CONF={conf}; export SLURM_CONF=$CONF
        /usr/sbin/slurmctld -D -f $CONF > {folder}/slurmctld.out 2>&1 &
        PID=$!
        trap 'kill $PID 2>/dev/null || true' EXIT
        for i in $(seq 100); do grep -q 'Running as primary controller' {folder}/slurmctld.log 2>/dev/null && break
          sleep 0.1; done
        {commands}
        kill -0 $PID || {{ echo "slurmctld stopped by itself" >&2; exit 3; }}
        kill $PID; wait $PID || true
        """))
    ensure_munged()
    result = subprocess.run(["unshare", "--uts", "--mount", "--propagation", "private", "sh", str(script)],
                            capture_output=True, text=True, timeout=60)
    log = (folder / "slurmctld.log").read_text() if (folder / "slurmctld.log").exists() else ""
    assert result.returncode == 0, f"{result.stdout}{result.stderr}\n{log}"
    assert "Running as primary controller" in log, log
    for bad in ("fatal", "power_save module disabled", "Parse error", "error: Parsing", "invalid"):
        assert bad not in log, f"slurmctld said {bad!r}:\n{log}"
    return result.stdout


@pytest.mark.parametrize("gpus", [0, 1])
def test_slurmctld_accepts_the_rendered_slurm_conf(gpus, tmp_path):
    assert shutil.which("slurmctld") and shutil.which("munged"), NEED
    if os.geteuid() != 0:
        pytest.skip("slurmctld's check runs it in namespaces of its own (root)")
    cluster = make_cluster(ImageFamily.UBUNTU, gpus=gpus, idle_minutes=7, node_ceiling=8)
    keys = "SuspendTime|ResumeTimeout|SuspendProgram|ResumeProgram|ResumeFailProgram|PrivateData|SlurmctldParameters"
    out = start_slurmctld_checked(cluster, tmp_path, commands=f"""
        /usr/bin/scontrol show node w1; /usr/bin/scontrol show node w4
        /usr/bin/scontrol show config | grep -E '^({keys}) '
        echo "partition: $(/usr/bin/scontrol show partition batch -o)"
        /usr/bin/scontrol update partitionname=batch nodes='w[1-6]'
        echo "raised: $(/usr/bin/scontrol show partition batch -o)"
        /usr/bin/scontrol update nodename=w3 state=power_down_force; echo "power_down_force rc $?"
        """)
    assert "NodeName=w1 " in out and "NodeName=w4 " in out
    # the slurm.conf defines 8 workers; the partition (max workers) holds 4, and the head's report
    # program raises it with scontrol while slurmctld runs
    partition = next(line for line in out.splitlines() if line.startswith("partition: "))
    raised = next(line for line in out.splitlines() if line.startswith("raised: "))
    assert " Nodes=w[1-4] " in partition and " TotalNodes=4 " in partition, partition
    assert " Nodes=w[1-6] " in raised and " TotalNodes=6 " in raised, raised
    assert "power_down_force rc 0" in out  # what the report program asks for a worker whose server is gone
    assert "State=IDLE+CLOUD+POWERED_DOWN" in out, out
    assert "CPUTot=4" in out and "RealMemory=13824" in out
    assert ("Gres=gpu:1" in out) == bool(gpus)
    config = {line.split("=", 1)[0].strip(): line.split("=", 1)[1].strip() for line in out.splitlines()
              if " = " in line}
    assert config["SuspendTime"] == "420 sec"
    assert config["ResumeProgram"].endswith("/portal-resume")
    assert config["SuspendProgram"].endswith("/portal-suspend") and config["ResumeFailProgram"].endswith(
        "/portal-suspend")
    assert "cloud" in config["PrivateData"]
    assert "idle_on_node_suspend" in config["SlurmctldParameters"]


# --- the metadata fence, run for real ----------------------------------------------------------

FETCH = ("import sys, urllib.request\n"
         "try:\n"
         "    print(urllib.request.urlopen('http://169.254.169.254:8775/', timeout=3).status)\n"
         "except OSError as error:\n"
         "    print('refused', error)\n")


@pytest.mark.parametrize("family", [ImageFamily.UBUNTU, ImageFamily.ROCKY])
def test_only_root_on_a_node_can_read_its_user_data_from_the_metadata_service(family):
    """The user data holds the munge key and the cluster's token: the first boot command fences the
    metadata service off from every user but root. Run here in a network namespace of its own, with
    a stand-in metadata service on 169.254.169.254 and Debian's nftables."""
    if os.geteuid() != 0 or not (shutil.which("nft") or Path("/usr/sbin/nft").exists()):
        pytest.skip("needs root and nftables (scripts/ensure-slurm.sh)")
    cluster = make_cluster(family)
    for data in (rendering.head_user_data(cluster, token="t"), rendering.worker_user_data(cluster, node="w1")):
        fence = yaml.safe_load(data)["bootcmd"][0]
        assert fence[:2] == ["sh", "-c"] and "169.254.169.254" in fence[2]
    import tempfile

    tmp_path = Path(tempfile.mkdtemp(prefix="portal-fence-"))  # pytest's own is closed to other users
    tmp_path.chmod(0o755)
    (tmp_path / "fetch.py").write_text(FETCH)
    (tmp_path / "fence.sh").write_text(fence[2])
    script = f"""
        set -e
        export PATH=/usr/sbin:/usr/bin:/sbin:/bin
        ip link set lo up && ip addr add 169.254.169.254/32 dev lo
        python3 -m http.server --bind 169.254.169.254 8775 --directory {tmp_path} >/dev/null 2>&1 &
        server=$!
        for i in $(seq 50); do python3 {tmp_path}/fetch.py | grep -q 200 && break; sleep 0.1; done
        echo "before: $(setpriv --reuid=65534 --regid=65534 --clear-groups python3 {tmp_path}/fetch.py)"
        sh {tmp_path}/fence.sh && sh {tmp_path}/fence.sh
        echo "root: $(python3 {tmp_path}/fetch.py)"
        echo "user: $(setpriv --reuid=65534 --regid=65534 --clear-groups python3 {tmp_path}/fetch.py)"
        kill $server
    """
    done = subprocess.run(["unshare", "-n", "sh", "-c", script], capture_output=True, text=True, timeout=60)
    shutil.rmtree(tmp_path, ignore_errors=True)
    lines = dict(line.split(": ", 1) for line in done.stdout.splitlines() if ": " in line)
    assert done.returncode == 0, done.stderr
    assert lines["before"] == "200", done.stdout  # without the fence any user reads it
    assert lines["root"] == "200", done.stdout  # cloud-init (root) still reads it, at every boot
    assert lines["user"].startswith("refused"), done.stdout + done.stderr  # a cluster user does not
