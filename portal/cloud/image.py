"""Glance: the images a project can boot."""
from __future__ import annotations

from dataclasses import dataclass

from .connection import Scope, connection_for
from .errors import cloud_errors


@dataclass(frozen=True)
class Image:
    id: str
    name: str
    status: str
    visibility: str
    owner: str
    min_disk_gb: int
    size_bytes: int
    is_featured: bool
    os_distro: str = ""  # Glance's os_distro property ("ubuntu", "rocky", ...), "" when unset

    def group_for(self, project_id: str) -> str:
        """featured, project or shared: how the launch form groups images."""
        if self.is_featured:
            return "featured"
        return "project" if self.owner == project_id else "shared"


def _image(raw) -> Image:
    props = dict(raw.properties or {})
    featured = (str(props.get("portal_featured", "")).lower() == "true" or "featured" in (raw.tags or [])
                or (raw.name or "").lower().startswith("featured-"))
    return Image(id=raw.id, name=raw.name or raw.id, status=raw.status or "", visibility=raw.visibility or "",
                 owner=raw.owner_id or raw.owner or "", min_disk_gb=int(raw.min_disk or 0),
                 size_bytes=int(raw.size or 0), is_featured=featured and raw.visibility == "public",
                 os_distro=str(getattr(raw, "os_distro", None) or props.get("os_distro") or "").lower())


def image_list(*, scope: Scope) -> list[Image]:
    """Active images the project may boot: public, its own and those shared with it."""
    with cloud_errors():
        conn = connection_for(scope)
        images = [_image(i) for i in conn.image.images(status="active")]
    return sorted(images, key=lambda i: (not i.is_featured, i.name.lower()))


def image_get(*, scope: Scope, image_id: str) -> Image:
    with cloud_errors():
        return _image(connection_for(scope).image.get_image(image_id))


def image_delete(*, scope: Scope, image_id: str) -> None:
    with cloud_errors():
        connection_for(scope).image.delete_image(image_id, ignore_missing=True)
