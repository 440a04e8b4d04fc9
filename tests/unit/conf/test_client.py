"""The client's options: registered only when asked, on the caller's conf.

A service that calls the agents (Cinder, Nova) has its own ``[DEFAULT]
host``, ``auth_strategy`` and ``[glance]`` options on ``cfg.CONF``; the
client library must neither clash with them nor add to them on import.
"""

import json
import os
import subprocess
import sys
import textwrap

from oslo_config import cfg
import oslo_messaging as messaging
import pytest

from image_agent import rpcapi
from image_agent.conf import client
from image_agent.conf import default
from image_agent.conf import opts

ROOT = os.path.dirname(
    os.path.dirname(os.path.dirname(os.path.dirname(__file__)))
)

# Run in a fresh interpreter: what importing a module adds to cfg.CONF.
# oslo.messaging and oslo.log are imported first: a consumer has them
# already, and oslo.messaging registers its own options on import.
_REGISTERED_BY_IMPORT = textwrap.dedent(
    """
    import json, sys
    import oslo_log.log
    import oslo_messaging
    from oslo_config import cfg

    def options():
        found = {}
        for name in cfg.CONF:
            value = cfg.CONF[name]
            if isinstance(value, cfg.ConfigOpts.GroupAttr):
                found[name] = sorted(value)
            else:
                found.setdefault('DEFAULT', []).append(name)
        return found

    before = options()
    __import__(sys.argv[1])
    after = options()
    print(json.dumps({
        group: sorted(set(names) - set(before.get(group, [])))
        for group, names in after.items()
        if set(names) - set(before.get(group, []))
    }))
    """
)


def _registered_by_import(module: str) -> dict:
    done = subprocess.run(
        [sys.executable, '-W', 'ignore', '-c', _REGISTERED_BY_IMPORT, module],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize(
    'module',
    [
        'image_agent.rpcapi',
        'image_agent.exception',
        'image_agent.context',
        'image_agent.rpc',
        'image_agent.conf.client',
    ],
)
def test_importing_the_client_registers_nothing(module):
    assert _registered_by_import(module) == {}


def test_the_agents_modules_still_register_its_options():
    """What the agent and the in-process image API read is registered on
    import of the modules that read it, as before."""
    registered = _registered_by_import('image_agent.image.glance')
    assert 'host' in registered['DEFAULT']
    assert 'api_servers' in registered['glance']
    assert 'download_roots' in registered['agent']


@pytest.fixture
def consumer_conf() -> cfg.ConfigOpts:
    """A ConfigOpts holding options of the names Cinder and Nova define,
    with definitions of their own."""
    conf = cfg.ConfigOpts()
    conf.register_opts(
        [
            cfg.StrOpt('host', default='cinder-1@lvm#pool'),
            cfg.StrOpt('auth_strategy', default='keystone', help='theirs'),
        ]
    )
    conf.register_opts(
        [cfg.StrOpt('region_name', help='theirs')], group='glance'
    )
    conf.register_opts([cfg.StrOpt('compute')], group='upgrade_levels')
    return conf


def test_registering_beside_a_consumers_options(consumer_conf):
    client.register_opts(consumer_conf)
    client.register_opts(consumer_conf)  # a second client: no effect
    consumer_conf([], default_config_files=[])
    assert consumer_conf.image_agent.topic == 'image-agent'
    assert consumer_conf.image_agent.timeout is None
    assert consumer_conf.image_agent.transfer_timeout == 6 * 3600
    assert consumer_conf.image_agent.call_monitor_timeout == 10
    assert consumer_conf.upgrade_levels.image_agent is None
    assert consumer_conf.upgrade_levels.compute is None
    assert consumer_conf.host == 'cinder-1@lvm#pool'
    assert set(consumer_conf.glance) == {'region_name'}


def test_the_client_registers_on_the_conf_it_is_given(consumer_conf):
    consumer_conf([], default_config_files=[])
    transport = messaging.get_rpc_transport(consumer_conf, url='fake://')
    try:
        api = rpcapi.ImageAgentAPI(conf=consumer_conf, transport=transport)
        assert api.topic == 'image-agent'
        assert 'image_agent' in consumer_conf
        assert set(consumer_conf) - {'image_agent'} >= {'host', 'glance'}
    finally:
        transport.cleanup()


def test_the_options_are_read_from_the_consumers_file(consumer_conf, tmp_path):
    path = tmp_path / 'cinder.conf'
    path.write_text(
        '[image_agent]\ntopic = images-2\ntimeout = 20\n'
        '[upgrade_levels]\nimage_agent = 1.0\n'
    )
    consumer_conf(['--config-file', str(path)])
    client.register_opts(consumer_conf)
    assert consumer_conf.image_agent.topic == 'images-2'
    assert consumer_conf.image_agent.timeout == 20
    assert consumer_conf.upgrade_levels.image_agent == '1.0'


def test_the_former_agent_names_still_work_in_files(tmp_path):
    """``[agent] version_cap``, ``transfer_timeout`` and
    ``call_monitor_timeout`` of existing files (image-agent-client reads
    the agent's file) keep their effect."""
    path = tmp_path / 'image-agent.conf'
    path.write_text(
        '[agent]\nversion_cap = 1.0\ntransfer_timeout = 300\n'
        'call_monitor_timeout = 6\n'
    )
    conf = cfg.ConfigOpts()
    client.register_opts(conf)
    conf(['--config-file', str(path)])
    assert conf.upgrade_levels.image_agent == '1.0'
    assert conf.image_agent.transfer_timeout == 300
    assert conf.image_agent.call_monitor_timeout == 6


@pytest.mark.parametrize(
    'host', ['node-3@lvm#pool', 'rbd:volumes', 'compute-3.example.org']
)
def test_the_agents_host_is_any_name(host):
    conf = cfg.ConfigOpts()
    default.register_opts(conf)
    conf([], default_config_files=[])
    conf.set_override('host', host)
    assert conf.host == host


def test_the_client_options_have_a_generator_namespace_of_their_own():
    listed = {
        getattr(group, 'name', group): {o.dest for o in group_opts}
        for group, group_opts in opts.list_client_opts()
    }
    assert listed == {
        'image_agent': {
            'topic',
            'timeout',
            'transfer_timeout',
            'call_monitor_timeout',
        },
        'upgrade_levels': {'image_agent'},
    }


def test_a_private_conf_can_make_calls():
    """oslo.messaging reads its tracing options from the transport's conf
    but registers them only on cfg.CONF: the client registers them."""
    conf = cfg.ConfigOpts()
    conf([], default_config_files=[])
    transport = messaging.get_rpc_transport(conf, url='fake://')
    try:
        api = rpcapi.ImageAgentAPI(conf=conf, transport=transport, timeout=1)
        # No agent listens: the call times out instead of failing on a
        # missing option.
        with pytest.raises(messaging.MessagingTimeout):
            api.client.prepare(timeout=0.1).call({}, 'ping')
    finally:
        transport.cleanup()
