"""Glance's images as one caller may see them.

The reads every method of ``GlanceImageService`` starts from: an image
fetched and checked for availability, translated with the base properties
of Glance's schema, and one call about one image with its errors
translated. Kept apart from the service so that the locations and the
writes (``locations``, ``writes``) share them without the service class.
"""

import threading
from typing import Any

from glanceclient import exc as glance_exc

from image_agent import conf
from image_agent import exception
from image_agent.image import auth
from image_agent.image import client as client_mod
from image_agent.image import errors
from image_agent.image import metadata
from image_agent.image import validation

CONF = conf.CONF


class Images:
    """One Glance client's images: read, translated, called about."""

    def __init__(self, client: Any) -> None:
        self.client = client
        # Per set of servers (the client's rotations): the schema of one
        # set of servers is never applied to images of another.
        self._base_props: dict[tuple, frozenset[str]] = {}
        self._schema_lock = threading.Lock()

    def base_properties(self, context) -> frozenset[str]:
        """Base property names from Glance's image schema, fetched once."""
        servers_key = getattr(self.client, 'servers_key', None)
        key = servers_key(context) if servers_key else ()
        with self._schema_lock:
            props = self._base_props.get(key)
            if props is None:
                try:
                    schema = self.client.call(
                        context, 'get', 'image', controller='schemas'
                    )
                except Exception as e:
                    errors.reraise_translated(e)
                props = metadata.base_properties(schema.raw())
                if len(self._base_props) >= client_mod.MAX_ROTATIONS:
                    self._base_props.pop(next(iter(self._base_props)))
                self._base_props[key] = props
            return props

    def translate(self, context, image: Any) -> dict[str, Any]:
        """Glance's image in the shape of Cinder's image service."""
        return metadata.translate_from_glance(
            image, self.base_properties(context)
        )

    def is_available(self, context, image: dict[str, Any]) -> bool:
        """Whether the caller may see ``image`` (see ``metadata``)."""

        def member_status() -> str | None:
            try:
                member = self.client.call(
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

    def get_raw(self, context, image_id: str) -> dict[str, Any]:
        """Glance's image as Glance shows it; ImageNotFound when the
        caller may not see it."""
        validation.check_image_id(image_id)
        try:
            image = dict(self.client.call(context, 'get', image_id))
        except Exception as e:
            errors.reraise_translated(e, image_id)
        if not self.is_available(context, image):
            raise exception.ImageNotFound(image_id=image_id)
        return image

    def call_on_image(
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
            return self.client.invoke(context, method, args, kwargs, **options)
        except TypeError as e:
            # glanceclient validates against the schema and says so this way.
            raise exception.Invalid(reason=str(e)) from e
        except Exception as e:
            errors.reraise_translated(e, image_id)


def check_may_modify(context, image: dict[str, Any]) -> None:
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
