"""Cinder's GlanceImageService and image_agent's, side by side.

Every test runs the same calls through ``cinder.image.glance`` (Cinder 29's
own module) and ``image_agent.image.glance`` against the same Glance, with
the same Cinder request context, and compares what they return.
"""

import uuid

from tests.functional.conftest import make_context


def _comparable(image: dict) -> dict:
    """What both report, without what changes from one call to the next."""
    image = dict(image)
    image.pop('updated_at', None)
    return image


def test_show_returns_the_same_dict(
    image_service,
    cinder_image_service,
    cinder_demo_context,
    images,
    deployment,
):
    made = images(
        make_context(deployment, 'demo'),
        {'name': 'consumers-' + uuid.uuid4().hex[:8], 'min_ram': 64},
        properties={'hw_disk_bus': 'scsi', 'os_distro': 'debian'},
    )
    ours = image_service.show(cinder_demo_context, made['id'])
    theirs = cinder_image_service.show(cinder_demo_context, made['id'])
    assert _comparable(ours) == _comparable(theirs)
    assert ours['properties']['hw_disk_bus'] == 'scsi'


def test_the_agent_answers(api, agent, deployment):
    status = api.ping(make_context(deployment, 'demo'), host=agent.host)
    assert status
