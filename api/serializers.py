"""What the API shows: read from the same mirror rows and selectors as the pages."""
from __future__ import annotations

from django.conf import settings
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from allocations.models import Allocation, LedgerEntry
from instances.models import CloudAction, Instance, LaunchRequest, SSHKey, Volume, gpu_share_label
from instances.services import ACTIONS

from .common import MAX_ID
from .models import ApiToken

ID = {"min_value": 1, "max_value": MAX_ID}


class AllocationSerializer(serializers.ModelSerializer):
    kind_label = serializers.CharField(source="get_kind_display", read_only=True)
    project_name = serializers.CharField(source="openstack_project_name", read_only=True)
    awarded_sus = serializers.SerializerMethodField()
    used_sus = serializers.SerializerMethodField()
    balance_sus = serializers.SerializerMethodField()
    burn_sus_per_day = serializers.SerializerMethodField()
    runs_out_on = serializers.SerializerMethodField()

    class Meta:
        model = Allocation
        fields = ["id", "title", "kind", "kind_label", "status", "project_name", "start_date", "end_date",
                  "awarded_sus", "used_sus", "balance_sus", "burn_sus_per_day", "runs_out_on"]

    def _summary(self, obj):
        return self.context["summaries"][obj.pk]

    def get_awarded_sus(self, obj) -> str:
        return str(self._summary(obj).awarded)

    def get_used_sus(self, obj) -> str:
        return str(self._summary(obj).used)

    def get_balance_sus(self, obj) -> str:
        return str(self._summary(obj).balance)

    def get_burn_sus_per_day(self, obj) -> str:
        return str(self._summary(obj).burn_per_day)

    def get_runs_out_on(self, obj) -> str | None:
        day = self._summary(obj).runs_out_on
        return day.isoformat() if day else None


class LedgerEntrySerializer(serializers.ModelSerializer):
    user = serializers.CharField(source="user.email", default=None, read_only=True, allow_null=True,
                                 help_text="The email of whose usage this is, when known.")

    class Meta:
        model = LedgerEntry
        fields = ["id", "kind", "sus", "resource_id", "resource_name", "flavor", "vcpus", "state", "su_rate",
                  "period_start", "period_end", "note", "user", "created_at"]


class MemberSerializer(serializers.Serializer):
    email = serializers.CharField(source="user.email")
    role = serializers.CharField()
    sus_used = serializers.DecimalField(max_digits=14, decimal_places=4, source="sus")


class FlavorSerializer(serializers.Serializer):
    id = serializers.CharField()
    name = serializers.CharField()
    vcpus = serializers.IntegerField()
    ram_mb = serializers.IntegerField()
    disk_gb = serializers.IntegerField()
    family = serializers.CharField()
    gpu_share = serializers.SerializerMethodField()
    gpu_memory_gb = serializers.IntegerField(allow_null=True)
    su_per_hour = serializers.SerializerMethodField()

    def get_gpu_share(self, obj) -> str:
        return gpu_share_label(obj.gpu_fraction) if obj.is_gpu else ""

    def get_su_per_hour(self, obj) -> str:
        from allocations.charging import su_per_hour

        return str(su_per_hour(flavor_name=obj.name, vcpus=obj.vcpus))


class ImageSerializer(serializers.Serializer):
    id = serializers.CharField()
    name = serializers.CharField()
    group = serializers.CharField(help_text="featured, project or shared")
    min_disk_gb = serializers.IntegerField()


class InstanceSerializer(serializers.ModelSerializer):
    allocation = serializers.IntegerField(source="allocation_id", read_only=True)
    creator = serializers.CharField(source="creator_label", read_only=True)
    gpu_share = serializers.CharField(read_only=True)
    fixed_ips = serializers.ListField(child=serializers.CharField(), read_only=True)
    floating_ips = serializers.ListField(child=serializers.CharField(), read_only=True)
    is_settled = serializers.BooleanField(read_only=True)

    class Meta:
        model = Instance
        fields = ["id", "server_id", "name", "allocation", "status", "task_state", "is_settled", "flavor_name",
                  "vcpus", "ram_mb", "disk_gb", "gpu_share", "image_id", "image_name", "fixed_ips", "floating_ips",
                  "key_name", "security_groups", "volume_ids", "is_locked", "fault", "creator", "cloud_created_at",
                  "region"]


class InstanceQuerySerializer(serializers.Serializer):
    allocation = serializers.IntegerField(required=False, help_text="Only this allocation's", **ID)
    mine = serializers.BooleanField(required=False, default=False, help_text="Only the ones you made")
    q = serializers.CharField(required=False, allow_blank=True, default="", max_length=100,
                              help_text="Name contains, or server id starts with")
    status = serializers.CharField(required=False, allow_blank=True, max_length=32,
                                   help_text="Nova status, e.g. ACTIVE or SHUTOFF")


class LaunchInputSerializer(serializers.Serializer):
    """Checked again by the launch page's own form (flavors, images, keys, quota, boot script)."""

    allocation = serializers.IntegerField(**ID)
    region = serializers.CharField(required=False, allow_blank=True, default="", max_length=64,
                                   help_text="A region the allocation is enabled in; empty: the primary")
    name = serializers.CharField(max_length=50, help_text="Letters, digits and hyphens, starting with a letter")
    flavor = serializers.CharField(max_length=64, help_text="A flavor id from /flavors/")
    image = serializers.CharField(required=False, allow_blank=True, default="", max_length=64,
                                  help_text="An image id from /images/ (or give boot_volume)")
    boot_volume = serializers.CharField(required=False, allow_blank=True, default="", max_length=64,
                                        help_text="The volume_id of an available bootable volume")
    count = serializers.IntegerField(required=False, default=1, min_value=1,
                                     max_value=settings.PORTAL_LAUNCH_MAX_COUNT)
    root_disk_gb = serializers.IntegerField(required=False, allow_null=True, default=None, min_value=1,
                                            max_value=2000)
    ssh_key = serializers.IntegerField(required=False, allow_null=True, default=None,
                                       help_text="The id of one of your keys (/keys/)", **ID)
    security_groups = serializers.ListField(child=serializers.CharField(max_length=255), required=False,
                                            default=list)
    network = serializers.CharField(required=False, allow_blank=True, default="", max_length=64)
    user_data = serializers.CharField(required=False, allow_blank=True, default="", trim_whitespace=False)
    assign_floating_ip = serializers.BooleanField(required=False, default=False)


class ActionInputSerializer(serializers.Serializer):
    action = serializers.ChoiceField(choices=list(ACTIONS))
    flavor_id = serializers.CharField(required=False, allow_blank=True, default="", max_length=64,
                                      help_text="For resize: a flavor id from /flavors/")
    name = serializers.CharField(required=False, allow_blank=True, default="", max_length=100,
                                 help_text="For image_create (default: the instance's name + -image)")

    def validate(self, data):
        if data["action"] == "resize" and not data["flavor_id"]:
            raise serializers.ValidationError({"flavor_id": ["Give the flavor to resize to."]})
        return data


class LaunchSerializer(serializers.ModelSerializer):
    allocation = serializers.IntegerField(source="allocation_id", read_only=True)
    instances = serializers.SerializerMethodField()

    class Meta:
        model = LaunchRequest
        fields = ["id", "allocation", "name", "count", "flavor_name", "image_name", "state", "step", "progress",
                  "error", "failed_step", "cloud_request_id", "server_ids", "instances", "created_at", "updated_at"]

    def get_instances(self, obj) -> list[int]:
        return sorted(obj.instances.values_list("pk", flat=True))


class ActionSerializer(serializers.ModelSerializer):
    allocation = serializers.IntegerField(source="allocation_id", read_only=True)

    class Meta:
        model = CloudAction
        fields = ["id", "allocation", "target_type", "target_id", "target_name", "action", "params", "result",
                  "state", "step", "progress", "error", "cloud_request_id", "created_at", "updated_at"]


class VolumeSerializer(serializers.ModelSerializer):
    allocation = serializers.IntegerField(source="allocation_id", read_only=True)

    class Meta:
        model = Volume
        fields = ["id", "volume_id", "name", "allocation", "size_gb", "status", "is_bootable", "attachments",
                  "cloud_created_at"]


class VolumeInputSerializer(serializers.Serializer):
    allocation = serializers.IntegerField(**ID)
    region = serializers.CharField(required=False, allow_blank=True, default="", max_length=64,
                                   help_text="A region the allocation is enabled in; empty: the primary")
    name = serializers.CharField(max_length=100)
    size_gb = serializers.IntegerField(min_value=1, max_value=10000)
    snapshot_id = serializers.CharField(required=False, allow_blank=True, default="", max_length=64)
    image_id = serializers.CharField(required=False, allow_blank=True, default="", max_length=64)


class VolumeActionInputSerializer(serializers.Serializer):
    action = serializers.ChoiceField(choices=["attach", "detach", "extend", "snapshot"])
    server_id = serializers.CharField(required=False, allow_blank=True, default="", max_length=64,
                                      help_text="For attach: the server_id of an instance in the volume's project")
    size_gb = serializers.IntegerField(required=False, allow_null=True, default=None, min_value=1, max_value=10000,
                                       help_text="For extend: the new size, larger than now")
    name = serializers.CharField(required=False, allow_blank=True, default="", max_length=100,
                                 help_text="For snapshot")

    def validate(self, data):
        if data["action"] == "extend" and not data["size_gb"]:
            raise serializers.ValidationError({"size_gb": ["Give the new size in GB."]})
        return data


class SSHKeySerializer(serializers.ModelSerializer):
    class Meta:
        model = SSHKey
        fields = ["id", "name", "public_key", "fingerprint", "created_at"]
        read_only_fields = ["id", "fingerprint", "created_at"]
        extra_kwargs = {"public_key": {"max_length": 16384}}


class SecurityGroupRuleSerializer(serializers.Serializer):
    id = serializers.CharField()
    direction = serializers.CharField()
    protocol = serializers.CharField(allow_null=True)
    port_min = serializers.IntegerField(allow_null=True)
    port_max = serializers.IntegerField(allow_null=True)
    remote_ip_prefix = serializers.CharField(allow_null=True)


class SecurityGroupSerializer(serializers.Serializer):
    id = serializers.CharField(read_only=True)
    name = serializers.CharField(max_length=64)
    description = serializers.CharField(required=False, allow_blank=True, default="", max_length=255)
    rules = serializers.SerializerMethodField()

    @extend_schema_field(SecurityGroupRuleSerializer(many=True))
    def get_rules(self, obj) -> list[dict]:
        return [{"id": r.id, "direction": r.direction, "protocol": r.protocol, "port_min": r.port_min,
                 "port_max": r.port_max, "remote_ip_prefix": r.remote_ip_prefix} for r in obj.rules]


class SecurityGroupInputSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=64, help_text="Letters, digits, dots, hyphens and underscores")
    description = serializers.CharField(required=False, allow_blank=True, default="", max_length=255)
    allow_ssh = serializers.BooleanField(required=False, default=True, help_text="A rule for SSH (22/tcp) in")
    allow_icmp = serializers.BooleanField(required=False, default=True, help_text="A rule for ping (ICMP) in")


class FloatingIPSerializer(serializers.Serializer):
    id = serializers.CharField()
    address = serializers.CharField()
    status = serializers.CharField()
    fixed_address = serializers.CharField()


class AllocationRefSerializer(serializers.Serializer):
    allocation = serializers.IntegerField(**ID)


class FloatingIPInputSerializer(AllocationRefSerializer):
    region = serializers.CharField(required=False, allow_blank=True, default="", max_length=64,
                                   help_text="A region the allocation is enabled in; empty: the primary")


class TokenSerializer(serializers.ModelSerializer):
    class Meta:
        model = ApiToken
        fields = ["id", "name", "prefix", "scope", "allocation", "expires_at", "last_used_at", "revoked_at",
                  "created_at"]
