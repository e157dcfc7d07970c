"""Configuration files of the devcloud, rendered from these templates on every `up`.

Stdlib only: imported by devcloud/devcloud, which runs on the machine's python3.
"""

PORTS = {
    "mysql": 13306,
    "rabbitmq": 15673,
    "rabbitmq-dist": 25673,
    "epmd": 14369,
    "keystone": 15000,
    "placement": 18778,
    "nova-api": 18774,
    "glance": 19292,
    "cinder-api": 18776,
    "neutron": 19696,
    "heat-api": 18004,
}
# RegionTwo (`devcloud up --regions 2`): RegionOne's port + 10000, so the last four digits stay OpenStack's
# usual ones (8774 Nova, 8778 Placement, 9292 Glance, 8776 Cinder, 9696 Neutron).
PORTS2 = {
    "placement": 28778,
    "nova-api": 28774,
    "glance": 29292,
    "cinder-api": 28776,
    "neutron": 29696,
}

REGION = "RegionOne"
HOST = "devcloud"  # the compute/volume host name
# RegionTwo: same Keystone, MariaDB and RabbitMQ broker; its own services, host, databases and vhost.
REGION2 = "RegionTwo"
HOST2 = "devcloud-r2"
VHOST2 = "regiontwo"  # RabbitMQ virtual host: RegionTwo's RPC never meets RegionOne's
DB_PREFIX2 = "r2_"
DATABASES2 = [DB_PREFIX2 + d for d in ("placement", "nova_api", "nova_cell0", "nova", "glance", "cinder", "neutron")]
FLOATING2 = "198.51.100"  # RegionTwo's public network: 198.51.100.0/24 (RegionOne: 203.0.113.0/24)
ADMIN_PASSWORD = "devcloud-admin"
SERVICE_PASSWORD = "devcloud-service"
# The portal's own service identity (no admin role anywhere; see seed.py portal_identity).
PORTAL_USER = "portal-service"
PORTAL_PASSWORD = "devcloud-portal"
PORTAL_PROJECT = "portal"
DB_USER = "devcloud"
DB_PASSWORD = "devcloud-db"
DATABASES = ["keystone", "placement", "nova_api", "nova_cell0", "nova", "glance", "cinder", "neutron", "heat"]
# Heat's stack domain: the users Heat makes for stacks (wait conditions, software config) live there.
HEAT_DOMAIN = "heat"
HEAT_DOMAIN_ADMIN = "heat_domain_admin"


def ctx(var, venv, region=1):
    """The values the templates use; region=2: RegionTwo's (own ports, host, databases, vhost, etc/ and data/)."""
    p = PORTS if region == 1 else {**PORTS, **PORTS2}
    sub = "" if region == 1 else "/regiontwo"
    c = {
        "var": var,
        "venv": venv,
        "etc": f"{var}/etc{sub}",
        "data": f"{var}/data{sub}",
        "run": f"{var}/run",
        "log": f"{var}/log",
        "region": REGION if region == 1 else REGION2,
        "regions": f"[{REGION}, {REGION2}]",
        "host": HOST if region == 1 else HOST2,
        "service_password": SERVICE_PASSWORD,
        "keystone_url": f"http://127.0.0.1:{p['keystone']}/v3",
        "transport_url": f"rabbit://guest:guest@127.0.0.1:{p['rabbitmq']}/" + ("" if region == 1 else VHOST2),
        **{k.replace("-", "_") + "_port": v for k, v in p.items()},
    }
    prefix = "" if region == 1 else DB_PREFIX2
    c["db"] = f"mysql+pymysql://{DB_USER}:{DB_PASSWORD}@127.0.0.1:{p['mysql']}/{prefix}{{}}?charset=utf8"
    return c


def _auth(c, user, section, extra=""):
    return f"""
[{section}]
auth_type = password
auth_url = {c['keystone_url']}
project_domain_name = Default
user_domain_name = Default
project_name = service
username = {user}
password = {c['service_password']}
region_name = {c['region']}
{extra}"""


def _authtoken(c, user):
    return _auth(c, user, "keystone_authtoken", f"www_authenticate_uri = {c['keystone_url']}\ninterface = public\n")


MY_CNF = """\
[client]
socket = {run}/mysqld.sock
port = {mysql_port}

[mysqld]
user = root
datadir = {data}/mysql
socket = {run}/mysqld.sock
pid-file = {run}/mysqld.pid
port = {mysql_port}
bind-address = 127.0.0.1
skip-name-resolve
skip-log-bin
character-set-server = utf8
collation-server = utf8_general_ci
innodb_flush_log_at_trx_commit = 0
innodb_doublewrite = 0
innodb_buffer_pool_size = 128M
innodb_log_file_size = 48M
performance_schema = OFF
max_connections = 2000
max_allowed_packet = 64M
"""

RABBITMQ_CONF = """\
listeners.tcp.default = 127.0.0.1:{rabbitmq_port}
distribution.listener.interface = 127.0.0.1
distribution.listener.port_range.min = {rabbitmq_dist_port}
distribution.listener.port_range.max = {rabbitmq_dist_port}
loopback_users.guest = true
log.console = true
log.console.level = warning
log.file = false
vm_memory_high_watermark.absolute = 512MB
disk_free_limit.absolute = 50MB
"""


def keystone_conf(c):
    return f"""\
[DEFAULT]
use_stderr = true

[database]
connection = {c['db'].format('keystone')}

[token]
provider = fernet

[fernet_tokens]
key_repository = {c['etc']}/keystone/fernet-keys

[fernet_receipts]
key_repository = {c['etc']}/keystone/fernet-keys

[credential]
key_repository = {c['etc']}/keystone/credential-keys

[identity]
# bcrypt at its minimum cost: tests make a user per test.
password_hash_rounds = 4

[cache]
# One keystone process: an in-process cache is coherent, and token validation gets ~10x cheaper.
enabled = true
backend = dogpile.cache.memory
expiration_time = 600
"""


def placement_conf(c):
    return f"""\
[DEFAULT]
use_stderr = true

[api]
auth_strategy = keystone

[placement_database]
connection = {c['db'].format('placement')}
{_authtoken(c, 'placement')}
"""


def nova_conf(c):
    return f"""\
[DEFAULT]
host = {c['host']}
my_ip = 127.0.0.1
use_stderr = true
state_path = {c['data']}/nova
instances_path = {c['data']}/nova/instances
compute_driver = devcloud_fake.DevcloudFakeDriver
transport_url = {c['transport_url']}
reserved_host_memory_mb = 0
reserved_host_disk_mb = 0
initial_cpu_allocation_ratio = 1.0
initial_ram_allocation_ratio = 1.0
initial_disk_allocation_ratio = 1.0
# The fake hypervisor keeps servers in memory only: never let a restart stop them.
sync_power_state_interval = -1
heal_instance_info_cache_interval = -1
instance_usage_audit = false
resume_guests_state_on_host_boot = false
graceful_shutdown_timeout = 3
# One compute host: resizes must be allowed to land on the host the server is on.
allow_resize_to_same_host = true

[api]
auth_strategy = keystone

[wsgi]
api_paste_config = {c['etc']}/nova/api-paste.ini

[api_database]
connection = {c['db'].format('nova_api')}

[database]
connection = {c['db'].format('nova')}
{_authtoken(c, 'nova')}
{_auth(c, 'nova', 'service_user', 'send_service_user_token = true')}
{_auth(c, 'nova', 'placement', 'valid_interfaces = public')}
{_auth(c, 'nova', 'neutron', 'valid_interfaces = public')}
{_auth(c, 'nova', 'cinder', 'os_region_name = ' + c['region'])}
[glance]
valid_interfaces = public
region_name = {c['region']}

[scheduler]
discover_hosts_in_cells_interval = 5
workers = 1

[conductor]
workers = 1

[quota]
instances = 100
cores = 2000
ram = 8388608

[oslo_concurrency]
lock_path = {c['data']}/nova/lock

[oslo_messaging_rabbit]
rabbit_retry_interval = 1
rabbit_retry_backoff = 1
rabbit_interval_max = 2

[oslo_messaging_notifications]
driver = noop

[vnc]
enabled = false

[spice]
enabled = false

[os_vif_ovs]
ovsdb_connection = tcp:127.0.0.1:1
"""


def glance_conf(c):
    return f"""\
[DEFAULT]
use_stderr = true
enabled_backends = fs:file
enabled_import_methods = [glance-direct]

[glance_store]
default_backend = fs

[fs]
filesystem_store_datadir = {c['data']}/glance/images/

[os_glance_staging_store]
filesystem_store_datadir = {c['data']}/glance/staging/

[os_glance_tasks_store]
filesystem_store_datadir = {c['data']}/glance/tasks/

[database]
connection = {c['db'].format('glance')}
{_authtoken(c, 'glance')}
[paste_deploy]
flavor = keystone

[oslo_concurrency]
lock_path = {c['data']}/glance/lock
"""


def cinder_conf(c):
    return f"""\
[DEFAULT]
host = {c['host']}
my_ip = 127.0.0.1
use_stderr = true
state_path = {c['data']}/cinder
transport_url = {c['transport_url']}
auth_strategy = keystone
api_paste_config = {c['etc']}/cinder/api-paste.ini
enabled_backends = fake
default_volume_type = default
graceful_shutdown_timeout = 3
glance_api_servers = http://127.0.0.1:{c['glance_port']}
quota_volumes = 100
quota_gigabytes = 100000

[fake]
volume_driver = devcloud_plugin.cinder_fake.DevcloudFakeVolumeDriver
volume_backend_name = fake

[database]
connection = {c['db'].format('cinder')}
{_authtoken(c, 'cinder')}
{_auth(c, 'cinder', 'nova', 'interface = public')}
{_auth(c, 'cinder', 'service_user', 'send_service_user_token = true')}
[oslo_concurrency]
lock_path = {c['data']}/cinder/lock

[oslo_messaging_rabbit]
rabbit_retry_interval = 1
rabbit_retry_backoff = 1
rabbit_interval_max = 2

[coordination]
backend_url = file://{c['data']}/cinder/coordination

[oslo_messaging_notifications]
driver = noop
"""


def neutron_conf(c):
    return f"""\
[DEFAULT]
host = {c['host']}
use_stderr = true
state_path = {c['data']}/neutron
core_plugin = ml2
service_plugins = router
auth_strategy = keystone
transport_url = {c['transport_url']}
api_paste_config = {c['etc']}/neutron/api-paste.ini
api_workers = 1
rpc_workers = 0
rpc_state_report_workers = 0
dhcp_agent_notification = false
notify_nova_on_port_status_changes = true
notify_nova_on_port_data_changes = true
allow_overlapping_ips = true
router_distributed = false
l3_ha = false

[database]
connection = {c['db'].format('neutron')}
{_authtoken(c, 'neutron')}
{_auth(c, 'neutron', 'nova', 'interface = public')}
[oslo_messaging_rabbit]
rabbit_retry_interval = 1
rabbit_retry_backoff = 1
rabbit_interval_max = 2

[ml2]
type_drivers = flat,vlan,vxlan
tenant_network_types = vxlan
mechanism_drivers = devcloud
extension_drivers = port_security

[ml2_type_flat]
flat_networks = *

[ml2_type_vlan]
network_vlan_ranges = physnet1:100:199

[ml2_type_vxlan]
vni_ranges = 1:10000

[securitygroup]
enable_security_group = true

[quotas]
quota_network = 100
quota_subnet = 100
quota_port = 1000
quota_router = 50
quota_floatingip = 100

[oslo_concurrency]
lock_path = {c['data']}/neutron/lock

[oslo_messaging_notifications]
driver = noop
"""


def heat_conf(c):
    return f"""\
[DEFAULT]
use_stderr = true
transport_url = {c['transport_url']}
region_name_for_services = {c['region']}
num_engine_workers = 1
stack_user_domain_name = {HEAT_DOMAIN}
stack_domain_admin = {HEAT_DOMAIN_ADMIN}
stack_domain_admin_password = {c['service_password']}
heat_metadata_server_url = http://127.0.0.1:{c['heat_api_port']}
heat_waitcondition_server_url = http://127.0.0.1:{c['heat_api_port']}/v1/waitcondition
# The servers of the fake virt driver never boot: no software deployments to wait for.
max_nested_stack_depth = 5

[database]
connection = {c['db'].format('heat')}
{_authtoken(c, 'heat')}
[trustee]
auth_type = password
auth_url = {c['keystone_url']}
username = heat
password = {c['service_password']}
user_domain_name = Default

[clients]
endpoint_type = public

[clients_keystone]
auth_uri = {c['keystone_url'].removesuffix('/v3')}

[paste_deploy]
api_paste_config = {c['etc']}/heat/api-paste.ini

[oslo_messaging_notifications]
driver = noop

[oslo_concurrency]
lock_path = {c['data']}/heat/lock
"""


def uwsgi_ini(c, name, module, port, extra=""):
    return f"""\
[uwsgi]
master = true
processes = 1
threads = 8
enable-threads = true
lazy-apps = true
need-app = true
die-on-term = true
thunder-lock = true
http-socket = 127.0.0.1:{port}
module = {module}
buffer-size = 65535
http-auto-chunked = true
add-header = Connection: close
reload-mercy = 3
worker-reload-mercy = 3
disable-logging = true
pidfile = {c['run']}/{name}.uwsgi.pid
{extra}"""


CLOUDS_YAML = """\
# Written by devcloud/devcloud up. devcloud-admin: the cloud's admin (the portal's provisioning only);
# devcloud-portal: the portal's service identity (member of the projects it serves, never admin).
# `regions`: openstacksdk's list; the first (RegionOne) is what a connection gets when it names no region.
# RegionTwo answers once `devcloud/devcloud up --regions 2` started it:
#   openstack.connect(cloud="devcloud-admin", region_name="RegionTwo")
clouds:
  devcloud-admin:
    auth:
      auth_url: {keystone_url}
      username: admin
      password: {admin_password}
      project_name: admin
      user_domain_name: Default
      project_domain_name: Default
    region_name: {region}
    regions: {regions}
    interface: public
    identity_api_version: 3
  devcloud-portal:
    auth:
      auth_url: {keystone_url}
      username: portal-service
      password: devcloud-portal
      project_name: portal
      user_domain_name: Default
      project_domain_name: Default
    region_name: {region}
    regions: {regions}
    interface: public
    identity_api_version: 3
"""
