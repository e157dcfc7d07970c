"""Writes: launching, acting on servers and volumes, keys, and keeping the mirror fresh."""
from . import network_admin, volumes
from .actions import (
    ACTIONS,
    ActionNotAllowed,
    action_refusal,
    action_run,
    actions_available,
    cloud_action_give_up,
    cloud_actions_resume,
    instance_act,
)
from .keys import public_key_fingerprint, ssh_key_create, ssh_key_delete
from .launch import (
    instance_launch,
    instance_launch_from_form,
    instance_launch_many,
    launch_give_up,
    launch_provision,
    launch_requests_resume,
    security_group_ensure_default,
)
from .sync import instance_refresh, instances_upsert, project_sync, volume_refresh, volumes_upsert
from .volumes import volume_act, volume_action_refusal, volume_action_run, volume_create_request

__all__ = [
    "ACTIONS", "ActionNotAllowed", "action_refusal", "action_run", "actions_available", "cloud_action_give_up",
    "cloud_actions_resume", "instance_act", "instance_launch", "instance_launch_from_form", "instance_launch_many",
    "instance_refresh",
    "instances_upsert", "launch_give_up", "launch_provision", "launch_requests_resume", "network_admin",
    "project_sync", "public_key_fingerprint", "security_group_ensure_default", "ssh_key_create", "ssh_key_delete",
    "volume_act", "volume_action_refusal", "volume_action_run", "volume_create_request", "volume_refresh",
    "volumes", "volumes_upsert",
]
