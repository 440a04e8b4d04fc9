"""The client library under test, over oslo.messaging's fake driver."""

from unittest import mock

import oslo_messaging as messaging
import pytest

from image_agent import rpcapi


@pytest.fixture
def transport(config):
    transport = messaging.get_rpc_transport(config.conf, url='fake://')
    yield transport
    transport.cleanup()


@pytest.fixture
def api(transport):
    return rpcapi.ImageAgentAPI(transport=transport)


@pytest.fixture
def sent(api, monkeypatch):
    """The prepare() options and the call of every request."""
    record = mock.Mock()
    cctxt = record.cctxt
    cctxt.call.return_value = {'direct_url': None, 'locations': None}

    def prepare(**options):
        record.options = options
        return cctxt

    monkeypatch.setattr(api.client, 'prepare', prepare)
    return record
