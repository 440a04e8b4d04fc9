"""Where the bytes of a download come from: the one ordered list.

``SOURCES``, tried in order, the first that opens gives the bytes:

1. ``cache_entry``: the agent's image cache (``[agent] cache_dir``), when
   the download has an entry (``transfers.downloads`` looks it up, and
   fills a missing one from the sources after it first). A verified
   kernel copy, no Glance traffic.
2. ``file_location``: a ``file://`` location of the image readable on this
   host, when ``[glance] allowed_direct_url_schemes`` has ``file`` and
   Glance recorded a hash and a size; only a regular file, opened without
   following a link or blocking on a FIFO (``localcopy.open_regular``).
3. ``peer_agents``: other agents that have the image in their cache,
   when a pre-cache named peer hosts (``[peers] enabled``,
   ``image_agent.peers``); Glance gives what they cannot, from the offset
   they reached. Bytes that fail the hash are thrown away (the peers that
   sent them avoided) for the next source.
4. ``glance``: Glance's API (``GlanceImageService.open_data``), resumed
   where a stream breaks off.

The one trust rule: a caller gets bytes only once Glance said that this
caller may download this image now (``Grant``). Glance's answer to the
caller's own data request says so; every other source asks first
(``Grant.check``), whoever filled it. A local source that fails
(unreadable, short, wrong hash) is given up for the next one; Glance's
refusals and failures are the caller's.

A new source is a function ``(Request) -> Opened | None`` put in
``SOURCES`` at its place; it calls ``request.grant.check()`` before it
opens anything that is not Glance's answer to the caller.
"""

from collections.abc import Callable
import contextlib
import dataclasses
import os
import threading
from typing import Any
from typing import Protocol
import urllib.parse

from oslo_log import log as logging

from image_agent import cache as image_cache
from image_agent import conf
from image_agent import exception
from image_agent.data import localcopy
from image_agent.data import pipeline
from image_agent.data import verify
from image_agent.formats import inspect

LOG = logging.getLogger(__name__)
CONF = conf.CONF


class ImageData(Protocol):
    """What the sources need of Glance's API (``GlanceImageService``)."""

    def check_download(self, context, image: dict[str, Any]) -> None: ...

    def open_data(
        self, context, image: dict[str, Any], start: int = 0
    ) -> pipeline.Source: ...


class PeerAgents(Protocol):
    """Peers a request may read from (``image_agent.peers.fetcher.Peers``)."""

    def open(self, context, image, glance_at) -> pipeline.Source | None: ...

    def rejected(self, stream, error: BaseException) -> None: ...


class Grant:
    """Glance's word that one caller may download one image now.

    Asked once, before the caller gets bytes from anywhere but Glance's
    own answer to it (the cache, a local file, a file already in place).
    """

    def __init__(self, glance: ImageData, context, image: dict) -> None:
        self._glance = glance
        self._context = context
        self._image = image
        self.given = False

    def check(self) -> None:
        if not self.given:
            self._glance.check_download(self._context, self._image)
            self.given = True


@dataclasses.dataclass
class Request:
    """One caller's download of one image: what every source is given.

    ``entry`` is the image's cache entry, if any; ``fresh`` when this very
    request filled it moments ago (it is read-only and locked while it is
    copied), so that its copy is not hashed twice. One ``hasher`` serves
    every attempt of the download. With ``formats``, every attempt's bytes
    are inspected too (``formats.inspect``): the bytes that are written.
    """

    glance: ImageData
    context: Any
    image: dict[str, Any]
    cache: image_cache.ImageCache | None = None
    entry: image_cache.Entry | None = None
    fresh: bool = False
    cancel: threading.Event | None = None
    peers: PeerAgents | None = None
    formats: inspect.Policy | None = None

    def __post_init__(self) -> None:
        self.grant = Grant(self.glance, self.context, self.image)
        self.hasher = verify.ImageHasher(self.image)


@dataclasses.dataclass
class Opened:
    """A source ready to be read: a local file (``fd``, copied by the
    kernel) or a ``stream``. ``fallback``: the failures after which the
    next source is tried (``failed`` says why); none for Glance."""

    name: str
    fd: int | None = None
    stream: Any = None
    where: str = ''
    verified: bool = False
    fallback: tuple[type[BaseException], ...] = ()
    failed: Callable[[BaseException], None] = lambda error: None
    resources: contextlib.ExitStack = dataclasses.field(
        default_factory=contextlib.ExitStack
    )

    def close(self) -> None:
        self.resources.close()


@dataclasses.dataclass
class Outcome:
    """Where a download's bytes came from and what Glance sent."""

    source: str
    fetched: int = 0
    resumes: int = 0
    # What the bytes are (None: not inspected).
    inspection: inspect.Inspection | None = None


# -- the sources ------------------------------------------------------------


def cache_entry(request: Request) -> Opened | None:
    """The image's entry in the agent's cache."""
    entry = request.entry
    if entry is None:
        return None
    request.grant.check()
    opened = Opened(
        'cache',
        where=entry.path,
        verified=request.fresh,
        fallback=(exception.ImageChecksumMismatch, OSError),
        failed=lambda error: _cache_failed(request, error),
    )
    try:
        opened.fd = opened.resources.enter_context(request.cache.open(entry))
    except OSError as e:
        _cache_failed(request, e)
        return None
    return opened


def file_location(request: Request) -> Opened | None:
    """The first regular file among the image's ``file://`` locations."""
    image = request.image
    found = file_paths(image)
    if not found:
        return None
    request.grant.check()
    for path in found:
        try:
            fd = localcopy.open_regular(path)
        except OSError as e:
            LOG.info(
                'Not reading image %(id)s from %(path)s: %(error)s',
                {'id': image.get('id'), 'path': path, 'error': e},
            )
            continue
        opened = Opened(
            'file',
            fd=fd,
            where=path,
            fallback=(Exception,),
            failed=lambda error, path=path: _file_failed(image, path, error),
        )
        opened.resources.callback(os.close, fd)
        return opened
    return None


def peer_agents(request: Request) -> Opened | None:
    """Other agents' caches, then Glance from where they stopped."""
    peers = request.peers
    if peers is None or verify.recorded_hash(request.image) is None:
        return None
    request.grant.check()
    stream = peers.open(
        request.context,
        request.image,
        lambda offset: request.glance.open_data(
            request.context, request.image, start=offset
        ),
    )
    if stream is None:
        return None
    return Opened(
        'peers',
        stream=stream,
        fallback=(exception.ImageChecksumMismatch,),
        failed=lambda error: peers.rejected(stream, error),
    )


def glance(request: Request) -> Opened:
    """Glance's API: its answer to the caller's own request is the grant."""
    stream = request.glance.open_data(request.context, request.image)
    request.grant.given = True
    return Opened('glance', stream=stream)


SOURCES: tuple[Callable[[Request], Opened | None], ...] = (
    cache_entry,
    file_location,
    peer_agents,
    glance,
)


def file_paths(image: dict[str, Any]) -> list[str]:
    """The local paths of ``image``'s ``file://`` locations it may use.

    None unless ``file`` is an allowed scheme and Glance recorded both a
    hash and a size: a copy that cannot be proven the image's bytes is never
    made (any readable file would otherwise pass for the image).
    """
    if 'file' not in (CONF.glance.allowed_direct_url_schemes or ()):
        return []
    if image.get('size') is None or verify.recorded_hash(image) is None:
        return []
    urls = [image.get('direct_url')]
    urls += [loc.get('url') for loc in image.get('locations') or ()]
    found = []
    for url in filter(None, urls):
        parsed = urllib.parse.urlsplit(url)
        if parsed.scheme != 'file' or parsed.netloc not in ('', 'localhost'):
            continue
        path = urllib.parse.unquote(parsed.path)
        if path not in found:
            found.append(path)
    return found


def _cache_failed(request: Request, error: BaseException) -> None:
    image_id = request.image['id']
    if isinstance(error, exception.ImageChecksumMismatch):
        LOG.error('Cached image %s is damaged: %s', image_id, error)
        request.cache.discard(request.entry)
    else:
        LOG.warning(
            'Could not copy image %s from the cache (%s)', image_id, error
        )


def _file_failed(image: dict, path: str, error: BaseException) -> None:
    LOG.warning(
        'Local copy of image %(id)s from %(path)s failed (%(error)s); '
        'downloading it from Glance',
        {'id': image['id'], 'path': path, 'error': error},
    )


# -- reading them -----------------------------------------------------------


def fill(
    request: Request, out, progress: Callable[[int], None] | None = None
) -> Outcome:
    """Fill the empty temporary file ``out`` (a ``writer.AtomicFile``)
    from the first source that works; the bytes are verified."""
    for source in SOURCES:
        opened = source(request)
        if opened is None:
            continue
        try:
            return _copy(request, opened, out, progress)
        except (pipeline.Cancelled, exception.ImageUnacceptable):
            # An image refused for what it is: any source has its bytes.
            raise
        except opened.fallback as e:
            opened.close()  # a damaged cache entry is removed unread
            opened.failed(e)
            out.reset()
        finally:
            opened.close()
    raise exception.ImageDownloadFailed(
        image_id=request.image['id'], reason='no source'
    )


def _copy(request: Request, opened: Opened, out, progress) -> Outcome:
    image = request.image
    formats = request.formats
    if opened.fd is None:
        # A source that may send wrong bytes (another agent) is judged
        # after its hash: a mismatch falls back to the next source.
        inspector = (
            formats.stream(image, early=not opened.fallback)
            if formats
            else None
        )
        pipeline.copy_verified(
            opened.stream,
            request.hasher,
            out.write,
            progress,
            request.cancel,
            consumers=[inspector.update] if inspector else (),
        )
        return Outcome(
            opened.name,
            getattr(opened.stream, 'fetched', 0),
            getattr(opened.stream, 'resumes', 0),
            inspector.finish() if inspector else None,
        )
    size, how = localcopy.copy_verified(
        opened.fd,
        out.fileno(),
        image.get('size'),
        None if opened.verified else request.hasher,
        progress,
        request.cancel,
    )
    out.copied(size)
    LOG.debug('Copied image %s from %s (%s)', image['id'], opened.where, how)
    # The kernel copied the bytes: the copy's own are inspected (read back
    # from the page cache, only as far as the inspectors need).
    inspection = formats.file(image, out.fileno()) if formats else None
    return Outcome(opened.name, inspection=inspection)


def open_stream(request: Request) -> pipeline.Source:
    """The bytes of the first source that opens, as a stream (for the
    Cinder-compatible ``download``: no fallback once reading began)."""
    for source in SOURCES:
        opened = source(request)
        if opened is None:
            continue
        if opened.fd is None:
            return opened.stream
        LOG.debug(
            'Reading image %s from %s', request.image['id'], opened.where
        )
        return _LocalStream(opened)
    raise exception.ImageDownloadFailed(
        image_id=request.image['id'], reason='no source'
    )


class _LocalStream:
    """A local source read through user space; closing it releases it."""

    def __init__(self, opened: Opened) -> None:
        self._opened = opened

    def readinto(self, view: memoryview) -> int:
        return os.readv(self._opened.fd, [view])

    def close(self) -> None:
        self._opened.close()
