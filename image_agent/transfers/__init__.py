"""Downloads to and uploads from local paths: limits, sharing and reuse.

``Transfers`` is what the manager uses; the parts live apart:

* ``flights``: when a transfer may run (slots, single-flight, cancel);
* ``progress``: what running transfers did (``ping``, notifications);
* ``downloads``: a download's checks, sharing and reuse of a file in place;
* ``caching``: the image cache as a source of downloads, and pre-caching;
* ``writing``: one download written to one file, tracked and notified;
* ``uploads``: uploads from the upload roots.

Where the bytes of a download come from is ``image_agent.data.sources``.
"""

from collections.abc import Callable
import os
import threading
from typing import Any

from image_agent import admission
from image_agent import cache as image_cache
from image_agent import exception
from image_agent import paths
from image_agent import space
from image_agent.data import writer
from image_agent.formats import convert
from image_agent.formats import inspect
from image_agent.i18n import _
from image_agent.peers import fetcher as peer_fetcher
from image_agent.transfers import caching
from image_agent.transfers import downloads
from image_agent.transfers import flights
from image_agent.transfers import progress
from image_agent.transfers import uploads
from image_agent.transfers import writing
from image_agent.transfers.flights import SingleFlight
from image_agent.transfers.progress import Progress

__all__ = ['Progress', 'SingleFlight', 'Transfers']


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
        notify: Callable[..., None] | None = None,
        progress_interval: float = 0,
        cache: image_cache.ImageCache | None = None,
        max_waiting: int = 32,
        formats: inspect.Policy | None = None,
        conversion: convert.Settings | None = None,
        direct_io: bool = False,
    ) -> None:
        self.downloads = paths.PathPolicy(download_roots, 'download')
        self.uploads = paths.PathPolicy(
            download_roots if upload_roots is None else upload_roots,
            'upload',
            excluded=[cache.directory] if cache is not None else (),
        )
        cancel = threading.Event()
        self.shared = flights.Shared(
            image_service,
            progress.Board(notify, progress_interval),
            flights.Slots(max_downloads, max_uploads, cancel),
            space.SpaceLedger(free_space_margin),
            admission.Admission(max_downloads + max_uploads, max_waiting),
            cancel,
            formats=formats,
            conversion=conversion or convert.Settings(),
        )
        self.space = self.shared.space
        self.admission = self.shared.admission
        self.cache = cache
        # The fetching side of [peers] (``peers.fetcher.PeerFetcher``), set
        # by the service when peers are enabled.
        self.peers = None
        write = writing.ImageWriter(
            self.shared, self.downloads, file_mode, file_group, direct_io
        )
        self._caching = None
        if cache is not None:
            if not self.downloads.is_inside(cache.directory):
                raise exception.InvalidConfigurationValue(
                    option='[agent] cache_dir',
                    value=cache.directory,
                    reason=_('it must be inside one of the download roots'),
                )
            cache.ensure_directory()
            self._caching = caching.Caching(self.shared, cache, write)
        self._downloads = downloads.Downloads(
            self.shared, self.downloads, write, self._caching
        )
        self._uploads = uploads.Uploads(self.shared, self.uploads)

    @classmethod
    def from_conf(cls, conf, image_service, notify=None) -> 'Transfers':
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
            formats=inspect.Policy.from_conf(conf),
            conversion=convert.Settings.from_conf(conf),
            direct_io=agent.direct_io,
        )

    # -- lifecycle and reports ---------------------------------------------

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
        self.shared.cancel.set()

    def status(self, project_id: str | None = None) -> list[dict[str, Any]]:
        """The running transfers; with ``project_id``, that project's only."""
        return self.shared.board.status(project_id)

    def slots(self) -> dict[str, dict[str, int]]:
        """Transfer slots in use and in all, for the agent's reports."""
        return self.shared.slots.usage()

    # -- the operations ----------------------------------------------------

    def download(
        self,
        context,
        image_id: str,
        path: str,
        overwrite: bool = False,
        convert_to: str | None = None,
    ) -> dict[str, Any]:
        """Download an image to ``path`` on this host.

        Returns ``path``, ``size``, ``os_hash_algo``, ``os_hash_value``,
        ``reused`` (True when a verified identical file was already there),
        ``source`` (``cache``, ``file`` or ``glance``), ``fetched``
        (bytes received from Glance), ``disk_format_detected`` and
        ``virtual_size`` (what inspection found; None when it is off) and
        ``converted_from`` (the format converted from, or None). With
        ``convert_to='raw'`` the file is the image converted to raw.
        """
        with self.admission.admit():
            return self._downloads.download(
                context, image_id, path, overwrite, convert_to
            )

    def precache(
        self, context, image_id: str, peers: list[str] = ()
    ) -> dict[str, Any]:
        """Put an image in this agent's cache.

        Returns ``image_id``, ``status`` (``cached``: copied in now;
        ``existing``: it was there), ``size``, ``source`` (``peers``: from
        other agents) and ``fetched`` (bytes received from Glance).
        ``peers``: hosts whose agents may have it (with ``[peers]
        enabled``; ignored otherwise); ``rejected_peers`` names those whose
        bytes did not match Glance's hash.
        """
        if self._caching is None:
            raise exception.CacheDisabled()
        offer = None
        if peers and self.peers is not None:
            offer = peer_fetcher.Peers(self.peers, list(peers))
        with self.admission.admit():
            result = self._caching.precache(context, image_id, offer)
        if offer is not None and offer.rejected_hosts:
            result['rejected_peers'] = offer.rejected_hosts
        return result

    def list_cache(self) -> dict[str, Any]:
        if self.cache is None:
            raise exception.CacheDisabled()
        return self.cache.status()

    def evict(self, image_id: str) -> dict[str, Any]:
        if self.cache is None:
            raise exception.CacheDisabled()
        return {'image_id': image_id, 'evicted': self.cache.evict(image_id)}

    def upload(
        self,
        context,
        path: str,
        send: Callable[[Any], dict],
        image_id: str | None = None,
        request: dict | None = None,
        conversion: tuple[str, str] | None = None,
    ) -> dict:
        """Upload the file at ``path`` with ``send(data)``; return its result.

        ``send`` is the image service call (create or update) that consumes
        the data. With an ``image_id``, the same request (same image, path
        and ``request`` arguments) made twice at once is sent once. With
        ``conversion`` (source format, target format), what is sent is the
        file inspected, then converted by qemu-img into a private
        temporary directory (removed at the end).
        """
        with self.admission.admit():
            return self._uploads.upload(
                context, path, send, image_id, request, conversion
            )
