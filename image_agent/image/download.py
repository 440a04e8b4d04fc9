"""Downloading one image: where its bytes come from and where they go.

The bytes come from a ``file://`` location readable on this host when
``[glance] allowed_direct_url_schemes`` allows it, otherwise from Glance's
API (``fetch.HttpSource``, resumable). They go to a caller's ``write``
(hashed and written in parallel, ``pipeline.copy_verified``) or out of an
iterator (``pipeline.iter_verified``). Either way the whole image is
checked against the hash Glance recorded.
"""

from collections.abc import Callable
from collections.abc import Iterator
import dataclasses
import io
import os
import threading
from typing import Any

from oslo_log import log as logging

from image_agent import conf
from image_agent import localcopy
from image_agent.image import fetch
from image_agent.image import pipeline
from image_agent.image import verify

LOG = logging.getLogger(__name__)
CONF = conf.CONF


@dataclasses.dataclass
class Outcome:
    """What a download from Glance did: bytes received, resumes."""

    fetched: int
    resumes: int


def local_source(image: dict[str, Any]) -> pipeline.Source | None:
    """A ``file://`` location of the image readable here, if allowed.

    The one rule of ``localcopy.open_location``: a recorded hash and size,
    a regular file opened without following a link or blocking on a FIFO.
    """
    opened = localcopy.open_location(
        image, CONF.glance.allowed_direct_url_schemes
    )
    if opened is None:
        return None
    fd, path = opened
    LOG.debug('Reading image %s from %s', image.get('id'), path)
    return os.fdopen(fd, 'rb', buffering=0)


def check(context, client, image: dict[str, Any]) -> None:
    """Raise unless Glance lets the caller of ``context`` download the
    image now (ImageNotAuthorized for a deactivated image, for instance).

    ``show`` is not enough: Glance's download policy and an image's status
    are checked on its data only. Asked before bytes come from anywhere
    else than Glance's answer to this caller (a local file, the cache).
    """
    http_source(context, client, image).check()


def http_source(context, client, image: dict[str, Any]) -> fetch.HttpSource:
    """The image from Glance's API over ``client``'s server rotation.

    An image without a hash resumes without ranges: nothing would prove
    that a ranged answer continues the bytes already written (Glance's
    http store ignores the offset), so the start is fetched and skipped.
    """
    _, next_server = client.server_picker(context)
    return fetch.HttpSource(
        context,
        image['id'],
        next_server,
        expected_size=image.get('size'),
        ranges=verify.ImageHasher.describes(image),
    )


def _open(context, client, image, local: bool = True) -> pipeline.Source:
    """The image's bytes: a local ``file://`` location once Glance said
    this caller may have them, else Glance's answer itself."""
    if local and localcopy.file_paths(
        image, CONF.glance.allowed_direct_url_schemes
    ):
        check(context, client, image)
        source = local_source(image)
        if source is not None:
            return source
    source = http_source(context, client, image)
    # Refusals (404, 403, no data) are raised now, not mid-stream.
    source.open()
    return source


def copy_to(
    context,
    client,
    image: dict[str, Any],
    write: pipeline.Write,
    progress: Callable[[int], None] | None = None,
    cancel: threading.Event | None = None,
    caller_writes: bool = False,
    local: bool = True,
) -> Outcome:
    """Download ``image`` to ``write``, verified; see copy_verified.

    ``local=False``: from Glance's API only (the agent has tried the local
    sources itself).
    """
    hasher = verify.ImageHasher(image)
    source = _open(context, client, image, local)
    pipeline.copy_verified(
        source, hasher, write, progress, cancel, caller_writes=caller_writes
    )
    if isinstance(source, fetch.HttpSource):
        return Outcome(source.fetched, source.resumes)
    return Outcome(0, 0)


def iterate(context, client, image: dict[str, Any]) -> Iterator[bytes]:
    """The bytes of ``image`` as an iterator, checked after the last."""
    hasher = verify.ImageHasher(image)
    return pipeline.iter_verified(_open(context, client, image), hasher)


def writer_for(data: Any) -> pipeline.Write:
    """A ``write(view)`` for a caller's ``data`` object.

    Files and other io objects take the reused buffers' views directly (they
    copy or write before returning); anything else gets ``bytes`` of its
    own, since it might keep what it is given.
    """
    if isinstance(data, io.IOBase):
        return lambda view: _write_fully(data.write, view)
    return lambda view: data.write(view.tobytes())


def _write_fully(write: Callable, view: memoryview) -> None:
    while view:
        written = write(view)
        if written is None or written >= len(view):
            return
        view = view[written:]
