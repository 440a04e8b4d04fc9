"""The examples of doc/source/consuming.rst run as written.

Each is a complete script: it parses a configuration file, takes the
caller's credentials from the OS_* variables and calls a real agent.
"""

import io
import os
import subprocess
import sys
import uuid

import pytest

EXAMPLES = os.path.join(
    os.path.dirname(__file__), '..', '..', 'doc', 'source', 'examples'
)
DATA = os.urandom(256 * 1024)


@pytest.fixture
def cache_agent(agent_factory, agents_dir):
    """An agent with an image cache, stopped at the end of the test (it
    listens on the session's topic)."""
    host = 'agent-cache-%s' % uuid.uuid4().hex[:6]
    cache_dir = os.path.join(agents_dir, host, 'root', 'cache')
    agent = agent_factory(host, options={'agent': {'cache_dir': cache_dir}})
    yield agent
    agent.stop(timeout=20)


@pytest.fixture
def run_example(deployment, agent):
    """run_example(name, *args, user='admin') -> CompletedProcess."""

    def run(name, *args, user='admin'):
        env = dict(
            os.environ,
            OS_AUTH_URL=deployment.keystone_url,
            OS_USERNAME=user,
            OS_PASSWORD=deployment.password(user),
            OS_PROJECT_NAME=deployment.info['users'][user]['project'],
            OS_USER_DOMAIN_NAME='Default',
            OS_PROJECT_DOMAIN_NAME='Default',
        )
        return subprocess.run(
            [
                sys.executable,
                os.path.join(EXAMPLES, name),
                '--config-file',
                agent.config_file,
                '--topic',
                agent.topic,
                *args,
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    return run


def test_precache_hosts_lists_every_failure_of_every_host(
    run_example, cache_agent, images, admin_context
):
    agent = cache_agent
    good = images(admin_context, data=io.BytesIO(DATA), visibility='public')
    missing = ['00000000-0000-4000-8000-00000000000%d' % i for i in (1, 2)]
    result = run_example(
        'precache_hosts.py',
        '--host', agent.host, '--host', 'no-such-host',
        '--image', good['id'], '--image', missing[0], '--image', missing[1],
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    lines = result.stdout.splitlines()
    # Both missing images of the live host, and every image of the other.
    for image_id in missing:
        assert any(
            line.startswith('%s %s error' % (agent.host, image_id))
            for line in lines
        ), lines
    skipped = [line for line in lines if line.startswith('no-such-host')]
    assert len(skipped) == 3, lines
    assert lines[-1] == '1 of 6 pre-cached', lines


def test_volume_download_writes_and_records(
    run_example, agent, images, demo_context, image_service
):
    image = images(demo_context, data=io.BytesIO(DATA))
    image_service.update(
        demo_context, image['id'], {'properties': {'kept': 'yes'}},
        purge_props=False,
    )  # fmt: skip
    result = run_example(
        'volume_download.py',
        '--image', image['id'], '--host', agent.host,
        '--volume', 'vol-1', '--directory', agent.root,
        user='demo',
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    path = os.path.join(agent.root, 'volume-vol-1.raw')
    with open(path, 'rb') as f:
        assert f.read() == DATA
    assert 'is at %s' % path in result.stderr
    properties = image_service.show(demo_context, image['id'])['properties']
    assert properties['cinder_last_used'] == 'vol-1'
    assert properties['kept'] == 'yes'
