"""Argument checks at the edge of the image API.

Callers reach these methods over RPC with whatever JSON they send; a value
of the wrong type must be refused with InvalidInput here, not fail deep
inside glanceclient with a TypeError nobody can act on.
"""

import string
from typing import Any
import urllib.parse

from oslo_utils import uuidutils

from image_agent import exception
from image_agent.i18n import _

_LISTING_INTS = ('limit', 'page_size')
_LISTING_STRINGS = ('marker',)
_SORT_PARAMS = ('sort_key', 'sort_dir')
# Glance answers 414 for longer URLs; a sort key is a property name.
MAX_SORT_TEXT = 255
MAX_HEADER_TEXT = 1024


# What an id may hold on its way into a URL: uuidutils also accepts braces
# and a "urn:uuid:" prefix, which Glance never returns.
_ID_CHARS = frozenset(string.hexdigits + '-')


def _invalid(reason: str) -> exception.InvalidInput:
    return exception.InvalidInput(reason=reason)


def check_image_id(image_id: Any) -> str:
    """Refuse what cannot be a Glance image id before it reaches a URL.

    Glance's ids are UUIDs: any other string names no image.
    """
    if not isinstance(image_id, str):
        raise _invalid(
            _('an image id must be a string, not %s') % type(image_id).__name__
        )
    if not (set(image_id) <= _ID_CHARS and uuidutils.is_uuid_like(image_id)):
        raise exception.ImageNotFound(image_id=image_id[:100])
    return image_id


def require_dict(name: str, value: Any, optional: bool = False) -> dict:
    if value is None and optional:
        return {}
    if not isinstance(value, dict):
        raise _invalid(
            _('%(name)s must be a dict, not %(type)s')
            % {'name': name, 'type': type(value).__name__}
        )
    return value


def require_str(name: str, value: Any, optional: bool = False) -> str:
    if value is None and optional:
        return value
    if not isinstance(value, str) or not value:
        raise _invalid(_('%s must be a non-empty string') % name)
    return value


def require_header_value(name: str, value: Any) -> str | None:
    """A value sent as an HTTP header: printable ASCII on one line."""
    if value is None:
        return None
    if (
        not isinstance(value, str)
        or not value
        or len(value) > MAX_HEADER_TEXT
        or not all(' ' <= c <= '~' for c in value)
    ):
        raise _invalid(
            _('%s must be printable ASCII text of at most %d characters')
            % (name, MAX_HEADER_TEXT)
        )
    return value


def check_image_meta(image_meta: Any) -> dict:
    """Image metadata is a dict whose ``properties``, if any, is a dict."""
    meta = require_dict('image_meta', image_meta)
    require_dict('image_meta["properties"]', meta.get('properties'), True)
    return meta


def check_listing_params(params: dict[str, Any]) -> None:
    """The types ``detail`` passes on to Glance's listing."""
    require_dict('filters', params.get('filters'), optional=True)
    for name in _LISTING_INTS:
        value = params.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int):
            raise _invalid(_('%s must be an integer') % name)
        if value < 0:
            raise _invalid(_('%s must not be negative') % name)
    for name in _LISTING_STRINGS:
        require_str(name, params.get(name), optional=True)
    for name in _SORT_PARAMS:
        value = params.get(name)
        if value is None:
            continue
        values = value if isinstance(value, list) else [value]
        if not values or not all(
            isinstance(v, str) and 0 < len(v) <= MAX_SORT_TEXT for v in values
        ):
            raise _invalid(_('%s must be a name or a list of names') % name)


def parse_image_href(image_href: Any) -> tuple[str | None, bool, str]:
    """``(netloc, use_ssl, image_id)`` of an image href; a standalone id
    gives ``(None, False, image_id)``. InvalidImageRef for anything else
    than an http(s) URL that names a server and an image."""
    if not isinstance(image_href, str):
        raise exception.InvalidImageRef(
            image_href=repr(image_href)[:200], reason=_('not a string')
        )
    if not image_href.strip():
        raise exception.InvalidImageRef(
            image_href=image_href, reason=_('the href is empty')
        )
    if '/' not in image_href:
        return None, False, image_href
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
    return parsed.netloc, parsed.scheme == 'https', image_id
