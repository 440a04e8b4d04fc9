"""Implementation of an image service that uses Glance as the backend.

The public names and signatures are those of Cinder's
``cinder.image.glance`` so that code written against it works unchanged.
Server selection and retries live in ``client``, metadata translation in
``metadata``, error translation in ``errors``, the reads every method
starts from in ``images``, locations in ``locations``, creates and updates
in ``writes``, the image's data in ``data``; the bytes are copied and
verified by ``image_agent.data``.
"""

from typing import Any

from image_agent import exception
from image_agent.data import pipeline
from image_agent.data import sources
from image_agent.i18n import _
from image_agent.image import data as image_data
from image_agent.image import errors
from image_agent.image import images
from image_agent.image import locations
from image_agent.image import validation
from image_agent.image import writes
from image_agent.image.client import GlanceClientWrapper
from image_agent.image.servers import get_api_servers

__all__ = [
    'GlanceClientWrapper',
    'GlanceImageService',
    'get_api_servers',
    'get_default_image_service',
    'get_remote_image_service',
]

_DETAIL_PARAMS = frozenset(
    {'filters', 'marker', 'limit', 'page_size', 'sort_key', 'sort_dir'}
)


class GlanceImageService:
    """Provides storage and retrieval of disk image objects within Glance."""

    def __init__(self, client: Any | None = None) -> None:
        self._client = client or GlanceClientWrapper()
        self._images = images.Images(self._client)
        # Cinder's TemporaryImages keeps its registry here.
        self.temp_images = None

    def _get_raw(self, context, image_id: str) -> dict[str, Any]:
        return self._images.get_raw(context, image_id)

    # -- the seed API --------------------------------------------------------

    def detail(self, context, **kwargs: Any) -> list[dict]:
        """Calls out to Glance for a list of detailed image information."""
        unknown = set(kwargs) - _DETAIL_PARAMS
        if unknown:
            raise exception.InvalidInput(
                reason=_('unknown listing parameters: %s')
                % ', '.join(sorted(unknown))
            )
        params = {k: v for k, v in kwargs.items() if v is not None}
        validation.check_listing_params(params)
        try:
            listed = self._client.call(context, 'list', **params)
        except Exception as e:
            errors.reraise_translated(e)
        return [
            self._images.translate(context, image)
            for image in map(dict, listed)
            if self._images.is_available(context, image)
        ]

    def show(self, context, image_id: str) -> dict[str, Any]:
        """Returns a dict with image data for the given opaque image id."""
        return self._images.translate(
            context, self._get_raw(context, image_id)
        )

    def get_location(self, context, image_id: str) -> tuple[str | None, Any]:
        """Get backend storage location url.

        Returns ``(None, [locations])`` from the location API, asked as
        the privileged user (the ``[glance]`` service credentials, else the
        caller's own token). A Glance without it (501), refusing it (403)
        or listing no location is asked for the image body instead:
        ``(direct_url, locations)`` as Glance shows them. Over RPC the
        location API is asked only for the roles of ``policy.LOCATIONS``;
        other callers get the body as Glance shows it to their own token.
        """
        return locations.get_location(self._images, context, image_id)

    def add_location(
        self, context, image_id: str, url: str, metadata: dict
    ) -> dict:
        """Add a backend location url to an image.

        Returns a dict containing image metadata on success.
        """
        return locations.add_location(
            self._images, context, image_id, url, metadata
        )

    def create(
        self, context, image_meta: dict[str, Any], data=None
    ) -> dict[str, Any]:
        """Store the image data and return the new image object.

        When the upload fails the new image is deleted again, so no empty
        image is left behind.
        """
        return writes.create(self._images, context, image_meta, data)

    def update(
        self,
        context,
        image_id: str,
        image_meta: dict,
        data=None,
        purge_props: bool = True,
        store_id: str | None = None,
        base_image_ref: str | None = None,
    ) -> dict:
        """Modify the given image with the new data.

        Data is uploaded first, then the metadata patched when there is any
        to patch. With ``purge_props`` such a patch removes every custom
        property not named in ``image_meta['properties']``; an empty
        ``image_meta`` (Cinder's upload of a volume) patches nothing and
        removes nothing.
        """
        return writes.update(
            self._images,
            context,
            image_id,
            image_meta,
            data,
            purge_props,
            store_id,
            base_image_ref,
        )

    def delete(self, context, image_id: str) -> bool:
        """Delete the given image."""
        validation.check_image_id(image_id)
        self._images.call_on_image(context, image_id, 'delete', (image_id,))
        return True

    def download(self, context, image_id: str, data=None):
        """Calls out to Glance for data and writes data.

        Without ``data`` an iterator of verified chunks is returned (the
        check happens after the last chunk); with it, every chunk is written
        to ``data``. A hash mismatch raises ImageChecksumMismatch. A stream
        that breaks off resumes on the next server (see ``fetch``).
        """
        image = self._get_raw(context, image_id)
        request = sources.Request(self, context, image)
        stream = sources.open_stream(request)
        if data is None:
            return pipeline.iter_verified(stream, request.hasher)
        # Written from this thread: a caller's file object may work only
        # in the thread that uses it (Cinder's tpool.Proxy does).
        pipeline.copy_verified(
            stream,
            request.hasher,
            pipeline.writer_for(data),
            caller_writes=True,
        )
        return None

    def open_data(
        self, context, image: dict[str, Any], start: int = 0
    ) -> pipeline.Source:
        """The data of an image the caller has already shown, from Glance
        (from byte ``start`` on: the bytes before came from peers).

        What the agent's byte engine (``data.sources``) reads from Glance:
        Glance's answer to the caller's own request is its right to the
        bytes. Refusals are raised here, before any byte is read; a stream
        that breaks off resumes on the next server (see ``fetch``).
        """
        return image_data.open_data(context, self._client, image, start)

    def check_download(self, context, image: dict[str, Any]) -> None:
        """Raise unless Glance lets this caller download ``image`` now.

        What the agent asks before it gives a caller bytes from anywhere
        but Glance's answer to that caller (its cache, a local file, a file
        already at the destination, another caller's transfer).
        """
        image_data.check(context, self._client, image)

    def get_stores(self, context) -> dict[str, Any]:
        """Returns a list of dicts with stores information.

        As the reference does, whatever that sentence says: Glance's body as
        Glance sends it, ``{'stores': [{'id': ..., 'default': 'true'}]}``
        (the flags are the string "true", absent when false). Cinder's
        image_utils reads it so.
        """
        try:
            info = self._client.call(context, 'get_stores_info')
        except Exception as e:
            errors.reraise_translated(e)
        return dict(info)

    def list_members(self, context, image_id: str) -> list[dict]:
        """Returns a list of dicts with image member data."""
        validation.check_image_id(image_id)
        members = self._images.call_on_image(
            context, image_id, 'list', (image_id,), controller='image_members'
        )
        return [dict(member) for member in members]


def get_default_image_service() -> GlanceImageService:
    """A GlanceImageService over the configured (or catalog) servers."""
    return GlanceImageService()


def get_remote_image_service(
    context, image_href
) -> tuple[GlanceImageService, str]:
    """Create an image_service and parse the id from the given image_href.

    The image_href param can be an href of the form
    'http://example.com:9292/v1/images/b8b2c6f7-7345-4e2f-afa2-eedaba9cbbe3',
    or just an id such as 'b8b2c6f7-7345-4e2f-afa2-eedaba9cbbe3'. If the
    image_href is a standalone id, then the default image service is
    returned.
    """
    netloc, use_ssl, image_id = validation.parse_image_href(image_href)
    if netloc is None:
        return get_default_image_service(), image_id
    client = GlanceClientWrapper(
        context=context, netloc=netloc, use_ssl=use_ssl
    )
    return GlanceImageService(client=client), image_id
