"""Inspecting an image's format while its bytes stream.

A file handed to qemu is trusted for what its header says: a qcow2 naming
a backing or external data file, or a VMDK naming other extents or a
parent, makes qemu read those host files into the guest (Nova bug
2059809, CVE-2024-32498). Glance checks uploads only since 2024, never
images added by location, and accepts a qcow2 labelled ``raw``; so, like
Nova's ``fetch_to_raw`` and Cinder's ``image_utils``, the agent checks
every image itself, with oslo.utils' format inspector. Unlike them it
needs no second read: ``StreamInspector.update`` is given every chunk of
the one copy that hashes and writes the image, and ``finish`` judges it
before the file is published.

The rules (Nova's, ``nova/virt/images.py``):

- the image's ``disk_format`` must be allowed (``[agent]
  disk_formats_allowed``) and known to the inspector, or an AMI format;
- exactly one format must match; an ISO with a GPT in its system area (a
  hybrid, bootable ISO) is an ISO, as ironic-python-agent allows;
- the matched format's safety checks must pass; besides oslo.utils'
  own, a VMDK must carry its data (a descriptor-only VMDK names other
  files) and name no parent (``parentFileNameHint``: a backing file that
  oslo.utils 10.2 does not look at);
- the matched format must be the ``disk_format``; ``raw`` means no other
  known format, but a GPT/MBR disk passes as raw (legacy whole-disk
  images); AMI formats are not compared.
"""

from collections.abc import Collection
import dataclasses
import os

from oslo_log import log as logging
from oslo_utils.imageutils import format_inspector

from image_agent import exception
from image_agent.i18n import _

LOG = logging.getLogger(__name__)

# The first SLICED_BYTES of an image are inspected SLICE bytes at a time
# (see StreamInspector.update); what follows, a chunk at a time.
SLICE = 64 * 1024
SLICED_BYTES = 32 * 1024 * 1024
AMI_FORMATS = frozenset({'ami', 'aki', 'ari'})
# Content a disk_format of raw may have besides "nothing known".
RAW_LIKE = frozenset({'raw', 'gpt'})


@dataclasses.dataclass(frozen=True)
class Inspection:
    """What an image's bytes were found to be."""

    disk_format: str
    detected: str
    # Bytes of the disk the image holds (None: the format does not say).
    virtual_size: int | None

    def as_dict(self) -> dict:
        return {
            'disk_format_detected': self.detected,
            'virtual_size': self.virtual_size,
        }


class _Feed:
    """The one chunk the wrapper reads next (it reads from a "file")."""

    chunk: object = b''

    def read(self, size: int) -> object:
        chunk, self.chunk = self.chunk, b''
        return chunk


def check_disk_format(
    image_id: str, disk_format: str | None, allowed: Collection[str]
) -> None:
    """Refuse, before any byte moves, a ``disk_format`` never accepted."""
    if not disk_format:
        raise exception.ImageUnacceptable(
            image_id=image_id,
            reason=_('it has no disk_format to check its content against'),
        )
    if disk_format not in allowed:
        raise exception.ImageUnacceptable(
            image_id=image_id,
            reason=_(
                'its disk_format %(format)s is not allowed here '
                '([agent] disk_formats_allowed: %(allowed)s)'
            )
            % {'format': disk_format, 'allowed': ', '.join(allowed)},
        )
    if disk_format not in AMI_FORMATS and not format_inspector.get_inspector(
        disk_format
    ):
        raise exception.ImageUnacceptable(
            image_id=image_id,
            reason=_('its disk_format %s cannot be inspected') % disk_format,
        )


class StreamInspector:
    """Given every chunk of one image in order; says what it is at the end.

    ``update`` may raise already (ImageFormatMismatch) when the header of
    the ``disk_format`` is missing: the transfer stops early. Chunks may be
    views of reused buffers: nothing of them is kept but the few regions
    the inspectors need (copied).
    """

    def __init__(
        self,
        image_id: str,
        disk_format: str | None,
        allowed: Collection[str],
        early: bool = True,
    ) -> None:
        check_disk_format(image_id, disk_format, allowed)
        self._early = early
        self._error: exception.ImageUnacceptable | None = None
        self._image_id = image_id
        self._disk_format = disk_format
        self._feed = _Feed()
        expected = None if disk_format in AMI_FORMATS else disk_format
        self._wrapper = format_inspector.InspectWrapper(
            self._feed, expected_format=expected
        )
        self._slicing = True
        self._position = 0

    def update(self, chunk) -> None:
        """Look at the next ``chunk`` (bytes or a memoryview).

        Raises ImageFormatMismatch as soon as the bytes cannot be the
        ``disk_format``; without ``early``, only from ``finish``: for a
        source whose bytes may be wrong (another agent), so that its hash
        mismatch, found after the last byte, sends the download elsewhere.
        """
        if self._error is not None:
            return
        try:
            self._update(chunk)
        except exception.ImageUnacceptable as e:
            if self._early:
                raise
            self._error = e

    def _update(self, chunk) -> None:
        if not self._slicing:
            self._eat(chunk)
            return
        # Some inspectors find where to look next only as they go (a
        # VHDX's metadata, then its size): given large chunks at once,
        # they would look back at bytes already gone. The first bytes go
        # in small slices, as oslo.utils' own tests feed them.
        with memoryview(chunk) as view:
            for start in range(0, len(view), SLICE):
                with view[start : start + SLICE] as piece:
                    self._eat(piece)
        self._position += len(chunk)
        if self._position >= SLICED_BYTES or self.decided:
            self._slicing = False

    def _eat(self, chunk) -> None:
        self._feed.chunk = chunk
        try:
            self._wrapper.read(len(chunk))
        except Exception as e:
            raise self._mismatch(e) from e
        finally:
            self._feed.chunk = b''

    @property
    def decided(self) -> bool:
        """Whether every inspector has seen what it needs."""
        try:
            return self._wrapper.formats is not None
        except format_inspector.ImageFormatError:
            return True

    def finish(self) -> Inspection:
        """Judge the whole image: its Inspection, or ImageUnacceptable."""
        if self._error is not None:
            raise self._error
        self._wrapper.close()
        found = self._detected()
        self._check_safety(found)
        detected = str(found)
        if not _matches(self._disk_format, detected):
            LOG.warning(
                'Image %(id)s is %(detected)s, but its disk_format says '
                '%(format)s',
                {
                    'id': self._image_id,
                    'detected': detected,
                    'format': self._disk_format,
                },
            )
            raise exception.ImageFormatMismatch(
                image_id=self._image_id,
                detected=detected,
                disk_format=self._disk_format,
            )
        return Inspection(self._disk_format, detected, _virtual_size(found))

    def _detected(self) -> format_inspector.FileInspector:
        try:
            found = self._wrapper.formats or []
        except format_inspector.ImageFormatError as e:
            raise self._unacceptable(str(e)) from e
        names = sorted(str(f) for f in found)
        if names == ['gpt', 'iso']:
            # A hybrid ISO: its system area holds a partition table.
            return next(f for f in found if str(f) == 'iso')
        if len(found) != 1:
            raise self._unacceptable(
                _('its content matches several formats at once (%s)')
                % ', '.join(names)
            )
        return found[0]

    def _check_safety(self, found: format_inspector.FileInspector) -> None:
        try:
            found.safety_check()
        except format_inspector.SafetyCheckFailed as e:
            raise self._unacceptable(
                _('it fails the %(format)s safety checks: %(checks)s')
                % {
                    'format': found,
                    'checks': '; '.join(
                        '%s: %s' % item for item in sorted(e.failures.items())
                    ),
                }
            ) from e
        except Exception as e:
            raise self._unacceptable(
                _('its %(format)s header cannot be checked: %(error)s')
                % {'format': found, 'error': e}
            ) from e
        if str(found) == 'vmdk':
            self._check_vmdk(found)

    def _check_vmdk(self, found) -> None:
        """What qemu follows in a VMDK beyond oslo.utils' checks."""
        if not found.has_region('header'):
            raise self._unacceptable(
                _(
                    'it is a VMDK descriptor without data: its extents are '
                    'other files'
                )
            )
        if 'parentfilenamehint' in (found.desc_text or ''):
            raise self._unacceptable(
                _('its VMDK descriptor names a parent (backing) file')
            )

    def _unacceptable(self, reason: str) -> exception.ImageUnacceptable:
        LOG.warning(
            'Image %(id)s refused: %(reason)s',
            {'id': self._image_id, 'reason': reason},
        )
        return exception.ImageUnacceptable(
            image_id=self._image_id, reason=reason
        )

    def _mismatch(self, error: Exception) -> exception.ImageUnacceptable:
        message = _(
            'Image %(id)s is unacceptable: its content is not %(format)s, '
            'as its disk_format says (%(error)s).'
        ) % {'id': self._image_id, 'format': self._disk_format, 'error': error}
        LOG.warning('%s', message)
        return exception.ImageFormatMismatch(
            message,
            image_id=self._image_id,
            detected=None,
            disk_format=self._disk_format,
        )


def _matches(disk_format: str, detected: str) -> bool:
    if disk_format in AMI_FORMATS or detected == disk_format:
        return True
    return disk_format == 'raw' and detected in RAW_LIKE


def _virtual_size(found: format_inspector.FileInspector) -> int | None:
    try:
        size = found.virtual_size
    except Exception:  # a header the inspector could not size
        return None
    return size or None


def inspect_file(
    image_id: str,
    fd: int,
    disk_format: str | None,
    allowed: Collection[str],
    chunk_size: int = 1024 * 1024,
) -> Inspection:
    """Inspect the local file ``fd`` (an upload's source) as a stream.

    Reads only until every inspector has decided, as oslo.utils'
    ``detect_file_format`` does: usually the first MiB.
    """
    inspector = StreamInspector(image_id, disk_format, allowed)
    offset = 0
    while chunk := os.pread(fd, chunk_size, offset):
        inspector.update(chunk)
        offset += len(chunk)
        if inspector.decided:
            break
    found = inspector.finish()
    if found.detected in RAW_LIKE:
        # Their size is the bytes seen: the whole file's.
        size = os.fstat(fd).st_size
        return dataclasses.replace(found, virtual_size=size)
    return found


@dataclasses.dataclass(frozen=True)
class Policy:
    """What this agent accepts (``[agent] disk_formats_allowed``); None
    from ``from_conf`` when inspection is turned off."""

    allowed: tuple[str, ...]

    @classmethod
    def from_conf(cls, conf) -> 'Policy | None':
        if not conf.agent.inspect_formats:
            return None
        return cls(tuple(conf.agent.disk_formats_allowed))

    def check(self, image: dict) -> None:
        """Refuse an image whose disk_format is never accepted."""
        check_disk_format(image['id'], image.get('disk_format'), self.allowed)

    def stream(self, image: dict, early: bool = True) -> StreamInspector:
        """An inspector for one attempt at streaming ``image``."""
        return StreamInspector(
            image['id'], image.get('disk_format'), self.allowed, early
        )

    def file(self, image: dict, fd: int) -> Inspection:
        """Inspect the local copy of ``image`` open at ``fd``."""
        return inspect_file(
            image['id'], fd, image.get('disk_format'), self.allowed
        )
