"""SIGHUP re-reads the configuration: the image cache can be turned on."""

import signal

import pytest

from image_agent import exception

pytestmark = pytest.mark.slow


def test_sighup_applies_a_new_cache_dir(agent_factory, api, admin_context):
    agent = agent_factory()
    try:
        with pytest.raises(exception.ImageAgentException) as info:
            api.list_cache(admin_context, agent.host)
        assert 'cache' in str(info.value).lower()
        cache_dir = agent.root + '/cache'
        with open(agent.config_file, 'a') as f:
            f.write('\n[agent]\ncache_dir = %s\ncache_max_size = 64\n'
                    % cache_dir)  # fmt: skip
        agent.signal(signal.SIGHUP)
        agent.wait_for_log('listening on', count=2)
        listed = api.list_cache(admin_context, agent.host)
        assert listed['directory'] == cache_dir
        assert listed['max_size'] == 64 * 1024 * 1024
    finally:
        agent.stop(timeout=20)
