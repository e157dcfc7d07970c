"""Forms: parse and validate input; never touch the ORM or the cloud."""
from __future__ import annotations

import yaml
from django import forms
from django.conf import settings
from django.core.validators import RegexValidator

from .models import gpu_share_label
from .quota import flavor_refusal, launch_refusals, volume_refusals
from .services.keys import public_key_fingerprint

name_validator = RegexValidator(
    r"^[A-Za-z][A-Za-z0-9-]*$", "Use letters, digits and hyphens, starting with a letter (it becomes the hostname).")
FLAVOR_GROUPS = {"cpu": "CPU", "large_memory": "Large memory", "gpu": "GPU (NVIDIA A100)"}
IMAGE_GROUPS = {"featured": "Featured", "project": "Your project's images", "shared": "Shared with you"}


def validate_boot_script(text: str) -> None:
    """A boot script is cloud-init user data: a #cloud-config YAML mapping or a #! script."""
    if len(text.encode()) > 48 * 1024:
        raise forms.ValidationError("The boot script is too long (at most 48 KB).")
    first = text.lstrip().split("\n", 1)[0].strip()
    if first.startswith("#!"):
        return
    if first == "#cloud-config":
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" (line {mark.line + 1})" if mark else ""
            raise forms.ValidationError(f"The cloud-config is not valid YAML{where}.") from exc
        if data is not None and not isinstance(data, dict):
            raise forms.ValidationError("A cloud-config must be a YAML mapping (keys and values).")
        return
    raise forms.ValidationError("Start the boot script with “#cloud-config” (YAML) or “#!” (a shell script).")


class BootstrapForm(forms.Form):
    """Gives every widget Bootstrap's class, so templates can render fields plainly."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for field in self.fields.values():
            widget = field.widget
            if isinstance(widget, (forms.CheckboxSelectMultiple, forms.CheckboxInput)):
                widget.attrs.setdefault("class", "form-check-input")
            elif isinstance(widget, forms.Select):
                widget.attrs.setdefault("class", "form-select")
            else:
                widget.attrs.setdefault("class", "form-control")


class MarksInvalidFields:
    """Adds Bootstrap's is-invalid to the widgets of fields with errors, so a refused field shows red."""

    def full_clean(self):
        super().full_clean()
        for name in self.errors:
            if name in self.fields:
                widget = self.fields[name].widget
                widget.attrs["class"] = f"{widget.attrs.get('class', '')} is-invalid".strip()


class SelectWithDisabled(forms.Select):
    """A select whose options in `disabled` are shown but cannot be picked (their text says why)."""

    def __init__(self, attrs=None, choices=(), disabled=()):
        super().__init__(attrs, choices)
        self.disabled = set(disabled)

    def create_option(self, name, value, label, selected, index, subindex=None, attrs=None):
        option = super().create_option(name, value, label, selected, index, subindex, attrs)
        if str(value) in self.disabled:
            option["attrs"]["disabled"] = True
        return option


def flavor_label(f) -> str:
    label = f"{f.name} — {f.vcpus} vCPU, {f.ram_mb // 1024} GB RAM, {f.disk_gb} GB disk"
    if f.is_gpu:
        label += f", {gpu_share_label(f.gpu_fraction)}"
        label += f" ({f.gpu_memory_gb} GB GPU memory)" if f.gpu_memory_gb else ""
    return label


class LaunchForm(MarksInvalidFields, BootstrapForm):
    name = forms.CharField(max_length=50, validators=[name_validator])
    image = forms.ChoiceField(required=False)
    boot_volume = forms.ChoiceField(required=False, label="…or boot from a volume",
                                    help_text="An available bootable volume of this project.")
    flavor = forms.ChoiceField(widget=SelectWithDisabled)
    count = forms.IntegerField(min_value=1, initial=1)
    root_disk_gb = forms.IntegerField(required=False, min_value=1, max_value=2000, label="Root disk size (GB)",
                                      help_text="Leave empty to use the flavor's disk; larger boots from a new volume.")
    ssh_key = forms.ChoiceField(required=False, label="SSH key")
    new_key_name = forms.CharField(required=False, max_length=64, label="…or upload a key: name")
    new_public_key = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}),
                                     label="Public key")
    security_groups = forms.MultipleChoiceField(required=False, widget=forms.CheckboxSelectMultiple,
                                                help_text="None picked: “default” and an “ssh-icmp” group.")
    network = forms.ChoiceField(required=False)
    user_data = forms.CharField(required=False, label="Boot script", widget=forms.Textarea(attrs={"rows": 5}),
                                validators=[validate_boot_script],
                                help_text="cloud-init user data: “#cloud-config” YAML or a “#!” shell script.")
    assign_floating_ip = forms.BooleanField(required=False, label="Assign a public IP")

    def __init__(self, *args, options: dict, keys, volumes=(), quota=None, region: str = "", **kwargs):
        """`quota`: the project's instances.quota.ProjectQuota, or None when it could not be read
        (then nothing is refused here and the cloud checks alone). `region`: where the choices come
        from and the servers go ("" the primary), chosen on the page before the form."""
        super().__init__(*args, **kwargs)
        self.region = region
        self.options = options
        self.quota = quota
        self.fields["boot_volume"].choices = [("", "—")] + [(v.volume_id, f"{v} ({v.size_gb} GB)") for v in volumes]
        self.fields["count"].validators.append(_max(settings.PORTAL_LAUNCH_MAX_COUNT))
        free = quota.free("instances") if quota else None
        most = min(settings.PORTAL_LAUNCH_MAX_COUNT, free) if free is not None else settings.PORTAL_LAUNCH_MAX_COUNT
        self.fields["count"].widget.attrs.update(min=1, max=max(1, most))
        self.fields["image"].choices = [("", "Choose an image")] + [
            (IMAGE_GROUPS[g], [(i.id, i.name) for i in options["images"] if i.group == g]) for g in IMAGE_GROUPS
            if any(i.group == g for i in options["images"])]
        self.flavor_refusals = {f.id: reason for f in options["flavors"]
                                if (reason := flavor_refusal(quota=quota, flavor=f))}
        self.fields["flavor"].choices = [("", "Choose a flavor")] + [
            (FLAVOR_GROUPS[g], [(f.id, self._flavor_option(f)) for f in options["flavors"] if f.family == g])
            for g in FLAVOR_GROUPS if any(f.family == g for f in options["flavors"])]
        self.fields["flavor"].widget.disabled = set(self.flavor_refusals)
        self.keys = list(keys)
        self.fields["ssh_key"].choices = [("", "No key")] + [(str(k.pk), k.name) for k in self.keys]
        self.fields["security_groups"].choices = [(g.name, g.name) for g in options["security_groups"]]
        self.fields["network"].choices = [("", "Automatic")] + [(n.id, n.name) for n in options["networks"]]

    def _flavor_option(self, f) -> str:
        reason = self.flavor_refusals.get(f.id)
        return f"{f.name} — {reason}" if reason else flavor_label(f)

    def clean_new_public_key(self):
        key = self.cleaned_data["new_public_key"].strip()
        if key:
            public_key_fingerprint(key)
        return key

    def _clean_quota(self, data) -> None:
        """Refuse at the field what the project's remaining quota cannot hold."""
        flavor, count = self.chosen_flavor, data.get("count")
        if flavor is None or not count or self.has_error("count"):
            return
        size = data.get("root_disk_gb")
        new_volume = size if size and data.get("image") and not data.get("boot_volume") else None
        refusals = launch_refusals(quota=self.quota, flavor=flavor, count=count, new_volume_gb=new_volume,
                                   public_ip=bool(data.get("assign_floating_ip")))
        for field, message in refusals.items():
            if not self.has_error(field):
                self.add_error(field, message)

    def clean(self):
        data = super().clean()
        data["region"] = self.region
        self._clean_quota(data)
        if not data.get("image") and not data.get("boot_volume"):
            self.add_error("image", "Choose an image, or a volume to boot from.")
        if data.get("boot_volume") and int(data.get("count") or 1) > 1:
            self.add_error("count", "A volume can boot only one instance.")
        if data.get("new_public_key") and not data.get("new_key_name"):
            self.add_error("new_key_name", "Name the key you upload.")
        flavor = self.chosen_flavor
        size = data.get("root_disk_gb")
        if flavor and size and size < flavor.disk_gb:
            self.add_error("root_disk_gb",
                           f"The flavor already has a {flavor.disk_gb} GB disk; pick more or leave empty.")
        image = self.chosen_image
        if flavor and image and not data.get("boot_volume") and image.min_disk_gb > max(flavor.disk_gb, size or 0):
            self.add_error("root_disk_gb", f"{image.name} needs a disk of at least {image.min_disk_gb} GB; "
                                           "pick a bigger flavor or a larger root disk.")
        return data

    @property
    def chosen_flavor(self):
        return next((f for f in self.options["flavors"] if f.id == self.cleaned_data.get("flavor")), None)

    @property
    def chosen_image(self):
        return next((i for i in self.options["images"] if i.id == self.cleaned_data.get("image")), None)


def _max(limit):
    from django.core.validators import MaxValueValidator
    return MaxValueValidator(limit, f"At most {limit} instances in one launch.")


class ResizeForm(BootstrapForm):
    """The new flavor: no default (a resize to a flavor nobody chose must not be one click away)."""

    flavor_id = forms.ChoiceField(label="New flavor", error_messages={
        "required": "Choose the flavor to resize to.",
        "invalid_choice": "That flavor is not offered for this instance; choose one from the list."})

    def __init__(self, *args, flavors, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["flavor_id"].choices = [("", "Choose a flavor…")] + [(f.id, flavor_label(f)) for f in flavors]


class ImageCreateForm(BootstrapForm):
    name = forms.CharField(max_length=100)


class VolumeCreateForm(MarksInvalidFields, BootstrapForm):
    name = forms.CharField(max_length=100, validators=[name_validator])
    size_gb = forms.IntegerField(min_value=1, max_value=10000, label="Size (GB)")
    snapshot_id = forms.ChoiceField(required=False, label="From snapshot")
    image_id = forms.ChoiceField(required=False, label="From image")

    def __init__(self, *args, snapshots=(), images=(), quota=None, region: str = "", **kwargs):
        """`quota`: the project's instances.quota.ProjectQuota, or None when it could not be read.
        `region`: where the volume is made ("" the primary), chosen on the page before the form."""
        super().__init__(*args, **kwargs)
        self.region = region
        self.quota = quota
        self.fields["snapshot_id"].choices = [("", "—")] + [(s.id, s.name or s.id) for s in snapshots]
        self.fields["image_id"].choices = [("", "—")] + [(i.id, i.name) for i in images]
        free = quota.free("volume_gb") if quota else None
        if free is not None:
            self.fields["size_gb"].widget.attrs["max"] = max(1, min(free, self.fields["size_gb"].max_value))
            self.fields["size_gb"].help_text = f"{free:,} GB of the project's volume storage are free."

    def clean(self):
        data = super().clean()
        data["region"] = self.region
        if data.get("snapshot_id") and data.get("image_id"):
            raise forms.ValidationError("Pick a snapshot or an image, not both.")
        if data.get("size_gb") and not self.has_error("size_gb"):
            for field, message in volume_refusals(quota=self.quota, size_gb=data["size_gb"]).items():
                self.add_error(field, message)
        return data


class VolumeExtendForm(BootstrapForm):
    size_gb = forms.IntegerField(min_value=1, max_value=10000, label="New size (GB)")


class VolumeAttachForm(BootstrapForm):
    server_id = forms.ChoiceField(label="Instance", error_messages={
        "required": "Choose the instance to attach the volume to.",
        "invalid_choice": "Choose an instance of the volume's own project."})

    def __init__(self, *args, instances=(), **kwargs):
        super().__init__(*args, **kwargs)
        # No instance is preselected: the person picks one, or the form refuses.
        self.fields["server_id"].choices = [("", "Choose an instance")] + [(i.server_id, i.name) for i in instances]


key_name_validator = RegexValidator(r"^[A-Za-z0-9_.-]+$", "Use letters, digits, dots, hyphens and underscores.")


class SSHKeyForm(BootstrapForm):
    name = forms.CharField(max_length=64, validators=[key_name_validator])
    public_key = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}),
                                 help_text="The one-line contents of a .pub file, e.g. ~/.ssh/id_ed25519.pub.")

    def clean_public_key(self):
        key = self.cleaned_data["public_key"].strip()
        public_key_fingerprint(key)
        return key


class SSHKeyGenerateForm(BootstrapForm):
    prefix = "generate"
    name = forms.CharField(max_length=64, validators=[key_name_validator],
                           help_text="The private key downloads as <name>.pem.")


class SecurityGroupForm(BootstrapForm):
    name = forms.CharField(max_length=64, validators=[RegexValidator(
        r"^[A-Za-z0-9_.-]+$", "Use letters, digits, dots, hyphens and underscores.")])
    description = forms.CharField(max_length=255, required=False)
    allow_ssh = forms.BooleanField(required=False, initial=True, label="Allow SSH (22/tcp)")
    allow_icmp = forms.BooleanField(required=False, initial=True, label="Allow ping (ICMP)")

    def __init__(self, *args, existing_names=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.existing_names = {n.casefold() for n in existing_names}

    def clean_name(self):
        name = self.cleaned_data["name"]
        if name.casefold() in self.existing_names:
            raise forms.ValidationError(f"The project already has a security group named “{name}”; "
                                        "pick another name.")
        return name


# preset -> (protocol, first port, last port)
RULE_PRESETS = {"ssh": ("tcp", 22, 22), "http": ("tcp", 80, 80), "https": ("tcp", 443, 443),
                "ping": ("icmp", None, None)}


class SecurityGroupRuleForm(BootstrapForm):
    preset = forms.ChoiceField(required=False, label="Allow", choices=[
        ("", "Custom: the protocol and ports below"), ("ssh", "SSH (22/tcp)"), ("http", "HTTP (80/tcp)"),
        ("https", "HTTPS (443/tcp)"), ("ping", "Ping (ICMP)")])
    protocol = forms.ChoiceField(required=False, choices=[("tcp", "TCP"), ("udp", "UDP"), ("icmp", "ICMP")])
    ports = forms.CharField(required=False, max_length=11, label="Port or range",
                            help_text="e.g. 8888, or 8000-8080. Not used for ICMP.")
    cidr = forms.CharField(max_length=64, initial="0.0.0.0/0", label="From (CIDR)",
                           help_text="0.0.0.0/0 is anywhere; 203.0.113.5/32 is one address.")

    def clean_cidr(self):
        import ipaddress

        text = self.cleaned_data["cidr"].strip()
        try:
            return str(ipaddress.ip_network(text, strict=True))
        except ValueError:
            pass
        try:
            network = ipaddress.ip_network(text, strict=False)
        except ValueError:
            raise forms.ValidationError(f"“{text}” is not a network: write it like 10.0.0.0/8, 203.0.113.5/32 "
                                        "or 0.0.0.0/0 for anywhere.") from None
        raise forms.ValidationError(f"{text} is not the start of its network: did you mean {network}, or "
                                    f"{text.split('/')[0]}/{network.max_prefixlen} for that one address?")

    def clean(self):
        data = super().clean()
        preset = data.get("preset")
        if preset:
            data["protocol"], data["port_min"], data["port_max"] = RULE_PRESETS[preset]
            return data
        protocol, ports = data.get("protocol") or "tcp", (data.get("ports") or "").replace(" ", "")
        data["protocol"], data["port_min"], data["port_max"] = protocol, None, None
        if protocol == "icmp":
            return data
        if not ports:
            self.add_error("ports", f"Give a port (e.g. 22) or a range (e.g. 8000-8080) for {protocol.upper()}.")
            return data
        low, _, high = ports.partition("-")
        if not low.isdigit() or (high and not high.isdigit()):
            self.add_error("ports", "Write a port number, or two joined by a hyphen (8000-8080).")
            return data
        low_n, high_n = int(low), int(high or low)
        if not (1 <= low_n <= 65535 and 1 <= high_n <= 65535):
            self.add_error("ports", "Ports run from 1 to 65535.")
        elif high_n < low_n:
            self.add_error("ports", f"The range must go up: {high_n}-{low_n}, not {low_n}-{high_n}.")
        else:
            data["port_min"], data["port_max"] = low_n, high_n
        return data



# --- Attaching a volume from the instance page (issue 14, part A) --------------------------------


class InstanceVolumeAttachForm(BootstrapForm):
    """Which of the project's available volumes to attach: no default, the person picks one."""

    volume = forms.ChoiceField(label="Volume", error_messages={
        "required": "Choose the volume to attach.",
        "invalid_choice": "That volume is no longer available to attach; choose another."})

    def __init__(self, *args, volumes=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["volume"].choices = [("", "Choose a volume…")] + [
            (str(v.pk), f"{v} ({v.size_gb} GB)") for v in volumes]
