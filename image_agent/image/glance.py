"""Implementation of an image service that uses Glance as the backend.

The public names and signatures are those of Cinder's
``cinder.image.glance`` so that code written against it works unchanged.
Server selection and retries live in ``client``, metadata translation in
``metadata``, error translation in ``errors``, the image's data in
``data``; the bytes are copied and verified by ``image_agent.data``.
"""

import threading
from typing import Any
import urllib.parse

from glanceclient import exc as glance_exc
from oslo_log import log as logging

from image_agent import conf
from image_agent import exception
from image_agent import policy
from image_agent.data import pipeline
from image_agent.data import sources
from image_agent.i18n import _
from image_agent.image import auth
from image_agent.image import client as client_mod
from image_agent.image import data as image_data
from image_agent.image import errors
from image_agent.image import metadata
from image_agent.image import validation
from image_agent.image.client import GlanceClientWrapper
from image_agent.image.servers import get_api_servers

__all__ = [
    'GlanceClientWrapper',
    'GlanceImageService',
    'get_api_servers',
    'get_default_image_service',
    'get_remote_image_service',
]

LOG = logging.getLogger(__name__)
CONF = conf.CONF

_DETAIL_PARAMS = frozenset(
    {'filters', 'marker', 'limit', 'page_size', 'sort_key', 'sort_dir'}
)
# Hash fields describe the bytes, so the location API takes them as
# validation data; every other key is metadata of the location itself.
_VALIDATION_KEYS = ('os_hash_algo', 'os_hash_value')


class GlanceImageService:
    """Provides storage and retrieval of disk image objects within Glance."""

    def __init__(self, client: Any | None = None) -> None:
        self._client = client or GlanceClientWrapper()
        # Cinder's TemporaryImages keeps its registry here.
        self.temp_images = None
        # Per set of servers (the client's rotations): the schema of one
        # set of servers is never applied to images of another.
        self._base_props: dict[tuple, frozenset[str]] = {}
        self._schema_lock = threading.Lock()

    # -- helpers -----------------------------------------------------------

    def _base_properties(self, context) -> frozenset[str]:
        """Base property names from Glance's image schema, fetched once."""
        servers_key = getattr(self._client, 'servers_key', None)
        key = servers_key(context) if servers_key else ()
        with self._schema_lock:
            props = self._base_props.get(key)
            if props is None:
                try:
                    schema = self._client.call(
                        context, 'get', 'image', controller='schemas'
                    )
                except Exception as e:
                    errors.reraise_translated(e)
                props = metadata.base_properties(schema.raw())
                if len(self._base_props) >= client_mod.MAX_ROTATIONS:
                    self._base_props.pop(next(iter(self._base_props)))
                self._base_props[key] = props
            return props

    def _translate(self, context, image: Any) -> dict[str, Any]:
        return metadata.translate_from_glance(
            image, self._base_properties(context)
        )

    def _is_available(self, context, image: dict[str, Any]) -> bool:
        def member_status() -> str | None:
            try:
                member = self._client.call(
                    context,
                    'get',
                    image['id'],
                    context.project_id,
                    controller='image_members',
                )
            except glance_exc.HTTPException:
                return None
            return dict(member).get('status')

        return metadata.is_image_available(context, image, member_status)

    def _get_raw(self, context, image_id: str) -> dict[str, Any]:
        validation.check_image_id(image_id)
        try:
            image = dict(self._client.call(context, 'get', image_id))
        except Exception as e:
            errors.reraise_translated(e, image_id)
        if not self._is_available(context, image):
            raise exception.ImageNotFound(image_id=image_id)
        return image

    @staticmethod
    def _check_may_modify(context, image: dict[str, Any]) -> None:
        """Refuse a caller that neither owns the image nor is admin.

        Needed before calls made with the service credentials, which Glance
        would allow on any image. The project and roles are the token's,
        as Keystone tells them, not what the request context claims.
        """
        if CONF.auth_strategy == 'keystone':
            project_id, roles = auth.token_scope(context.auth_token)
        else:
            project_id, roles = context.project_id, set(context.roles or ())
        if 'admin' not in roles and image.get('owner') != project_id:
            raise exception.ImageNotAuthorized(image_id=image['id'])

    def _call_on_image(
        self,
        context,
        image_id: str,
        method: str,
        args: tuple = (),
        kwargs: dict | None = None,
        **options: Any,
    ):
        """One call about one image, its errors translated.

        The method's ``kwargs`` stay a dict of their own, apart from the
        wrapper's ``options``: caller metadata never names an option.
        """
        try:
            return self._client.invoke(
                context, method, args, kwargs, **options
            )
        except TypeError as e:
            # glanceclient validates against the schema and says so this way.
            raise exception.Invalid(reason=str(e)) from e
        except Exception as e:
            errors.reraise_translated(e, image_id)

    def _upload(
        self,
        context,
        image_id: str,
        data: Any,
        store_id: str | None = None,
        base_image_ref: str | None = None,
    ) -> None:
        self._call_on_image(
            context,
            image_id,
            'upload',
            (image_id, data),
            store_id=store_id,
            base_image_ref=base_image_ref,
        )

    def _delete_quietly(self, context, image_id: str) -> None:
        try:
            self._client.call(context, 'delete', image_id)
        except Exception:
            LOG.warning(
                'Could not delete image %s after its upload failed', image_id
            )

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
            images = self._client.call(context, 'list', **params)
        except Exception as e:
            errors.reraise_translated(e)
        return [
            self._translate(context, image)
            for image in map(dict, images)
            if self._is_available(context, image)
        ]

    def show(self, context, image_id: str) -> dict[str, Any]:
        """Returns a dict with image data for the given opaque image id."""
        return self._translate(context, self._get_raw(context, image_id))

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
        # Asked as the caller first: the service credentials below must not
        # reveal an image that Glance hides from the caller.
        image = self._get_raw(context, image_id)
        if not policy.may_use_service_credentials(context):
            return image.get('direct_url'), image.get('locations')
        try:
            locations = self._client.call(
                context, 'get_image_locations', image_id, privileged_user=True
            )
        except (glance_exc.HTTPNotImplemented, glance_exc.HTTPForbidden):
            LOG.debug('Location API unavailable; reading image %s', image_id)
        except Exception as e:
            errors.reraise_translated(e, image_id)
        else:
            locations = [dict(loc) for loc in locations]
            if locations:
                return None, locations
        return image.get('direct_url'), image.get('locations')

    def add_location(
        self, context, image_id: str, url: str, metadata: dict
    ) -> dict:
        """Add a backend location url to an image.

        Returns a dict containing image metadata on success.
        """
        validation.require_str('url', url)
        location_meta = dict(
            validation.require_dict('metadata', metadata, optional=True)
        )
        # Over RPC: never the service credentials, and only http(s) URLs
        # without the location roles.
        own_token_only = policy.acts_with_own_token_only(context)
        if own_token_only:
            policy.check_location_url(context, url)
        image = self._get_raw(context, image_id)
        validation_data = {
            key: location_meta.pop(key)
            for key in _VALIDATION_KEYS
            if key in location_meta
        }
        use_location_api = (
            not location_meta
            and CONF.auth_strategy == 'keystone'
            and (own_token_only or auth.get_service_auth() is not None)
        )
        if use_location_api:
            if not own_token_only:
                self._check_may_modify(context, image)
            try:
                self._client.call(
                    context,
                    'add_image_location',
                    image_id,
                    url,
                    validation_data,
                    privileged_user=not own_token_only,
                )
            except glance_exc.HTTPNotImplemented:
                LOG.debug(
                    'Location API unavailable; legacy add for %s', image_id
                )
            except Exception as e:
                errors.reraise_translated(e, image_id)
            else:
                return self.show(context, image_id)
        image = self._call_on_image(
            context,
            image_id,
            'add_location',
            (image_id, url, location_meta),
            {'validation_data': validation_data or None},
        )
        return self._translate(context, image)

    def create(
        self, context, image_meta: dict[str, Any], data=None
    ) -> dict[str, Any]:
        """Store the image data and return the new image object.

        When the upload fails the new image is deleted again, so no empty
        image is left behind.
        """
        sent = metadata.translate_to_glance(
            validation.check_image_meta(image_meta)
        )
        try:
            image = self._client.invoke(context, 'create', kwargs=sent)
        except TypeError as e:
            raise exception.Invalid(reason=str(e)) from e
        except Exception as e:
            errors.reraise_translated(e)
        image_id = image['id']
        if data is None:
            return self._translate(context, image)
        try:
            self._upload(context, image_id, data)
        except Exception:
            self._delete_quietly(context, image_id)
            raise
        return self.show(context, image_id)

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
        validation.check_image_id(image_id)
        image_meta = dict(validation.check_image_meta(image_meta))
        image_meta.pop('id', None)
        validation.require_header_value('store_id', store_id)
        validation.require_header_value('base_image_ref', base_image_ref)
        if data is not None:
            self._upload(context, image_id, data, store_id, base_image_ref)
        sent = metadata.translate_to_glance(image_meta)
        if not sent:
            return self.show(context, image_id)
        remove = []
        if purge_props:
            current = self._get_raw(context, image_id)
            keep = set((image_meta.get('properties') or {}).keys())
            custom = metadata.custom_property_names(
                current, self._base_properties(context)
            )
            remove = sorted(
                name
                for name in custom - keep
                if not name.startswith('os_glance')
            )
        image = self._call_on_image(
            context,
            image_id,
            'update',
            (image_id,),
            dict(sent, remove_props=remove),
        )
        return self._translate(context, image)

    def delete(self, context, image_id: str) -> bool:
        """Delete the given image."""
        validation.check_image_id(image_id)
        self._call_on_image(context, image_id, 'delete', (image_id,))
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
        members = self._call_on_image(
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
    if not isinstance(image_href, str):
        raise exception.InvalidImageRef(
            image_href=repr(image_href)[:200], reason=_('not a string')
        )
    if not image_href.strip():
        raise exception.InvalidImageRef(
            image_href=image_href, reason=_('the href is empty')
        )
    if '/' not in image_href:
        return get_default_image_service(), image_href
    try:
        parsed = urllib.parse.urlsplit(image_href)
        parsed.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError as e:
        raise exception.InvalidImageRef(
            image_href=image_href, reason=str(e)
        ) from e
    if parsed.scheme not in ('http', 'https'):
        raise exception.InvalidImageRef(
            image_href=image_href, reason=_('the scheme must be http or https')
        )
    if not parsed.netloc:
        raise exception.InvalidImageRef(
            image_href=image_href, reason=_('no server in the href')
        )
    image_id = parsed.path.rsplit('/', 1)[-1]
    if not image_id:
        raise exception.InvalidImageRef(
            image_href=image_href, reason=_('no image id in the href')
        )
    client = GlanceClientWrapper(
        context=context, netloc=parsed.netloc, use_ssl=parsed.scheme == 'https'
    )
    return GlanceImageService(client=client), image_id
