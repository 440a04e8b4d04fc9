"""The one hash rule: which hash Glance recorded, and checking bytes
against it. Everything that asks "can these bytes be proven the image?"
(the stream copy, the kernel copy, reuse of a file in place, cache entry
names, ranged resumes) asks ``recorded_hash``."""

import hashlib
from typing import Any

from oslo_log import log as logging

from image_agent import exception

LOG = logging.getLogger(__name__)


def recorded_hash(image: dict[str, Any]) -> tuple[str, str] | None:
    """``(algorithm, hex digest)`` Glance recorded for the image's bytes.

    The one rule: the multihash (``os_hash_algo``/``os_hash_value``) when
    there is one, else the md5 ``checksum``; None when Glance recorded
    neither.
    """
    if image.get('os_hash_value') and image.get('os_hash_algo'):
        return str(image['os_hash_algo']), str(image['os_hash_value'])
    if image.get('checksum'):
        return 'md5', str(image['checksum'])
    return None


class ImageHasher:
    """Hashes image bytes and compares them with Glance's record.

    ``os_hash_algo``/``os_hash_value`` (multihash) are preferred; the md5
    ``checksum`` is the fallback; with neither, nothing can be verified and
    a warning says so.
    """

    def __init__(self, image: dict[str, Any]) -> None:
        self.image_id = image.get('id')
        self.algorithm, self.expected = recorded_hash(image) or (None, None)
        self._hash = None
        if self.algorithm:
            self.restart()
        else:
            LOG.warning(
                'Image %s has no hash in Glance; its download cannot be '
                'verified',
                self.image_id,
            )
        self.size = 0

    def restart(self) -> None:
        """Forget the bytes seen (another source fills the file again)."""
        self.size = 0
        if not self.algorithm:
            return
        try:
            self._hash = hashlib.new(self.algorithm, usedforsecurity=False)
        except ValueError as e:
            raise exception.ImageDownloadFailed(
                image_id=self.image_id,
                reason='unsupported hash algorithm %s' % self.algorithm,
            ) from e

    def update(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self._hash is not None:
            self._hash.update(chunk)

    @property
    def hexdigest(self) -> str | None:
        return self._hash.hexdigest() if self._hash is not None else None

    def verify(self) -> None:
        """Raise ImageChecksumMismatch unless the bytes matched the record."""
        if self._hash is None:
            return
        actual = self._hash.hexdigest()
        if actual != self.expected:
            raise exception.ImageChecksumMismatch(
                image_id=self.image_id,
                algorithm=self.algorithm,
                actual=actual,
                expected=self.expected,
            )
