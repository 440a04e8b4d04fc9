"""The worked examples of doc/source/consuming.rst, run as they are.

``doc/source/examples/cinder_volume_from_image.py`` and
``nova_image_to_compute.py`` start up as cinder-volume and nova-compute
do, with a configuration file of their service naming the real broker, and
have a real agent write an image on its host.
"""

import hashlib
import io
import json
import os
import subprocess
import sys
import uuid

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))
EXAMPLES = os.path.join(ROOT, 'doc', 'source', 'examples')
DATA = os.urandom(1024 * 1024 + 3)


def _run_example(name, config_file, args, env):
    done = subprocess.run(
        [
            sys.executable,
            os.path.join(EXAMPLES, name),
            '--config-file',
            str(config_file),
            *args,
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr[-4000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture
def user_env(deployment):
    """The demo user, in the environment as the examples read it."""
    env = dict(os.environ)
    env.update(
        OS_AUTH_URL=deployment.keystone_url,
        OS_USERNAME='demo',
        OS_PASSWORD=deployment.password('demo'),
        OS_PROJECT_NAME='demo',
        OS_USER_DOMAIN_NAME='Default',
        OS_PROJECT_DOMAIN_NAME='Default',
    )
    return env


@pytest.fixture
def image(images, demo_context):
    return images(demo_context, data=io.BytesIO(DATA))


def _sha512(path):
    with open(path, 'rb') as f:
        return hashlib.file_digest(f, 'sha512').hexdigest()


@pytest.mark.parametrize(
    'eventlet', [True, False], ids=['eventlet', 'threads']
)
def test_cinder_example_downloads_on_the_volumes_node(
    agent, rabbit_url, topic, image, user_env, tmp_path, eventlet
):
    config_file = tmp_path / 'cinder.conf'
    config_file.write_text(
        '[DEFAULT]\ntransport_url = %s\n[image_agent]\ntopic = %s\n'
        % (rabbit_url, topic)
    )
    env = dict(user_env)
    env.pop('OS_CINDER_DISABLE_EVENTLET_PATCHING', None)
    if not eventlet:
        env['OS_CINDER_DISABLE_EVENTLET_PATCHING'] = '1'
    path = os.path.join(agent.root, 'volume-%s.img' % uuid.uuid4().hex[:8])
    volume_host = '%s@lvmdriver-1#pool-a' % agent.host
    summary = _run_example(
        'cinder_volume_from_image.py',
        config_file,
        [image['id'], volume_host, path],
        env,
    )
    assert summary['node'] == agent.host
    assert summary['path'] == path
    assert summary['size'] == len(DATA)
    assert summary['os_hash_value'] == image['os_hash_value']
    assert _sha512(path) == image['os_hash_value']


@pytest.fixture(scope='session')
def nova_agent(agent_factory):
    """The agent of a compute host, configured as any other: Nova's
    transport (control_exchange nova) reaches it in the agents' exchange."""
    return agent_factory('compute-%s' % uuid.uuid4().hex[:6], keep=True)


def test_nova_example_fills_the_compute_hosts_image_cache(
    nova_agent, rabbit_url, topic, image, user_env, tmp_path
):
    config_file = tmp_path / 'nova.conf'
    config_file.write_text(
        '[DEFAULT]\n'
        'transport_url = %s\n'
        'host = %s\n'
        'instances_path = %s\n'
        '[image_agent]\n'
        'topic = %s\n' % (rabbit_url, nova_agent.host, nova_agent.root, topic)
    )
    args = [image['id']]
    first = _run_example(
        'nova_image_to_compute.py', config_file, args, user_env
    )
    name = hashlib.sha1(image['id'].encode(), usedforsecurity=False)
    expected = os.path.join(nova_agent.root, '_base', name.hexdigest())
    assert first['host'] == nova_agent.host
    assert first['path'] == expected
    assert first['reused'] is False
    assert _sha512(expected) == image['os_hash_value']
    # The next instance from the same image finds it there, verified.
    again = _run_example(
        'nova_image_to_compute.py', config_file, args, user_env
    )
    assert again['reused'] is True
