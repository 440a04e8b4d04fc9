"""Image metadata between Glance's v2 shape and the seed API's shape.

Reading, Glance's image schema decides what stays at the top level (its base
properties); every other key goes under ``properties``. Writing, the
reverse: ``properties`` is flattened into the top level.
"""

import json
from typing import Any

from oslo_log import log as logging
from oslo_utils import timeutils

LOG = logging.getLogger(__name__)

DATETIME_KEYS = ('created_at', 'updated_at', 'deleted_at')
JSON_PROPERTIES = ('mappings', 'block_device_mapping')
# Read-only or server-owned keys never sent back to Glance.
NOT_WRITABLE = ('status', 'created_at', 'updated_at', 'deleted_at')
# Keys never reported to callers.
HIDDEN = ('schema', 'self')


def base_properties(raw_schema: dict) -> frozenset[str]:
    """Names the image schema marks as base (top-level) properties."""
    return frozenset(
        name
        for name, spec in raw_schema.get('properties', {}).items()
        if spec.get('is_base', True)
    )


def _decode_json(key: str, value: Any) -> Any:
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except ValueError:
        LOG.warning(
            'Image property %s is not valid JSON; kept as a string', key
        )
        return value


def translate_from_glance(image: Any, base: frozenset[str]) -> dict[str, Any]:
    """A Glance image (model or dict) as a plain dict of the seed's shape."""
    output: dict[str, Any] = {}
    properties: dict[str, Any] = {}
    for key, value in dict(image).items():
        if key in HIDDEN:
            continue
        if key in base:
            output[key] = value
        else:
            properties[key] = value
    for key in DATETIME_KEYS:
        if isinstance(output.get(key), str):
            output[key] = timeutils.parse_isotime(output[key])
    for key in JSON_PROPERTIES:
        if key in properties:
            properties[key] = _decode_json(key, properties[key])
    output['properties'] = properties
    return output


def translate_to_glance(image_meta: dict[str, Any]) -> dict[str, Any]:
    """Seed-shaped metadata as the flat dict Glance v2 takes.

    Properties win over top-level keys of the same name, server-owned keys
    are dropped, and ``properties`` itself is never sent.
    """
    meta = dict(image_meta)
    properties = dict(meta.pop('properties', None) or {})
    for key in JSON_PROPERTIES:
        if key in properties and not isinstance(properties[key], str):
            properties[key] = json.dumps(properties[key])
    meta.update(properties)
    for key in NOT_WRITABLE:
        meta.pop(key, None)
    return meta


def custom_property_names(image: Any, base: frozenset[str]) -> set[str]:
    """Keys of a Glance image that are not base properties."""
    return {
        key for key in dict(image) if key not in base and key not in HIDDEN
    }


def is_image_available(
    context, image: dict[str, Any], member_status=None
) -> bool:
    """Whether ``context`` may see ``image`` (a raw Glance image dict).

    A caller with a token is trusted to Glance's own policy. Without one
    (the noauth strategy), an image is available when public or community,
    when the caller is admin or owns it, or when it is shared with the
    caller's project and the share was accepted (``member_status`` is a
    callable giving that project's member status, asked only then).
    """
    if getattr(context, 'auth_token', None):
        return True
    if image.get('visibility') in ('public', 'community'):
        return True
    if getattr(context, 'is_admin', False) or 'admin' in (
        getattr(context, 'roles', None) or ()
    ):
        return True
    project_id = getattr(context, 'project_id', None)
    if project_id and image.get('owner') == project_id:
        return True
    if project_id and image.get('visibility') == 'shared' and member_status:
        return member_status() == 'accepted'
    return False
