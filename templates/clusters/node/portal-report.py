{% autoescape off %}#!/usr/bin/python3
"""Reports cluster "{{ cluster.name }}"'s nodes and jobs to the research cloud portal (run every
30 s by portal-report.timer): what `sinfo` says of each node and `squeue` of each job.

The portal answers with what Slurm should change: the batch partition's nodes (its "max workers",
which a member may raise or lower on the cluster's page) and the nodes to return to service (held
DOWN after a refused resume, now that the allocation can carry them) and those whose server was
deleted outside the cluster, to power down."""
import json
import os
import subprocess
import urllib.request

PORTAL = {{ portal_url_json }}
CLUSTER = {{ cluster.pk }}
TOKEN_FILE = {{ token_file_json }}
SINFO = {{ sinfo_json }}
SQUEUE = {{ squeue_json }}
SLURM_CONF = {{ conf_json }}
SCONTROL = {{ scontrol_json }}


def rows(command):
    done = subprocess.run(command, capture_output=True, text=True, check=True,
                          env={**os.environ, "SLURM_CONF": SLURM_CONF})
    return [line.split("|") for line in done.stdout.splitlines() if line.strip()]


def scontrol(*args, check=True):
    return subprocess.run([SCONTROL, *args], capture_output=True, text=True, check=check,
                          env={**os.environ, "SLURM_CONF": SLURM_CONF}).stdout


def apply(answer):
    wanted = answer.get("partition_nodes")
    if wanted:
        shown = scontrol("show", "partition", answer.get("partition", "batch"), "-o")
        current = next((f.split("=", 1)[1] for f in shown.split() if f.startswith("Nodes=")), "")
        if current != wanted:
            scontrol("update", f"partitionname={answer.get('partition', 'batch')}", f"nodes={wanted}")
    for node in answer.get("resume", []):
        scontrol("update", f"nodename={node}", "state=resume", check=False)
    for node in answer.get("power_down", []):  # its server is gone: requeue its jobs, forget the server
        scontrol("update", f"nodename={node}", "state=power_down_force", check=False)


def main():
    nodes = [{"name": n, "state": s, "reason": r} for n, s, r in rows([SINFO, "-h", "-N", "-o", "%N|%T|%E"])]
    jobs = [{"id": i, "state": s, "user": u, "name": n, "nodes": c}
            for i, s, u, n, c in rows([SQUEUE, "-h", "-o", "%i|%T|%u|%j|%D"])]
    with open(TOKEN_FILE) as f:
        token = f.read().strip()
    request = urllib.request.Request(
        f"{PORTAL}/api/v1/clusters/{CLUSTER}/report/", data=json.dumps({"nodes": nodes, "jobs": jobs}).encode(),
        method="POST", headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        body = response.read()
    apply(json.loads(body) if body else {})


if __name__ == "__main__":
    main()
{% endautoescape %}
