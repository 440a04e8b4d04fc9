"""Images created and updated: metadata sent, data uploaded.

The order is the contract of Cinder's image service: a new image whose
upload fails is deleted again, an update uploads its data before it
patches the metadata, and a patch with ``purge_props`` removes the custom
properties the caller did not name.
"""

from typing import Any

from oslo_log import log as logging

from image_agent import exception
from image_agent.image import errors
from image_agent.image import images as images_mod
from image_agent.image import metadata
from image_agent.image import validation

LOG = logging.getLogger(__name__)


def create(
    images: images_mod.Images, context, image_meta: dict[str, Any], data=None
) -> dict[str, Any]:
    """The new image, its data uploaded when there is any; see
    ``GlanceImageService.create``."""
    sent = metadata.translate_to_glance(
        validation.check_image_meta(image_meta)
    )
    try:
        image = images.client.invoke(context, 'create', kwargs=sent)
    except TypeError as e:
        raise exception.Invalid(reason=str(e)) from e
    except Exception as e:
        errors.reraise_translated(e)
    image_id = image['id']
    if data is None:
        return images.translate(context, image)
    try:
        upload(images, context, image_id, data)
    except Exception:
        _delete_quietly(images, context, image_id)
        raise
    return images.translate(context, images.get_raw(context, image_id))


def update(
    images: images_mod.Images,
    context,
    image_id: str,
    image_meta: dict,
    data=None,
    purge_props: bool = True,
    store_id: str | None = None,
    base_image_ref: str | None = None,
) -> dict:
    """The image after its data and metadata changed; see
    ``GlanceImageService.update``."""
    validation.check_image_id(image_id)
    image_meta = dict(validation.check_image_meta(image_meta))
    image_meta.pop('id', None)
    validation.require_header_value('store_id', store_id)
    validation.require_header_value('base_image_ref', base_image_ref)
    if data is not None:
        upload(images, context, image_id, data, store_id, base_image_ref)
    sent = metadata.translate_to_glance(image_meta)
    if not sent:
        return images.translate(context, images.get_raw(context, image_id))
    remove = []
    if purge_props:
        remove = _purged_properties(images, context, image_id, image_meta)
    image = images.call_on_image(
        context,
        image_id,
        'update',
        (image_id,),
        dict(sent, remove_props=remove),
    )
    return images.translate(context, image)


def upload(
    images: images_mod.Images,
    context,
    image_id: str,
    data: Any,
    store_id: str | None = None,
    base_image_ref: str | None = None,
) -> None:
    """Send ``data`` as the image's bytes (Glance's image upload)."""
    images.call_on_image(
        context,
        image_id,
        'upload',
        (image_id, data),
        store_id=store_id,
        base_image_ref=base_image_ref,
    )


def _purged_properties(
    images: images_mod.Images, context, image_id: str, image_meta: dict
) -> list[str]:
    """The custom properties a purging update removes: those not named
    in ``image_meta['properties']``, Glance's own ``os_glance*`` kept."""
    current = images.get_raw(context, image_id)
    keep = set((image_meta.get('properties') or {}).keys())
    custom = metadata.custom_property_names(
        current, images.base_properties(context)
    )
    return sorted(
        name for name in custom - keep if not name.startswith('os_glance')
    )


def _delete_quietly(images: images_mod.Images, context, image_id: str) -> None:
    try:
        images.client.call(context, 'delete', image_id)
    except Exception:
        LOG.warning(
            'Could not delete image %s after its upload failed', image_id
        )
