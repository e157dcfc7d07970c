#!/usr/bin/env bash
# The cluster tests (clusters/, issue 10) check what the portal renders with real tools: Debian's
# cloud-init validates the head's and workers' user data, nftables runs their metadata fence, and
# slurm-wlm's slurmctld (with munge) reads the rendered slurm.conf and runs the elastic loop. Installed only when missing.
set -euo pipefail
need=()
command -v cloud-init >/dev/null 2>&1 || need+=(cloud-init)
command -v slurmctld >/dev/null 2>&1 || need+=(slurm-wlm)
command -v munged >/dev/null 2>&1 || need+=(munge)
# nftables: the test that the nodes' metadata fence (their first boot command) keeps users out
command -v nft >/dev/null 2>&1 || [ -x /usr/sbin/nft ] || need+=(nftables)
[ ${#need[@]} -eq 0 ] && exit 0
[ "$(id -u)" = 0 ] || { echo "ensure-slurm: install Debian's ${need[*]} (needs root)" >&2; exit 1; }
echo "ensure-slurm: installing Debian's ${need[*]}"
apt-get update -qq
# Only the packages: no service of theirs is started here (the tests start their own daemons).
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
