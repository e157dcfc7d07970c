"""devcloud's compute driver: nova's FakeDriver, restartable and big.

Installed by devcloud/devcloud as nova/virt/devcloud_fake.py, because nova loads
``compute_driver`` only from inside the nova.virt package
(``compute_driver = devcloud_fake.DevcloudFakeDriver``).

The stock FakeDriver makes up a new compute node UUID in every process, so a restarted
nova-compute finds "no local node identity" and then a duplicate compute node record. Here the
node UUID is the persistent one nova keeps in ``$state_path/compute_id``.
"""

import nova.virt.node
from nova.compute import power_state
from nova.virt import fake


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
