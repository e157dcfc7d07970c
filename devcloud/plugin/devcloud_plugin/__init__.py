"""Plugins that let real OpenStack services run on one machine without agents or hypervisors."""
