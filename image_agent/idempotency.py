"""Creates that happen at most once per key, so a caller may try again.

A caller whose create timed out cannot know whether the image was made:
the request may have started just before the caller gave up. With an
idempotency key, the key is recorded on the image as the property
``image_agent_idempotency_key``; a create whose key the caller's project
already used returns that image instead of making another, and the caller
can look the image up by its key (``ImageAgentAPI.find_created``).

Two creates with the same key reaching the same agent at once are one
create. The check is a Glance listing, so two agents given the same key at
the very same moment can both create; a caller retries the same host, or
waits for its first attempt's deadline, to avoid that.
"""

from collections.abc import Callable
from typing import Any

from oslo_log import log as logging

from image_agent import exception
from image_agent.i18n import _
from image_agent.image import validation

LOG = logging.getLogger(__name__)

PROPERTY = 'image_agent_idempotency_key'
MAX_LENGTH = 255


def check_key(key: Any) -> str:
    """The key, if it is a short printable string; InvalidInput otherwise."""
    if (
        not isinstance(key, str)
        or not 0 < len(key) <= MAX_LENGTH
        or not key.isprintable()
    ):
        raise exception.InvalidInput(
            reason=_(
                'idempotency_key must be a printable string of 1 to %d '
                'characters'
            )
            % MAX_LENGTH
        )
    return key


def _project(context: Any) -> str | None:
    if isinstance(context, dict):
        return context.get('project_id') or context.get('project')
    return getattr(context, 'project_id', None)


def filters(context: Any, key: str) -> dict[str, str]:
    """Glance listing filters for the images of the caller's project made
    with ``key``."""
    found = {PROPERTY: key}
    project = _project(context)
    if project:
        found['owner'] = project
    return found


def with_key(image_meta: dict, key: str) -> dict:
    """``image_meta`` with the key among its properties."""
    meta = dict(validation.check_image_meta(image_meta))
    properties = dict(meta.get('properties') or {})
    properties[PROPERTY] = key
    meta['properties'] = properties
    return meta


def create_once(
    images,
    flights,
    context,
    key: str,
    create: Callable[[], dict],
) -> dict:
    """The image of ``context``'s project made with ``key``, made now by
    ``create`` if there is none.

    ``flights`` (a ``transfers.SingleFlight``) joins concurrent creates
    with the same key and project into one.
    """
    key = check_key(key)

    def once() -> dict:
        existing = images.detail(context, filters=filters(context, key))
        if existing:
            LOG.info(
                'create with idempotency key %(key)s: image %(id)s exists '
                '(project %(project)s), not creating another',
                {
                    'key': key,
                    'id': existing[0].get('id'),
                    'project': _project(context),
                },
            )
            return existing[0]
        return create()

    return flights.run(('create', _project(context), key), once)
