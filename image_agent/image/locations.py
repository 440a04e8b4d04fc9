"""An image's backend locations: read and added.

Both ask the location API as the privileged user (the ``[glance]`` service
credentials) where that is allowed, and fall back to the image body and
the legacy ``add_location`` where Glance has no location API. Which
callers may use the service credentials is ``policy``'s rule.
"""

from typing import Any

from glanceclient import exc as glance_exc
from oslo_log import log as logging

from image_agent import conf
from image_agent import policy
from image_agent.image import auth
from image_agent.image import errors
from image_agent.image import images as images_mod
from image_agent.image import validation

LOG = logging.getLogger(__name__)
CONF = conf.CONF

# Hash fields describe the bytes, so the location API takes them as
# validation data; every other key is metadata of the location itself.
_VALIDATION_KEYS = ('os_hash_algo', 'os_hash_value')


def get_location(
    images: images_mod.Images, context, image_id: str
) -> tuple[str | None, Any]:
    """``(None, [locations])`` from the location API, else the body's
    ``(direct_url, locations)``; see ``GlanceImageService.get_location``."""
    # Asked as the caller first: the service credentials below must not
    # reveal an image that Glance hides from the caller.
    image = images.get_raw(context, image_id)
    if not policy.may_use_service_credentials(context):
        return image.get('direct_url'), image.get('locations')
    try:
        locations = images.client.call(
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
    images: images_mod.Images, context, image_id: str, url: str, metadata
) -> dict:
    """Add ``url`` to the image; its metadata translated, as
    ``GlanceImageService.add_location`` returns it."""
    validation.require_str('url', url)
    location_meta = dict(
        validation.require_dict('metadata', metadata, optional=True)
    )
    # Over RPC: never the service credentials, and only http(s) URLs
    # without the location roles.
    own_token_only = policy.acts_with_own_token_only(context)
    if own_token_only:
        policy.check_location_url(context, url)
    image = images.get_raw(context, image_id)
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
    if use_location_api and _add_with_location_api(
        images, context, image, url, validation_data, own_token_only
    ):
        return images.translate(context, images.get_raw(context, image_id))
    image = images.call_on_image(
        context,
        image_id,
        'add_location',
        (image_id, url, location_meta),
        {'validation_data': validation_data or None},
    )
    return images.translate(context, image)


def _add_with_location_api(
    images: images_mod.Images,
    context,
    image: dict[str, Any],
    url: str,
    validation_data: dict,
    own_token_only: bool,
) -> bool:
    """Add through the location API; False when Glance has none."""
    image_id = image['id']
    if not own_token_only:
        images_mod.check_may_modify(context, image)
    try:
        images.client.call(
            context,
            'add_image_location',
            image_id,
            url,
            validation_data,
            privileged_user=not own_token_only,
        )
    except glance_exc.HTTPNotImplemented:
        LOG.debug('Location API unavailable; legacy add for %s', image_id)
        return False
    except Exception as e:
        errors.reraise_translated(e, image_id)
    return True
