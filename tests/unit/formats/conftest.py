"""The disk image factory shared with the functional and fault suites."""

from tests.disk_images import disk_images  # noqa: F401
