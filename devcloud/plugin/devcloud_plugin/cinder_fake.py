"""Cinder's fake logging driver, able to make volumes from images.

The stock fake driver inherits LVM's image path, which downloads the image and inspects it with
qemu-img through privsep (sudo): neither exists here. A fake backend holds no data, so "cloning"
the image is all it needs to do; Cinder then marks the volume bootable with the image's metadata,
as on a real cloud.
"""
from cinder.tests.fake_driver import FakeLoggingVolumeDriver


class DevcloudFakeVolumeDriver(FakeLoggingVolumeDriver):
    def clone_image(self, context, volume, image_location, image_meta, image_service):
        return {}, True

    def copy_volume_to_image(self, context, volume, image_service, image_meta):
        image_service.update(context, image_meta["id"], {}, b"")
