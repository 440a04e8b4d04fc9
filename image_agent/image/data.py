"""An image's data from Glance's API, for one caller.

``open_data`` is what the agent's byte engine (``image_agent.data``) asks
of Glance; ``check`` is Glance's word that the caller may have the bytes,
asked before they come from anywhere else.
"""

from typing import Any

from image_agent.data import verify
from image_agent.image import fetch


def open_data(
    context, client, image: dict[str, Any], start: int = 0
) -> fetch.HttpSource:
    """The image's data from byte ``start`` on, its answer received:
    refusals (404, 403, no data) are raised now, not mid-stream.

    An image without a hash resumes without ranges: nothing would prove
    that a ranged answer continues the bytes already written (Glance's
    http store ignores the offset), so the start is fetched and skipped.
    """
    source = _source(context, client, image, start)
    source.open()
    return source


def check(context, client, image: dict[str, Any]) -> None:
    """Raise unless Glance lets the caller of ``context`` download the
    image now (ImageNotAuthorized for a deactivated image, for instance).

    ``show`` is not enough: Glance's download policy and an image's status
    are checked on its data only.
    """
    _source(context, client, image).check()


def _source(
    context, client, image: dict[str, Any], start: int = 0
) -> fetch.HttpSource:
    _, next_server = client.server_picker(context)
    return fetch.HttpSource(
        context,
        image['id'],
        next_server,
        expected_size=image.get('size'),
        ranges=verify.recorded_hash(image) is not None,
        start=start,
    )
