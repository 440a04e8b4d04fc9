"""Downloads to local paths: sharing, reuse, then one write.

A download is checked (its destination once, then the caller's right to
the image with ``show``), shared with the same request running now
(each caller who joins is checked by Glance on its own), answered by a
verified identical file already in place, or written: from the image's
cache entry when the agent has a cache (``caching``), else from the first
of ``data.sources`` that works.
"""

import os
from typing import Any

from oslo_log import log as logging

from image_agent import exception
from image_agent import paths
from image_agent.data import localcopy
from image_agent.data import sources
from image_agent.data import writer
from image_agent.i18n import _
from image_agent.transfers import caching as caching_mod
from image_agent.transfers import flights
from image_agent.transfers import writing

LOG = logging.getLogger(__name__)

# What a download may be converted to (None: the image as it is).
CONVERT_TO = (None, 'raw')


class Downloads:
    """Every download of one agent to its download roots."""

    def __init__(
        self,
        shared: flights.Shared,
        roots: paths.PathPolicy,
        writer_: writing.ImageWriter,
        caching: caching_mod.Caching | None = None,
    ) -> None:
        self._shared = shared
        self.roots = roots
        self._writer = writer_
        self._caching = caching

    def download(
        self,
        context,
        image_id: str,
        path: str,
        overwrite: bool = False,
        convert_to: str | None = None,
    ) -> dict[str, Any]:
        """Download an image to ``path``; see ``Transfers.download``."""
        if convert_to not in CONVERT_TO:
            raise exception.InvalidInput(
                reason=_('convert_to must be one of %s')
                % ', '.join(str(c) for c in CONVERT_TO)
            )
        destination = self.roots.destination(path)
        if self._caching is not None and self._caching.cache.contains(
            destination.directory
        ):
            raise exception.InvalidPath(
                path=paths.display(path),
                reason=_('it is inside the image cache'),
            )
        images = self._shared.images
        # The caller's own right to the image is checked before it may join
        # a transfer someone else started.
        image = images.show(context, image_id)
        if self._shared.formats is not None:
            self._shared.formats.check(image)
        key = (
            'download',
            image['id'],
            destination.path,
            bool(overwrite),
            convert_to,
        )
        return self._shared.flights.run(
            key,
            lambda: self._download(
                context, image, destination, overwrite, convert_to
            ),
            join=lambda: images.check_download(context, image),
            own_errors=flights.CALLERS_OWN,
        )

    def _download(
        self, context, image, destination, overwrite, convert_to
    ) -> dict:
        shared = self._shared
        # Looked at here, once, by the one transfer that owns the path: a
        # caller arriving as an earlier download of it ends sees its file.
        destination = self.roots.with_existing(destination)
        request = sources.Request(
            shared.images,
            context,
            image,
            cache=self._caching.cache if self._caching else None,
            cancel=shared.cancel,
            formats=shared.formats,
        )
        size = image.get('size')
        result = {
            'path': destination.path,
            'size': size,
            'os_hash_algo': request.hasher.algorithm,
            'os_hash_value': request.hasher.expected,
            'reused': False,
            'source': None,
            'fetched': 0,
            'disk_format_detected': None,
            'virtual_size': None,
            'converted_from': None,
        }
        if destination.existing is not None:
            # A converted file is not the image: only an image is reused.
            if convert_to is None and self._reuse(request, destination):
                result['reused'] = True
                result.update(self._inspect_in_place(request, destination))
                return result
            if not overwrite:
                raise exception.DestinationExists(
                    path=paths.display(destination.requested)
                )
        with (
            shared.space.reserve(
                destination.directory, image['id'], size
            ) as reservation,
            shared.slots.held(
                'downloads', lambda: caching_mod.shutting_down(image['id'])
            ),
        ):
            fill = None
            if self._caching is not None:
                fill = self._caching.prepare(request)
            done = self._writer.write(
                request,
                destination,
                overwrite,
                reservation=reservation,
                convert_to=convert_to,
            )
        fetched = done.pop('fetched') + (fill or {}).get('fetched', 0)
        result.update(done, fetched=fetched)
        return result

    def _inspect_in_place(
        self, request: sources.Request, destination: paths.Destination
    ) -> dict[str, Any]:
        """What the image already in place is; ImageUnacceptable when it
        is not acceptable (it is left there: it was not written now)."""
        if request.formats is None:
            return {}
        fd = localcopy.open_regular(destination.path)
        try:
            return request.formats.file(request.image, fd).as_dict()
        finally:
            os.close(fd)

    def _reuse(
        self, request: sources.Request, destination: paths.Destination
    ) -> bool:
        """Whether the file already at ``destination`` is the image, for
        this caller: hashed within a download slot, then Glance asked."""
        image = request.image
        with self._shared.slots.held(
            'downloads', lambda: caching_mod.shutting_down(image['id'])
        ):
            if not writer.matches_image(
                destination.path, image, destination.existing, request.hasher
            ):
                return False
        request.grant.check()
        LOG.info(
            'Reusing %s: it already holds image %s',
            destination.path,
            image['id'],
        )
        return True
