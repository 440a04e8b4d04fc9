"""Checking downloaded bytes against the hash Glance recorded."""

from collections.abc import Iterable
from collections.abc import Iterator
import hashlib
from typing import Any

from oslo_log import log as logging

from image_agent import exception

LOG = logging.getLogger(__name__)


class ImageHasher:
    """Hashes image bytes and compares them with Glance's record.

    ``os_hash_algo``/``os_hash_value`` (multihash) are preferred; the md5
    ``checksum`` is the fallback; with neither, nothing can be verified and
    a warning says so.
    """

    @staticmethod
    def describes(image: dict[str, Any]) -> bool:
        """Whether Glance recorded a hash of the image's bytes."""
        has_multihash = image.get('os_hash_value') and image.get(
            'os_hash_algo'
        )
        return bool(has_multihash or image.get('checksum'))

    def __init__(self, image: dict[str, Any]) -> None:
        self.image_id = image.get('id')
        self.algorithm = None
        self.expected = None
        if image.get('os_hash_value') and image.get('os_hash_algo'):
            self.algorithm = str(image['os_hash_algo'])
            self.expected = str(image['os_hash_value'])
        elif image.get('checksum'):
            self.algorithm = 'md5'
            self.expected = str(image['checksum'])
        self._hash = None
        if self.algorithm:
            try:
                self._hash = hashlib.new(self.algorithm, usedforsecurity=False)
            except ValueError as e:
                raise exception.ImageDownloadFailed(
                    image_id=self.image_id,
                    reason='unsupported hash algorithm %s' % self.algorithm,
                ) from e
        else:
            LOG.warning(
                'Image %s has no hash in Glance; its download cannot be '
                'verified',
                self.image_id,
            )
        self.size = 0

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


def verified_chunks(
    chunks: Iterable[bytes], hasher: ImageHasher
) -> Iterator[bytes]:
    """Yield ``chunks``; after the last one, raise if the hash differs."""
    for chunk in chunks:
        hasher.update(chunk)
        yield chunk
    hasher.verify()
