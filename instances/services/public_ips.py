"""The public IP a launch or an "assign public IP" action makes for a server: made once per tag,
whatever the retries.

A create can time out while Neutron still makes the address; the retry, finding none yet, makes a
second. So the address is looked up by its tag before a create, and again once it is associated:
any other address with the same tag is released then (it would hold the project's quota and
nobody would know what it was for)."""
from __future__ import annotations

import logging

from portal.cloud import network
from portal.cloud.connection import Scope
from portal.cloud.errors import CloudError, CloudUnavailable

logger = logging.getLogger(__name__)


def floating_ip_for_tag(*, scope: Scope, tag: str, external_network_id: str) -> network.FloatingIP:
    """The address made for `tag`: the one found (one already associated first), else a new one."""
    found = network.floating_ip_tagged_list(scope=scope, description=tag)
    if not found:
        return network.floating_ip_create(scope=scope, external_network_id=external_network_id, description=tag)
    return next((f for f in found if f.port_id), found[0])


def floating_ip_duplicates_release(*, scope: Scope, tag: str, keep_id: str) -> list[str]:
    """Release every address tagged `tag` but `keep_id` (left by a create that timed out and got
    through); returns their addresses. A failure is logged, not raised: the server has its address."""
    released = []
    try:
        for extra in network.floating_ip_tagged_list(scope=scope, description=tag):
            if extra.id != keep_id and not extra.port_id:
                network.floating_ip_delete(scope=scope, floating_ip_id=extra.id)
                released.append(extra.address)
    except CloudUnavailable:
        raise
    except CloudError as exc:
        logger.warning("public IPs tagged %s not checked for duplicates: %s", tag, exc.detail or exc)
    if released:
        logger.warning("released %s: a second public IP for %s (a create that timed out got through)",
                       ", ".join(released), tag)
    return released
