"""devcloud's compute driver: nova's FakeDriver, restartable, big, and quick with hundreds of servers.

Installed by devcloud/devcloud as nova/virt/devcloud_fake.py, because nova loads
``compute_driver`` only from inside the nova.virt package
(``compute_driver = devcloud_fake.DevcloudFakeDriver``).

The stock FakeDriver makes up a new compute node UUID in every process, so a restarted
nova-compute finds "no local node identity" and then a duplicate compute node record. Here the
node UUID is the persistent one nova keeps in ``$state_path/compute_id``.
"""

import nova.conf
import nova.virt.node
from nova.compute import power_state
from nova.scheduler.client import report
from nova.virt import fake

CONF = nova.conf.CONF
_allocations_for_provider_tree = report.SchedulerReportClient.get_allocations_for_provider_tree


def _allocations_only_when_used(self, context, nodename):
    """Nova 34's resource tracker fetches every allocation on the host, one GET per server, on every
    claim, delete and periodic update, under the lock that serialises them all; only a reshape and PCI
    tracking in Placement use them. On this one big host that is O(servers) per build: with 500 servers a
    claim took ~25 s. Neither happens here (the fake driver never reshapes; [pci] report_in_placement is off),
    so fetch them only when PCI tracking would use them."""
    if CONF.pci.report_in_placement:
        return _allocations_for_provider_tree(self, context, nodename)
    return {}


report.SchedulerReportClient.get_allocations_for_provider_tree = _allocations_only_when_used


class DevcloudFakeDriver(fake.FakeDriver):
    # One big fake hypervisor: hundreds of small servers, and r3.xl (128 vCPU, 1000 GB) fits.
    vcpus = 2048
    memory_mb = 8 * 1024 * 1024  # 8 TiB
    local_gb = 200 * 1024  # 200 TiB

    def init_host(self, host):
        self._host = host
        self._set_nodes([host])

    def get_nodenames_by_uuid(self, refresh=False):
        return {nova.virt.node.get_local_node_uuid(): self.get_available_nodes()[0]}

    def get_available_resource(self, nodename):
        resources = super().get_available_resource(nodename)
        if resources:
            resources["uuid"] = nova.virt.node.get_local_node_uuid()
        return resources

    # Servers live in this process's memory only. After a restart nova-compute still has servers
    # in its database that this driver never spawned: adopt them on first touch, in the power
    # state the database gives, so that stop/start/reboot/snapshot keep working on them.
    def _adopt(self, instance):
        if instance.uuid not in self.instances:
            state = instance.power_state or power_state.RUNNING
            self.instances[instance.uuid] = fake.FakeInstance(instance.name, state, instance.uuid)

    def get_info(self, instance, use_cache=True):
        self._adopt(instance)
        return super().get_info(instance, use_cache=use_cache)

    def power_off(self, instance, *args, **kwargs):
        self._adopt(instance)
        return super().power_off(instance, *args, **kwargs)

    def power_on(self, context, instance, *args, **kwargs):
        self._adopt(instance)
        return super().power_on(context, instance, *args, **kwargs)

    def reboot(self, context, instance, *args, **kwargs):
        self._adopt(instance)
        return super().reboot(context, instance, *args, **kwargs)

    def snapshot(self, context, instance, *args, **kwargs):
        self._adopt(instance)
        return super().snapshot(context, instance, *args, **kwargs)

    def unrescue(self, context, instance, *args, **kwargs):
        self._adopt(instance)
        return super().unrescue(context, instance, *args, **kwargs)
