"""Downloads to and uploads from local paths: limits, sharing and reuse.

``Transfers`` decides *whether* and *when* bytes move; ``writer`` moves them
and ``paths`` says where they may go. A bounded number of transfers run at
once; the same request made twice at once (same image, same path) is one
transfer whose result both callers get; a verified identical file already
at the destination is reused instead of downloaded again.

Where the bytes of a download come from, first found first: the agent's
image cache (``cache``; a download of a cached image is a verified kernel
copy, no Glance traffic), a ``file://`` location readable on this host
(``localcopy``; when ``[glance] allowed_direct_url_schemes`` has ``file``),
Glance's API. A local copy that fails for any reason (unreadable, short,
wrong hash) falls back to the API. With a cache, an image downloaded from
Glance goes into the cache first and is copied from there.
"""

from collections.abc import Callable
import dataclasses
import datetime
import errno
import hashlib
import json
import os
import threading
import time
from typing import Any

from oslo_log import log as logging

from image_agent import admission
from image_agent import cache as image_cache
from image_agent import conf
from image_agent import exception
from image_agent import localcopy
from image_agent import paths
from image_agent import space
from image_agent import writer
from image_agent.i18n import _
from image_agent.image import pipeline
from image_agent.image import verify

LOG = logging.getLogger(__name__)
CONF = conf.CONF

_SLOT_POLL = 0.5
# A disk (or quota) that fills up while a download is written.
_OUT_OF_SPACE = (errno.ENOSPC, errno.EDQUOT)
_SHUTTING_DOWN = _('the agent is shutting down')


class _Flight:
    """One running transfer and the callers waiting for its outcome."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.result: Any = None
        self.error: BaseException | None = None


class SingleFlight:
    """Run one call per key at a time; concurrent callers share its outcome."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._flights: dict[Any, _Flight] = {}

    def run(
        self,
        key: Any,
        func: Callable[[], Any],
        join: Callable[[], Any] | None = None,
        own_errors: tuple[type[BaseException], ...] = (),
    ) -> Any:
        """``func()``, or the outcome of the call of ``key`` running now.

        A caller that joins a running call first runs ``join()`` (its own
        check: a caller is never given what it may not have). An error in
        ``own_errors`` belongs to the caller that met it (a refusal of its
        token): one who joined does not inherit it, and runs again.
        """
        while True:
            with self._lock:
                flight = self._flights.get(key)
                leader = flight is None
                if leader:
                    flight = self._flights[key] = _Flight()
            if leader:
                return self._lead(key, flight, func)
            if join is not None:
                join()
            flight.done.wait()
            if flight.error is None:
                return flight.result
            if not isinstance(flight.error, own_errors):
                raise flight.error

    def _lead(self, key: Any, flight: _Flight, func: Callable[[], Any]) -> Any:
        try:
            flight.result = func()
            return flight.result
        except BaseException as e:
            flight.error = e
            raise
        finally:
            with self._lock:
                del self._flights[key]
            flight.done.set()


@dataclasses.dataclass
class Progress:
    """What a running transfer has done so far (reported by ``ping``)."""

    kind: str
    image_id: str | None
    path: str
    size: int | None
    started_at: str
    started: float = dataclasses.field(default_factory=time.monotonic)
    bytes: int = 0
    fetched: int | None = None
    resumes: int | None = None
    # Whose transfer it is: ping shows a caller only its project's.
    project_id: str | None = None

    def as_dict(self) -> dict[str, Any]:
        elapsed = time.monotonic() - self.started
        return {
            'kind': self.kind,
            'image_id': self.image_id,
            'path': self.path,
            'size': self.size,
            'bytes': self.bytes,
            'started_at': self.started_at,
            'elapsed': round(elapsed, 3),
            # Bytes per second since the start.
            'rate': round(self.bytes / elapsed) if elapsed > 0 else 0,
        }


class _CancellableReader:
    """A file wrapper that counts what is read and stops on cancel."""

    def __init__(self, source, progress: Progress, cancel: threading.Event):
        self._source = source
        self._progress = progress
        self._cancel = cancel

    def read(self, size: int = -1) -> bytes:
        if self._cancel.is_set():
            raise pipeline.Cancelled()
        data = self._source.read(size)
        self._progress.bytes += len(data)
        return data

    def tell(self) -> int:
        return self._source.tell()

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        position = self._source.seek(offset, whence)
        self._progress.bytes = position
        return position


class _Grant:
    """Glance's word that one caller may download one image now.

    Asked once, before the caller gets bytes from anywhere but Glance's
    own answer to it (the cache, a local file, a file already in place).
    """

    def __init__(self, images, context, image: dict[str, Any]) -> None:
        self._images = images
        self._context = context
        self._image = image
        self.given = False

    def check(self) -> None:
        if not self.given:
            self._images.check_download(self._context, self._image)
            self.given = True


# Errors that answer one caller's token: another caller sharing the
# transfer does not inherit them.
_CALLERS_OWN = (exception.NotAuthorized, exception.ImageNotFound)


def _caller(context) -> str:
    """Who is asking, for transfers shared only by the same caller."""
    token = getattr(context, 'auth_token', None) or ''
    who = '%s/%s' % (
        getattr(context, 'user_id', None),
        getattr(context, 'project_id', None),
    )
    return hashlib.sha256((who + '\0' + token).encode()).hexdigest()


@dataclasses.dataclass
class _Outcome:
    """Where a download's bytes came from and what Glance sent."""

    source: str
    fetched: int = 0
    resumes: int = 0


def _notify_none(context, event: str, payload: dict, error: bool = False):
    """The notifier used when none is given: send nothing."""


class Transfers:
    """Every local-path transfer of one agent."""

    def __init__(
        self,
        image_service,
        download_roots: list[str],
        upload_roots: list[str] | None,
        file_mode: int = 0o600,
        file_group: int | None = None,
        max_downloads: int = 4,
        max_uploads: int = 4,
        free_space_margin: int = 0,
        notify: Callable[..., None] = _notify_none,
        progress_interval: float = 0,
        cache: image_cache.ImageCache | None = None,
        max_waiting: int = 32,
    ) -> None:
        self._images = image_service
        self._progress_interval = progress_interval
        self.downloads = paths.PathPolicy(download_roots, 'download')
        if upload_roots is None:
            upload_roots = download_roots
        self.uploads = paths.PathPolicy(
            upload_roots,
            'upload',
            excluded=[cache.directory] if cache is not None else (),
        )
        self._mode = file_mode
        self._group = file_group
        self.space = space.SpaceLedger(free_space_margin)
        self._download_slots = threading.BoundedSemaphore(max_downloads)
        self._upload_slots = threading.BoundedSemaphore(max_uploads)
        self._slot_counts = {
            'downloads': max_downloads,
            'uploads': max_uploads,
        }
        self.admission = admission.Admission(
            max_downloads + max_uploads, max_waiting
        )
        self._flights = SingleFlight()
        self._notify = notify
        self._cancel = threading.Event()
        self._active: dict[int, Progress] = {}
        self._lock = threading.Lock()
        self.cache = cache
        if cache is not None:
            if not self.downloads.is_inside(cache.directory):
                raise exception.InvalidConfigurationValue(
                    option='[agent] cache_dir',
                    value=cache.directory,
                    reason=_('it must be inside one of the download roots'),
                )
            cache.ensure_directory()

    @classmethod
    def from_conf(
        cls, conf, image_service, notify=_notify_none
    ) -> 'Transfers':
        agent = conf.agent
        cache = None
        if agent.cache_dir:
            if not os.path.isabs(agent.cache_dir):
                raise exception.InvalidConfigurationValue(
                    option='[agent] cache_dir',
                    value=agent.cache_dir,
                    reason=_('it must be an absolute path'),
                )
            cache = image_cache.ImageCache(
                agent.cache_dir, agent.cache_max_size * 1024 * 1024
            )
        return cls(
            image_service,
            agent.download_roots,
            agent.upload_roots,
            file_mode=writer.parse_mode(agent.file_mode),
            file_group=writer.parse_group(agent.file_group),
            max_downloads=agent.max_concurrent_downloads,
            max_uploads=agent.max_concurrent_uploads,
            free_space_margin=agent.free_space_margin_mb * 1024 * 1024,
            notify=notify,
            progress_interval=agent.progress_interval,
            cache=cache,
            max_waiting=agent.max_waiting_transfers,
        )

    # -- lifecycle ---------------------------------------------------------

    def remove_orphans(self, depth: int) -> list[str]:
        """Remove temporary files left by a crash under the download roots
        (and in the image cache, however deep it lies)."""
        removed = paths.remove_orphans(self.downloads.roots, depth)
        if self.cache is not None:
            removed += [
                path
                for path in paths.remove_orphans([self.cache.directory], 0)
                if path not in removed
            ]
        return removed

    def cancel_all(self) -> None:
        """Abandon running and waiting transfers (the agent is stopping)."""
        self._cancel.set()

    def status(self, project_id: str | None = None) -> list[dict[str, Any]]:
        """The running transfers; with ``project_id``, that project's only."""
        with self._lock:
            return [
                p.as_dict()
                for p in self._active.values()
                if project_id is None or p.project_id == project_id
            ]

    def slots(self) -> dict[str, dict[str, int]]:
        """Transfer slots in use and in all, for the agent's reports."""
        free = {
            'downloads': self._download_slots._value,  # noqa: SLF001
            'uploads': self._upload_slots._value,  # noqa: SLF001
        }
        return {
            kind: {'in_use': total - free[kind], 'total': total}
            for kind, total in self._slot_counts.items()
        }

    # -- helpers -----------------------------------------------------------

    def _acquire(self, slots: threading.BoundedSemaphore) -> None:
        while not slots.acquire(timeout=_SLOT_POLL):
            if self._cancel.is_set():
                raise pipeline.Cancelled()

    def _track(self, progress: Progress) -> int:
        with self._lock:
            self._active[id(progress)] = progress
        return id(progress)

    def _untrack(self, key: int) -> None:
        with self._lock:
            self._active.pop(key, None)

    @staticmethod
    def _now() -> str:
        return datetime.datetime.now(datetime.UTC).isoformat()

    # -- downloads ---------------------------------------------------------

    def download(
        self, context, image_id: str, path: str, overwrite: bool = False
    ) -> dict[str, Any]:
        """Download an image to ``path`` on this host.

        Returns ``path``, ``size``, ``os_hash_algo``, ``os_hash_value`` and
        ``reused`` (True when a verified identical file was already there).
        """
        with self.admission.admit():
            return self._admitted_download(context, image_id, path, overwrite)

    def _admitted_download(self, context, image_id, path, overwrite) -> dict:
        destination = self.downloads.destination(path)
        if self.cache is not None and self.cache.contains(
            destination.directory
        ):
            raise exception.InvalidPath(
                path=paths.display(path),
                reason=_('it is inside the image cache'),
            )
        # The caller's own right to the image is checked before it may join
        # a transfer someone else started.
        image = self._images.show(context, image_id)
        key = ('download', image['id'], destination.path, bool(overwrite))
        return self._flights.run(
            key,
            lambda: self._download(context, image, destination, overwrite),
            join=lambda: self._images.check_download(context, image),
            own_errors=_CALLERS_OWN,
        )

    def _download(self, context, image, destination, overwrite) -> dict:
        image_id = image['id']
        size = image.get('size')
        hasher = verify.ImageHasher(image)
        result = {
            'path': destination.path,
            'size': size,
            'os_hash_algo': hasher.algorithm,
            'os_hash_value': hasher.expected,
            'reused': False,
            'source': None,
            'fetched': 0,
        }
        grant = _Grant(self._images, context, image)
        existing = self.downloads.check_existing(destination)
        if existing is not None:
            if self._reuse(destination, image, existing, grant):
                result['reused'] = True
                return result
            if not overwrite:
                raise exception.DestinationExists(
                    path=paths.display(destination.requested)
                )
        with self.space.reserve(destination.directory, image_id, size) as r:
            self._take_download_slot(image_id)
            try:
                entry, fill = self._cache_entry(context, image, grant)
                done = self._transfer_download(
                    context,
                    image,
                    destination,
                    overwrite,
                    cached=entry,
                    # An entry this call has just filled was verified
                    # moments ago (it is read-only and locked while
                    # copied): its copy is not hashed twice. An entry found
                    # in the cache is.
                    trusted=bool(fill and fill.get('source') is not None),
                    reservation=r,
                    grant=grant,
                )
            finally:
                self._download_slots.release()
        result['size'] = done['size']
        result['source'] = done['source']
        result['fetched'] = done['fetched'] + (fill or {}).get('fetched', 0)
        return result

    def _reuse(self, destination, image, existing, grant: _Grant) -> bool:
        """Whether the file already at ``destination`` is the image, for
        this caller: hashed within a download slot, then Glance asked."""
        self._take_download_slot(image['id'])
        try:
            if not writer.matches_image(destination.path, image, existing):
                return False
        finally:
            self._download_slots.release()
        grant.check()
        LOG.info(
            'Reusing %s: it already holds image %s',
            destination.path,
            image['id'],
        )
        return True

    def _take_download_slot(self, image_id: str) -> None:
        try:
            self._acquire(self._download_slots)
        except pipeline.Cancelled as e:
            raise exception.ImageDownloadFailed(
                image_id=image_id, reason=_SHUTTING_DOWN
            ) from e

    # -- the image cache ---------------------------------------------------

    def _cache_entry(
        self, context, image, grant: _Grant
    ) -> tuple[Any, dict | None]:
        """The cache entry of ``image``, filled now if it is missing.

        Returns ``(entry, fill)``: ``fill`` says how a missing entry was
        filled (None when it was there). ``(None, None)`` without a cache,
        for an image without a hash, or when the cache has no room: the
        download then goes straight to its destination.
        """
        if self.cache is None or image_cache.entry_name(image) is None:
            return None, None
        entry = self.cache.lookup(image)
        if entry is not None:
            return entry, None
        try:
            fill = self._fill_cache(context, image, grant)
        except exception.InsufficientSpace as e:
            LOG.info('Not caching image %s: %s', image['id'], e)
            return None, None
        return self.cache.lookup(image), fill

    def _fill_cache(self, context, image, grant: _Grant) -> dict:
        """Put ``image`` in the cache (one transfer per image at a time).

        The caller holds a download slot.
        """
        destination = self.cache.destination(image)
        key = ('cache', destination.path)

        def fill() -> dict:
            if self.cache.lookup(image) is not None:
                return {
                    'size': image.get('size'),
                    'source': None,
                    'fetched': 0,
                }
            size = image.get('size') or 0
            with (
                self.cache.reserve(size, keep=destination.name),
                self.space.reserve(
                    destination.directory, image['id'], size
                ) as reservation,
            ):
                return self._transfer_download(
                    context,
                    image,
                    destination,
                    True,
                    mode=image_cache.MODE,
                    reservation=reservation,
                    grant=grant,
                )

        return self._flights.run(key, fill, own_errors=_CALLERS_OWN)

    def precache(self, context, image_id: str) -> dict[str, Any]:
        """Put an image in this agent's cache.

        Returns ``image_id``, ``status`` (``cached``: copied in now;
        ``existing``: it was there), ``size`` and ``fetched`` (bytes
        received from Glance).
        """
        if self.cache is None:
            raise exception.CacheDisabled()
        with self.admission.admit():
            return self._precache(context, image_id)

    def _precache(self, context, image_id: str) -> dict[str, Any]:
        image = self._images.show(context, image_id)
        if image_cache.entry_name(image) is None:
            raise exception.ImageUnacceptable(
                image_id=image_id,
                reason=_('it has no hash, so it cannot be cached'),
            )
        result = {
            'image_id': image['id'],
            'size': image.get('size'),
            'status': 'existing',
            'fetched': 0,
            'source': None,
        }
        entry = self.cache.lookup(image)
        if entry is not None:
            self.cache.touch(entry)
            return result
        self._take_download_slot(image['id'])
        try:
            done = self._fill_cache(
                context, image, _Grant(self._images, context, image)
            )
        finally:
            self._download_slots.release()
        if done['source'] is not None:
            result.update(
                status='cached', source=done['source'], fetched=done['fetched']
            )
        return result

    def list_cache(self) -> dict[str, Any]:
        if self.cache is None:
            raise exception.CacheDisabled()
        return self.cache.status()

    def evict(self, image_id: str) -> dict[str, Any]:
        if self.cache is None:
            raise exception.CacheDisabled()
        return {'image_id': image_id, 'evicted': self.cache.evict(image_id)}

    # -- moving the bytes --------------------------------------------------

    def _transfer_download(
        self,
        context,
        image,
        destination,
        overwrite,
        cached=None,
        mode=None,
        trusted=False,
        reservation=None,
        grant: _Grant | None = None,
    ) -> dict:
        """Write ``image`` to ``destination``; return ``size``, ``source``
        (``cache``, ``file`` or ``glance``) and ``fetched``."""
        image_id = image['id']
        progress = Progress(
            'download',
            image_id,
            destination.path,
            image.get('size'),
            self._now(),
            project_id=getattr(context, 'project_id', None),
        )
        payload = {'image_id': image_id, 'path': destination.path}
        self._notify(context, 'image.download.start', dict(payload))
        tracked = self._track(progress)
        dir_fd = None
        try:
            dir_fd = self.downloads.open_directory(destination)
            with writer.AtomicFile(
                destination,
                dir_fd,
                self._mode if mode is None else mode,
                overwrite,
                group=self._group if mode is None else None,
                cancel=self._cancel,
                expected_size=image.get('size'),
                reservation=reservation,
            ) as out:
                outcome = self._fill(
                    context,
                    image,
                    out,
                    self._progress_reporter(context, progress),
                    cached,
                    grant or _Grant(self._images, context, image),
                    trusted,
                )
        except BaseException as e:
            error = e
            if isinstance(e, pipeline.Cancelled):
                error = exception.ImageDownloadFailed(
                    image_id=image_id, reason=_SHUTTING_DOWN
                )
            elif isinstance(e, OSError) and e.errno in _OUT_OF_SPACE:
                error = exception.OutOfSpace(
                    path=destination.directory,
                    image_id=image_id,
                    reason=e.strerror,
                )
            elif isinstance(e, (OSError, writer.SizeMismatch)):
                error = exception.ImageDownloadFailed(
                    image_id=image_id, reason=str(e)
                )
            self._notify(
                context,
                'image.download.error',
                self._finished(payload, progress, error=error),
                error=True,
            )
            if error is not e:
                raise error from e
            raise
        finally:
            self._untrack(tracked)
            if dir_fd is not None:
                os.close(dir_fd)
        progress.fetched, progress.resumes = outcome.fetched, outcome.resumes
        end = self._finished(payload, progress)
        end['source'] = outcome.source
        self._notify(context, 'image.download.end', end)
        LOG.info(
            'Downloaded image %(id)s to %(path)s from %(source)s: %(bytes)d '
            'bytes in %(duration).2f s (%(rate).0f MB/s), %(fetched)d bytes '
            'received from Glance, %(resumes)d resumes',
            {
                'id': image_id,
                'path': destination.path,
                'source': outcome.source,
                'bytes': out.written,
                'duration': end['duration'],
                'rate': end['rate'] / 1e6,
                'fetched': outcome.fetched,
                'resumes': outcome.resumes,
            },
        )
        return {
            'size': out.written,
            'source': outcome.source,
            'fetched': outcome.fetched,
        }

    def _fill(
        self, context, image, out, report, cached, grant, trusted=False
    ) -> '_Outcome':
        """Fill the temporary file ``out`` from the first source that works:
        the cache entry ``cached``, a local ``file://`` location, Glance.

        Bytes from the first two are the caller's only once Glance said so
        (``grant``); Glance's answer to the caller's own request is that.
        """
        if cached is not None:
            grant.check()
            try:
                with self.cache.open(cached) as fd:
                    size, _how = localcopy.copy_verified(
                        fd,
                        out.fileno(),
                        image,
                        report,
                        self._cancel,
                        verify=not trusted,
                    )
                out.copied(size)
                return _Outcome('cache')
            except pipeline.Cancelled:
                raise
            except exception.ImageChecksumMismatch as e:
                LOG.error('Cached image %s is damaged: %s', image['id'], e)
                self.cache.discard(cached)
            except OSError as e:
                LOG.warning(
                    'Could not copy image %s from the cache (%s)',
                    image['id'],
                    e,
                )
            out.reset()
        if localcopy.file_paths(image, CONF.glance.allowed_direct_url_schemes):
            grant.check()
            if (
                outcome := self._copy_location(image, out, report)
            ) is not None:
                return outcome
        outcome = self._images.download_image(
            context, image, out.write, progress=report, cancel=self._cancel
        )
        grant.given = True
        return _Outcome('glance', outcome.fetched, outcome.resumes)

    def _copy_location(self, image, out, report) -> '_Outcome | None':
        """Copy a ``file://`` location into ``out``; None when none works."""
        opened = localcopy.open_location(
            image, CONF.glance.allowed_direct_url_schemes
        )
        if opened is None:
            return None
        fd, path = opened
        try:
            size, how = localcopy.copy_verified(
                fd, out.fileno(), image, report, self._cancel
            )
        except pipeline.Cancelled:
            raise
        except Exception as e:
            LOG.warning(
                'Local copy of image %(id)s from %(path)s failed '
                '(%(error)s); downloading it from Glance',
                {'id': image['id'], 'path': path, 'error': e},
            )
            out.reset()
            return None
        finally:
            os.close(fd)
        out.copied(size)
        LOG.debug('Copied image %s from %s (%s)', image['id'], path, how)
        return _Outcome('file')

    def _progress_reporter(
        self, context, progress: Progress
    ) -> Callable[[int], None]:
        """Count written bytes; notify ``image.download.progress`` at most
        every ``progress_interval`` seconds (never when it is 0)."""
        last = [progress.started]
        payload = {'image_id': progress.image_id, 'path': progress.path}

        def report(written: int) -> None:
            progress.bytes = written
            now = time.monotonic()
            if self._progress_interval and (
                now - last[0] >= self._progress_interval
            ):
                last[0] = now
                self._notify(
                    context,
                    'image.download.progress',
                    self._finished(payload, progress),
                )

        return report

    @staticmethod
    def _finished(payload: dict, progress: Progress, error=None) -> dict:
        """The payload of a progress, end or error notification."""
        payload = dict(payload)
        status = progress.as_dict()
        payload['bytes'] = progress.bytes
        payload['size'] = progress.size
        payload['duration'] = status['elapsed']
        payload['rate'] = status['rate']
        if progress.kind == 'download':
            payload['fetched'] = progress.fetched
            payload['resumes'] = progress.resumes
        if error is not None:
            payload['error'] = str(error)
            payload['error_class'] = type(error).__name__
        return payload

    # -- uploads -----------------------------------------------------------

    def upload(
        self,
        context,
        path: str,
        send: Callable[[Any], dict],
        image_id: str | None = None,
        request: dict | None = None,
    ) -> dict:
        """Upload the file at ``path`` with ``send(data)``; return its result.

        ``send`` is the image service call (create or update) that consumes
        the data. With an ``image_id``, the same request (same image, path
        and ``request`` arguments) made twice at once is sent once.
        """
        with self.admission.admit():
            return self._admitted_upload(
                context, path, send, image_id, request
            )

    def _admitted_upload(self, context, path, send, image_id, request):
        source = self.uploads.open_source(path)
        with source:
            size = os.fstat(source.fileno()).st_size
            real = paths.fd_path(source.fileno()) or path

            def run() -> dict:
                return self._upload(
                    context, source, real, size, send, image_id
                )

            if image_id is None:
                return run()
            # Shared by the same caller only: Glance checks every token.
            key = (
                'upload',
                _caller(context),
                image_id,
                real,
                json.dumps(request or {}, sort_keys=True, default=str),
            )
            return self._flights.run(key, run)

    def _upload(self, context, source, path, size, send, image_id) -> dict:
        try:
            self._acquire(self._upload_slots)
        except pipeline.Cancelled as e:
            raise exception.ImageUploadFailed(
                path=path, reason=_SHUTTING_DOWN
            ) from e
        progress = Progress(
            'upload',
            image_id,
            path,
            size,
            self._now(),
            project_id=getattr(context, 'project_id', None),
        )
        payload = {'image_id': image_id, 'path': path}
        self._notify(context, 'image.upload.start', dict(payload))
        tracked = self._track(progress)
        try:
            image = send(_CancellableReader(source, progress, self._cancel))
        except BaseException as e:
            error = e
            if self._cancel.is_set():
                error = exception.ImageUploadFailed(
                    path=path, reason=_SHUTTING_DOWN
                )
            self._notify(
                context,
                'image.upload.error',
                self._finished(payload, progress, error=error),
                error=True,
            )
            if error is not e:
                raise error from e
            raise
        finally:
            self._untrack(tracked)
            self._upload_slots.release()
        payload['image_id'] = image.get('id', image_id)
        self._notify(
            context, 'image.upload.end', self._finished(payload, progress)
        )
        return image
