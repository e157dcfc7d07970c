"""Writes: launching, acting on servers and volumes, keys, and keeping the mirror fresh."""
from .actions import ACTIONS, ActionNotAllowed, action_refusal, action_run, actions_available, instance_act
from .keys import public_key_fingerprint, ssh_key_create, ssh_key_delete
from .launch import instance_launch, instance_launch_from_form, launch_provision, launch_requests_resume, security_group_ensure_default
from .sync import instance_refresh, instances_upsert, project_sync, volume_refresh, volumes_upsert
from . import network_admin, volumes
from .volumes import volume_act, volume_action_refusal, volume_action_run, volume_create_request

__all__ = [
    "ACTIONS", "ActionNotAllowed", "action_refusal", "action_run", "actions_available", "instance_act",
    "public_key_fingerprint", "ssh_key_create", "ssh_key_delete", "instance_launch", "instance_launch_from_form", "launch_provision",
    "launch_requests_resume", "security_group_ensure_default", "instance_refresh", "instances_upsert",
    "project_sync", "volume_refresh", "volumes_upsert", "volume_act", "volume_action_refusal",
    "volume_action_run", "volume_create_request",
]
