"""The endpoint's creates and updates: metadata, and the file of a path.

What ``ImageAgentManager.create`` and ``update`` do with their arguments:
the formats of a conversion checked before anything is read (RPC 1.4), a
create with an idempotency key made once per key, and an upload from a
path handed to the transfers (slots, sharing, progress) with the call
that sends its bytes to Glance.
"""

from typing import Any

from image_agent import exception
from image_agent import idempotency
from image_agent.formats import convert
from image_agent.i18n import _
from image_agent.image import validation
from image_agent.transfers import flights


class UploadCalls:
    """Creates and updates of one agent, through its image service."""

    def __init__(self, images: Any, transfers: Any) -> None:
        self._images = images
        self._transfers = transfers
        # Creates with the same idempotency key at once are one create.
        self._keyed_creates = flights.SingleFlight()

    def create(
        self,
        context,
        image_meta: dict,
        path: str | None = None,
        idempotency_key: str | None = None,
        convert_from: str | None = None,
    ) -> dict:
        """See ``ImageAgentManager.create``."""
        conversion = conversion_of(path, convert_from, image_meta)
        if idempotency_key is None:
            return self._create(context, image_meta, path, conversion)
        image_meta = idempotency.with_key(
            image_meta, idempotency.check_key(idempotency_key)
        )
        return idempotency.create_once(
            self._images,
            self._keyed_creates,
            context,
            idempotency_key,
            lambda: self._create(context, image_meta, path, conversion),
        )

    def _create(
        self, context, image_meta: dict, path: str | None, conversion
    ) -> dict:
        if path is None:
            return self._images.create(context, image_meta)
        return self._transfers.upload(
            context,
            path,
            lambda data: self._images.create(context, image_meta, data=data),
            conversion=conversion,
        )

    def update(
        self,
        context,
        image_id: str,
        image_meta: dict,
        path: str | None = None,
        purge_props: bool = True,
        store_id: str | None = None,
        base_image_ref: str | None = None,
        convert_from: str | None = None,
    ) -> dict:
        """See ``ImageAgentManager.update``."""
        # Checked before the upload uses the id (in its single-flight key).
        validation.check_image_id(image_id)
        conversion = None
        if convert_from is not None:
            conversion = conversion_of(
                path,
                convert_from,
                image_meta,
                self._images.show(context, image_id),
            )

        def send(data=None) -> dict:
            return self._images.update(
                context,
                image_id,
                image_meta,
                data=data,
                purge_props=purge_props,
                store_id=store_id,
                base_image_ref=base_image_ref,
            )

        if path is None:
            return send()
        request = {
            'image_meta': image_meta,
            'purge_props': purge_props,
            'store_id': store_id,
            'base_image_ref': base_image_ref,
        }
        return self._transfers.upload(
            context,
            path,
            send,
            image_id=image_id,
            request=request,
            conversion=conversion,
        )


def conversion_of(path, convert_from, image_meta, image=None):
    """An upload's ``(source, target)`` formats (1.4): the target is the
    disk_format of ``image_meta``, else of the ``image``."""
    if convert_from is None:
        return None
    if path is None:
        raise exception.InvalidInput(
            reason=_('convert_from needs a path to upload')
        )
    target = (image_meta if isinstance(image_meta, dict) else {}).get(
        'disk_format'
    ) or (image or {}).get('disk_format')
    return convert.upload_conversion(convert_from, target)
