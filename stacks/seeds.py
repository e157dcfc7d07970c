"""The templates every member may start a stack from (seeded by migration 0002). Each makes the
private network it needs, so it works in a project that has none yet; images and flavors are the
cloud's own (Featured images, m3 flavors), offered as parameters with sensible defaults."""

SERVER_AND_VOLUME = """\
heat_template_version: "2021-04-16"
description: One server on a private network of its own, with a data volume attached.

parameter_groups:
  - label: Server
    description: The machine and what it boots.
    parameters: [flavor, image]
  - label: Storage
    parameters: [volume_size]

parameters:
  flavor:
    type: string
    label: Flavor
    description: Its size (m3.tiny is 1 vCPU, 3 GB; m3.small 2 vCPUs, 6 GB; m3.quad 4 vCPUs, 15 GB).
    default: m3.small
    constraints:
      - allowed_values: [m3.tiny, m3.small, m3.quad]
        description: Choose m3.tiny, m3.small or m3.quad.
  image:
    type: string
    label: Image
    description: A Featured image of the cloud, by name.
    default: Featured-Ubuntu24
    constraints:
      - custom_constraint: glance.image
  volume_size:
    type: number
    label: Volume size (GB)
    description: The data volume attached to the server.
    default: 10
    constraints:
      - range: {min: 1, max: 500}
        description: A volume of 1 to 500 GB.

resources:
  network:
    type: OS::Neutron::Net
  subnet:
    type: OS::Neutron::Subnet
    properties:
      network: {get_resource: network}
      cidr: 10.40.0.0/24
  server:
    type: OS::Nova::Server
    depends_on: subnet
    properties:
      image: {get_param: image}
      flavor: {get_param: flavor}
      networks: [{network: {get_resource: network}}]
  data:
    type: OS::Cinder::Volume
    properties:
      size: {get_param: volume_size}
  data_attached:
    type: OS::Cinder::VolumeAttachment
    properties:
      instance_uuid: {get_resource: server}
      volume_id: {get_resource: data}

outputs:
  server_id:
    description: The server's id in Nova.
    value: {get_resource: server}
  address:
    description: The server's address on the stack's network.
    value: {get_attr: [server, first_address]}
  volume_id:
    description: The data volume's id in Cinder.
    value: {get_resource: data}
"""

TWO_SERVERS = """\
heat_template_version: "2021-04-16"
description: Two servers (or up to four) on a private network they share, each told the database password.

parameter_groups:
  - label: Servers
    parameters: [server_count, flavor, image]
  - label: Network
    parameters: [cidr]
  - label: Secrets
    description: Hidden values are sent to Heat only; the portal does not keep them.
    parameters: [db_password]

parameters:
  server_count:
    type: number
    label: Servers
    description: How many servers share the network.
    default: 2
    constraints:
      - range: {min: 1, max: 4}
        description: From 1 to 4 servers.
  flavor:
    type: string
    label: Flavor
    description: The size of each server.
    default: m3.tiny
    constraints:
      - allowed_values: [m3.tiny, m3.small, m3.quad]
        description: Choose m3.tiny, m3.small or m3.quad.
  image:
    type: string
    label: Image
    default: Featured-Ubuntu24
    constraints:
      - custom_constraint: glance.image
  cidr:
    type: string
    label: Network range
    description: The private network's IPv4 range.
    default: 10.50.0.0/24
    constraints:
      - allowed_pattern: "10\\\\.[0-9]{1,3}\\\\.[0-9]{1,3}\\\\.0/24"
        description: A /24 range within 10.0.0.0/8, such as 10.50.0.0/24.
  db_password:
    type: string
    label: Database password
    description: Written to /etc/stack/db.env on each server (readable by root only).
    hidden: true
    constraints:
      - length: {min: 8, max: 64}
        description: 8 to 64 characters.
      - allowed_pattern: "[A-Za-z0-9]+"
        description: Letters and digits only.

resources:
  network:
    type: OS::Neutron::Net
  subnet:
    type: OS::Neutron::Subnet
    properties:
      network: {get_resource: network}
      cidr: {get_param: cidr}
  servers:
    type: OS::Heat::ResourceGroup
    depends_on: subnet
    properties:
      count: {get_param: server_count}
      resource_def:
        type: OS::Nova::Server
        properties:
          name: {list_join: ["-", [{get_param: "OS::stack_name"}, "node", "%index%"]]}
          image: {get_param: image}
          flavor: {get_param: flavor}
          networks: [{network: {get_resource: network}}]
          user_data_format: RAW
          user_data:
            str_replace:
              template: |
                #cloud-config
                write_files:
                  - path: /etc/stack/db.env
                    permissions: "0600"
                    content: "DB_PASSWORD=$password\\n"
              params:
                $password: {get_param: db_password}

outputs:
  addresses:
    description: Each server's address on the shared network.
    value: {get_attr: [servers, first_address]}
  server_ids:
    description: The servers' ids in Nova.
    value: {get_attr: [servers, refs]}
"""

TEMPLATES = [
    {"name": "Server + volume", "template": SERVER_AND_VOLUME,
     "description": "One server on a private network of its own, with a data volume attached."},
    {"name": "Two servers on a private network", "template": TWO_SERVERS,
     "description": "Two servers (up to four) sharing a private network; a hidden database password "
                    "is written to each."},
]


def templates_seed(model=None) -> None:
    """Make (or bring back to their seeded form) the library's templates. `model`: the migration's
    historical StackTemplate; the app's own otherwise (tests whose database was flushed call it)."""
    if model is None:
        from .models import StackTemplate as model
    for fields in TEMPLATES:
        model.objects.update_or_create(name=fields["name"], defaults={**fields, "builtin": True})
