"""The ready templates every educator may start from (seeded by migration 0002; their user data
is validated with `cloud-init schema` by the tests)."""

JUPYTER = """#!/bin/bash
# JupyterLab for {{ student.username }}, on the seat's own address only: reach it with
#   ssh -L 8888:localhost:8888 {{ student.username }}@<seat address>   then open http://localhost:8888
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
apt-get update -q && apt-get install -y -q python3-venv
python3 -m venv /opt/jupyterlab && /opt/jupyterlab/bin/pip install -q jupyterlab
cat > /etc/systemd/system/jupyterlab.service <<'UNIT'
[Unit]
Description=JupyterLab for {{ student.username }}
After=network-online.target

[Service]
User={{ student.username }}
WorkingDirectory=/home/{{ student.username }}
ExecStart=/opt/jupyterlab/bin/jupyter lab --ip=127.0.0.1 --port=8888 --no-browser --ServerApp.token=''
Restart=on-failure

[Install]
WantedBy=multi-user.target
UNIT
systemctl daemon-reload && systemctl enable --now jupyterlab
"""

RSTUDIO = """#!/bin/bash
# R and RStudio Server for {{ student.username }}: http://<seat address>:8787, sign in as
# {{ student.username }} with the password on your class page.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
apt-get update -q && apt-get install -y -q r-base gdebi-core wget
wget -q -O /tmp/rstudio-server.deb https://download2.rstudio.org/server/jammy/amd64/rstudio-server-2024.12.1-563-amd64.deb
gdebi -n /tmp/rstudio-server.deb && rm -f /tmp/rstudio-server.deb
systemctl enable --now rstudio-server
"""

TEMPLATES = [
    {"name": "Ubuntu 24.04", "image_name": "Featured-Ubuntu24", "flavor_name": "m3.small", "boot_script": "",
     "access": "both", "ports": [],
     "description": "A plain Ubuntu 24.04 machine per student: a Linux account with their SSH key and a password."},
    {"name": "Ubuntu 24.04 + JupyterLab", "image_name": "Featured-Ubuntu24", "flavor_name": "m3.small",
     "boot_script": JUPYTER, "access": "both", "ports": [],
     "description": "JupyterLab running as the student, reached through an SSH tunnel (port 8888)."},
    {"name": "R + RStudio Server", "image_name": "Featured-Ubuntu24", "flavor_name": "m3.quad",
     "boot_script": RSTUDIO, "access": "password", "ports": [8787],
     "description": "R and RStudio Server on port 8787; students sign in with their generated password."},
]


def templates_seed(model=None) -> None:
    """Make (or bring back to their seeded form) the ready templates. `model`: the migration's
    historical ClassTemplate; the app's own otherwise (tests whose database was flushed call it)."""
    if model is None:
        from .models import ClassTemplate as model
    for fields in TEMPLATES:
        model.objects.update_or_create(name=fields["name"], defaults={**fields, "builtin": True})
