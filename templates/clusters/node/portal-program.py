{% autoescape off %}#!/usr/bin/python3
"""{{ action|capfirst }}Program of cluster "{{ cluster.name }}" (rendered by the research cloud portal).

slurmctld runs it with a Slurm host list ("w[1-3]"). For each node it asks the portal to
{% if action == "resume" %}make the node's server. When the portal refuses (the allocation cannot
carry it), the node is marked DOWN with the portal's words, so `sinfo -R` says why.{% else %}delete the node's server.{% endif %}
The token in {{ paths.token_file }} (mode 0400, owner {{ paths.slurm_user }}) reaches only this cluster.
"""
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request

PORTAL = {{ portal_url_json }}
CLUSTER = {{ cluster.pk }}
ACTION = "{{ action }}"
TOKEN_FILE = {{ token_file_json }}
SCONTROL = {{ scontrol_json }}
SLURM_CONF = {{ conf_json }}
LOG = {{ log_file_json }}


def log(message):
    try:
        with open(LOG, "a") as out:
            out.write(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {ACTION}: {message}\n")
    except OSError:
        pass  # slurmctld closed our stdio; a log we cannot write must not stop the call


def scontrol(*args, check=False):
    env = {**os.environ, "SLURM_CONF": SLURM_CONF}
    return subprocess.run([SCONTROL, *args], capture_output=True, text=True, check=check, env=env)


def node_names(hostlist):
    return scontrol("show", "hostnames", hostlist, check=True).stdout.split()


def call(node):
    with open(TOKEN_FILE) as f:
        token = f.read().strip()
    request = urllib.request.Request(
        f"{PORTAL}/api/v1/clusters/{CLUSTER}/nodes/{node}/{ACTION}/", data=b"{}", method="POST",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        try:
            return error.code, json.load(error)
        except ValueError:
            return error.code, {}
    except (OSError, ValueError) as error:
        return 0, {"detail": f"the portal did not answer ({error})"}


def main():
    os.environ.setdefault("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")  # slurmctld gives its programs none
    for node in node_names(sys.argv[1]):
        status, body = call(node)
        log(f"{node}: {status} {body.get('detail') or body.get('state') or ''}")
        if ACTION == "resume" and not 200 <= status < 300:
            reason = " ".join((body.get("detail") or f"the portal answered {status}").split())[:250]
            scontrol("update", f"nodename={node}", "state=down", f"reason={reason}")


if __name__ == "__main__":
    main()
{% endautoescape %}
