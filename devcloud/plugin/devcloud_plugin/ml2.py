"""An ML2 mechanism driver that binds every port at once.

The devcloud runs no L2 agent, so the stock drivers never bind a port and Nova would wait
forever. This driver binds the port to the first segment it is offered, as an OVS port that is
ACTIVE straight away. Networks, subnets, routers, floating IPs and security groups keep their
real Neutron behaviour (all in the database); nothing is plumbed on the host.
"""

from neutron_lib import constants
from neutron_lib.api.definitions import portbindings
from neutron_lib.plugins.ml2 import api


class DevcloudMechanismDriver(api.MechanismDriver):
    def initialize(self):
        pass

    @property
    def connectivity(self):
        return portbindings.CONNECTIVITY_L2

    def bind_port(self, context):
        for segment in context.segments_to_bind:
            context.set_binding(
                segment[api.ID],
                portbindings.VIF_TYPE_OVS,
                {portbindings.CAP_PORT_FILTER: True, portbindings.OVS_HYBRID_PLUG: False},
                status=constants.PORT_STATUS_ACTIVE,
            )
            return
