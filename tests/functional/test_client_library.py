"""The client library as another service uses it, over the real RabbitMQ.

A service passes its own configuration and its own transport: made from a
ConfigOpts other than the global one, without ``image_agent.exception``
among its allowed remote modules. The agent's errors must still arrive as
their classes, and ``[upgrade_levels] image_agent = auto`` must ask the
real agents their version.
"""

import hashlib
import io
import os
import uuid

from oslo_config import cfg
import oslo_messaging as messaging
import pytest

from image_agent import exception
from image_agent import rpc
from image_agent import rpcapi
from image_agent.conf import client as client_conf

DATA = os.urandom(256 * 1024 + 3)
MISSING = '6f1d8c1e-0000-4000-8000-00000000c11e'


@pytest.fixture
def consumer_conf(topic):
    """A service's own ConfigOpts: its ``host`` is not a host name."""
    conf = cfg.ConfigOpts()
    conf.register_opts([cfg.StrOpt('host', default='volume-1@lvm#pool')])
    conf([], default_config_files=[])
    client_conf.register_opts(conf)
    conf.set_override('topic', topic, group='image_agent')
    conf.set_override('timeout', 30, group='image_agent')
    return conf


@pytest.fixture
def consumer_transport(consumer_conf, rabbit_url):
    """The service's transport: no image_agent.exception in its exmods."""
    transport = messaging.get_rpc_transport(
        consumer_conf,
        url=rabbit_url,
        allowed_remote_exmods=['cinder.exception'],
    )
    yield transport
    transport.cleanup()


@pytest.fixture
def consumer_api(consumer_conf, consumer_transport):
    return rpcapi.ImageAgentAPI(
        conf=consumer_conf, transport=consumer_transport
    )


def test_a_consumers_conf_and_transport_serve_every_call(
    consumer_api,
    agent,
    images,
    demo_context,
):
    image = images(demo_context, data=io.BytesIO(DATA))
    assert consumer_api.ping(demo_context, host=agent.host)['host'] == (
        agent.host
    )
    assert consumer_api.show(demo_context, image['id'])['size'] == len(DATA)
    path = os.path.join(agent.root, 'consumer-%s' % uuid.uuid4().hex[:6])
    result = consumer_api.download(
        demo_context, image['id'], path, host=agent.host
    )
    with open(path, 'rb') as f:
        assert hashlib.sha512(f.read()).hexdigest() == result['os_hash_value']
    assert result['os_hash_value'] == image['os_hash_value']


def test_errors_are_typed_on_a_transport_without_the_exmods(
    consumer_api,
    agent,
    images,
    demo_context,
    agents_dir,
):
    with pytest.raises(exception.ImageNotFound) as info:
        consumer_api.show(demo_context, MISSING)
    assert str(info.value) == 'Image %s could not be found.' % MISSING
    assert isinstance(info.value.__cause__, messaging.RemoteError)
    assert 'Traceback' in ''.join(info.value.__cause__.traceback)

    image = images(demo_context, data=io.BytesIO(DATA))
    outside = os.path.join(agents_dir, 'not-a-root', 'x')
    with pytest.raises(exception.PathNotAllowed) as info:
        consumer_api.download(demo_context, image['id'], outside, agent.host)
    assert info.value.kwargs['code'] == 403
    assert not os.path.exists(outside)


def test_a_token_less_context_is_refused_as_not_authorized(
    consumer_api,
    agent,
):
    with pytest.raises(exception.NotAuthorized):
        consumer_api.ping({'user_id': 'u', 'project_id': 'p'}, agent.host)


def test_upgrade_levels_auto_asks_the_agent_its_version(
    consumer_conf,
    consumer_transport,
    agent,
    demo_context,
    admin_context,
):
    consumer_conf.set_override('image_agent', 'auto', group='upgrade_levels')
    api = rpcapi.ImageAgentAPI(
        conf=consumer_conf, transport=consumer_transport
    )
    assert not api.can_send_version('1.1', host=agent.host)  # not asked yet
    assert api.can_send_version('1.1', demo_context, host=agent.host)
    # Asked once, remembered: the cache methods are sent (and refused by
    # the agent, which has no cache).
    with pytest.raises(exception.CacheDisabled):
        api.list_cache(admin_context, agent.host)


def test_upgrade_levels_release_name_pins_the_version(
    consumer_conf,
    consumer_transport,
    agent,
    admin_context,
):
    consumer_conf.set_override('image_agent', '1.0', group='upgrade_levels')
    api = rpcapi.ImageAgentAPI(
        conf=consumer_conf, transport=consumer_transport
    )
    with pytest.raises(exception.RPCVersionCapped):
        api.list_cache(admin_context, agent.host)
    consumer_conf.set_override(
        'image_agent', 'hibiscus', group='upgrade_levels'
    )
    api = rpcapi.ImageAgentAPI(
        conf=consumer_conf, transport=consumer_transport
    )
    with pytest.raises(exception.CacheDisabled):
        api.list_cache(admin_context, agent.host)


@pytest.mark.parametrize('name', ['volume-%s@lvm#pool', 'rbd-%s:volumes'])
def test_an_agent_named_as_a_cinder_backend_serves_its_host(
    agent_factory,
    consumer_api,
    demo_context,
    name,
):
    """``[DEFAULT] host`` of an agent may be any name its callers use for
    the host, such as Cinder's ``node@backend#pool``."""
    host = name % uuid.uuid4().hex[:6]
    agent = agent_factory(host)
    assert consumer_api.ping(demo_context, host=host)['host'] == host
    assert agent.alive()


# -- the agents' own exchange -------------------------------------------------


def test_a_caller_in_another_control_exchange_reaches_the_agents(
    consumer_conf,
    rabbit_url,
    agent,
    demo_context,
):
    """Nova's transport sends to control_exchange "nova" by default."""
    messaging.get_rpc_transport(consumer_conf, url=rabbit_url).cleanup()
    consumer_conf.set_override('control_exchange', 'nova')
    transport = messaging.get_rpc_transport(consumer_conf, url=rabbit_url)
    try:
        api = rpcapi.ImageAgentAPI(conf=consumer_conf, transport=transport)
        assert api.ping(demo_context)['host']
        assert api.ping(demo_context, host=agent.host)['host'] == agent.host
    finally:
        transport.cleanup()


def _earlier_client(transport, topic):
    """A caller of an earlier version: the topic in its control_exchange."""
    return messaging.get_rpc_client(
        transport,
        messaging.Target(topic=topic, version='1.0'),
        serializer=rpc.RequestContextSerializer(),
        timeout=5,
    )


def test_callers_of_earlier_versions_reach_upgraded_agents(
    transport,
    topic,
    agent,
    demo_context,
):
    client = _earlier_client(transport, topic)
    status = client.prepare(server=agent.host).call(demo_context, 'ping')
    assert status['host'] == agent.host


def test_the_control_exchange_listener_can_be_turned_off(
    agent_factory,
    transport,
    topic,
    consumer_api,
    demo_context,
):
    host = 'exchange-only-%s' % uuid.uuid4().hex[:6]
    agent_factory(
        host, options={'agent': {'listen_on_control_exchange': 'false'}}
    )
    assert consumer_api.ping(demo_context, host=host)['host'] == host
    client = _earlier_client(transport, topic)
    with pytest.raises(messaging.MessagingTimeout):
        client.prepare(server=host).call(demo_context, 'ping')
