"""The agent's image cache as a source of downloads, and pre-caching.

A download of an image with a hash, on an agent with a cache, is copied
from the image's entry; a missing entry is filled first (from the sources
after the cache in ``data.sources``), once per image however many callers
ask at the same time.
"""

import contextlib
from typing import Any

from oslo_log import log as logging

from image_agent import cache as image_cache
from image_agent import exception
from image_agent.data import sources
from image_agent.i18n import _
from image_agent.transfers import flights
from image_agent.transfers import writing

LOG = logging.getLogger(__name__)


class Caching:
    """Fills and serves one agent's image cache."""

    def __init__(
        self,
        shared: flights.Shared,
        cache: image_cache.ImageCache,
        writer: writing.ImageWriter,
    ) -> None:
        self._shared = shared
        self.cache = cache
        self._writer = writer

    def prepare(self, request: sources.Request) -> dict[str, Any] | None:
        """Give ``request`` its image's cache entry, filled now if missing.

        The caller holds a download slot. Returns how a missing entry was
        filled (None when it was there, and when there is no entry: an
        image without a hash, or no room in the cache; the download then
        goes straight to its destination).
        """
        if image_cache.entry_name(request.image) is None:
            return None
        try:
            request.entry, fill = self._entry(
                request, contextlib.nullcontext()
            )
        except exception.InsufficientSpace as e:
            LOG.info('Not caching image %s: %s', request.image['id'], e)
            return None
        request.fresh = fill is not None
        return fill

    def precache(self, context, image_id: str, peers=None) -> dict[str, Any]:
        """Put an image in the cache; see ``Transfers.precache``.

        ``peers``: the ``sources.PeerAgents`` a missing entry may be
        filled from."""
        image = self._shared.images.show(context, image_id)
        if self._shared.formats is not None:
            self._shared.formats.check(image)
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
        request = sources.Request(
            self._shared.images,
            context,
            image,
            cache=self.cache,
            cancel=self._shared.cancel,
            peers=peers,
            formats=self._shared.formats,
        )
        slot = self._shared.slots.held(
            'downloads', lambda: shutting_down(image['id'])
        )
        entry, fill = self._entry(request, slot)
        if fill is None:
            self.cache.touch(entry)
            return result
        result.update(
            status='cached', source=fill['source'], fetched=fill['fetched']
        )
        return result

    def _entry(self, request: sources.Request, slot) -> tuple[Any, Any]:
        """``(entry, fill)``: the image's entry, looked up once, filled
        (within ``slot``) when missing; ``fill`` is None when it was there.
        One call per entry at a time: who asks meanwhile shares it."""
        image = request.image
        destination = self.cache.destination(image)

        def lookup_or_fill() -> tuple[Any, Any]:
            entry = self.cache.lookup(image)
            if entry is not None:
                return entry, None
            size = image.get('size') or 0
            with (
                slot,
                self.cache.reserve(size, keep=destination.name),
                self._shared.space.reserve(
                    destination.directory, image['id'], size
                ) as reservation,
            ):
                fill = self._writer.write(
                    request,
                    destination,
                    True,
                    mode=image_cache.MODE,
                    reservation=reservation,
                )
            return self.cache.written(destination, fill['size']), fill

        return self._shared.flights.run(
            ('cache', destination.path),
            lookup_or_fill,
            own_errors=flights.CALLERS_OWN,
        )


def shutting_down(image_id: str) -> Exception:
    return exception.ImageDownloadFailed(
        image_id=image_id, reason=flights.SHUTTING_DOWN
    )
