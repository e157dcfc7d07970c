"""The "New cluster" form: defaults that just work (head m3.small, workers m3.quad, up to 4, removed
after 10 idle minutes, a Featured Ubuntu 24.04 or Rocky 9 image)."""
from __future__ import annotations

from django import forms

from allocations.flavor_access import flavor_allowed

from .models import MAX_WORKERS_LIMIT, NAME_VALIDATOR
from .services import image_family

DEFAULT_HEAD, DEFAULT_WORKER, DEFAULT_IMAGE = "m3.small", "m3.quad", "Featured-Ubuntu24"


class ClusterForm(forms.Form):
    name = forms.CharField(max_length=24, validators=[NAME_VALIDATOR], initial="hpc",
                           help_text="Lowercase; the head node is <name>-head.")
    image = forms.ChoiceField(help_text="Featured Ubuntu 24.04 or Rocky Linux 9.")
    head_flavor = forms.ChoiceField(label="Head node flavor")
    worker_flavor = forms.ChoiceField(label="Worker flavor",
                                      help_text="GPU flavors (g3) give each worker a GPU (Slurm Gres=gpu).")
    max_workers = forms.IntegerField(min_value=1, max_value=MAX_WORKERS_LIMIT, initial=4, label="Up to workers")
    idle_minutes = forms.IntegerField(min_value=1, max_value=24 * 60, initial=10,
                                      label="Remove a worker after idle minutes")
    ssh_key = forms.ChoiceField(required=False, label="SSH key (for the head node)")

    def __init__(self, *args, allocation, images, flavors, keys, **kwargs):
        super().__init__(*args, **kwargs)
        self.allocation = allocation
        self.images = [i for i in images if i.group == "featured" and image_family(image_name=i.name)]
        self.flavors = [f for f in flavors if flavor_allowed(kind=allocation.kind, flavor_name=f.name)]
        self.keys = list(keys)
        self.fields["image"].choices = [(i.id, i.name) for i in self.images]
        choices = [(f.id, f"{f.name} ({f.vcpus} vCPU, {f.ram_mb // 1024} GB)") for f in self.flavors]
        self.fields["head_flavor"].choices = [c for c, f in zip(choices, self.flavors, strict=True)
                                              if not f.is_gpu]
        self.fields["worker_flavor"].choices = choices
        self.fields["ssh_key"].choices = [("", "None")] + [(str(k.pk), k.name) for k in self.keys]
        by_name = {f.name: f.id for f in self.flavors}
        self.fields["head_flavor"].initial = by_name.get(DEFAULT_HEAD)
        self.fields["worker_flavor"].initial = by_name.get(DEFAULT_WORKER)
        self.fields["image"].initial = next((i.id for i in self.images if i.name == DEFAULT_IMAGE), None)
        self.fields["ssh_key"].initial = str(self.keys[0].pk) if self.keys else ""

    def flavor(self, field: str):
        return next((f for f in self.flavors if f.id == self.cleaned_data.get(field)), None)

    @property
    def chosen_image(self):
        return next((i for i in self.images if i.id == self.cleaned_data.get("image")), None)

    @property
    def chosen_key(self):
        return next((k for k in self.keys if str(k.pk) == self.cleaned_data.get("ssh_key")), None)
