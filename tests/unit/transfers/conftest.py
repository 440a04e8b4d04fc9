"""Fixtures of the transfer tests: a real GlanceImageService over the fake
glanceclient of ``tests/unit/conftest``, the image data over real HTTP from
its stand-in servers (``glance_http``)."""

import pytest

from image_agent import transfers
from image_agent.image import glance as glance_mod
from tests.unit.transfers.helpers import DATA


class Recorder:
    """A notifier that remembers what it was asked to send."""

    def __init__(self):
        self.events = []

    def __call__(self, context, event_type, payload, error=False):
        self.events.append((event_type, payload, error))

    def types(self):
        return [event for event, _, _ in self.events]


@pytest.fixture
def notes():
    return Recorder()


@pytest.fixture
def service(glance, glance_http):
    return glance_mod.GlanceImageService()


@pytest.fixture
def make_transfers(service, root, notes):
    def make(**options):
        options.setdefault('notify', notes)
        return transfers.Transfers(service, [str(root)], None, **options)

    return make


@pytest.fixture
def xfers(make_transfers):
    return make_transfers()


@pytest.fixture
def image(glance):
    return glance.add_image(data=DATA)
