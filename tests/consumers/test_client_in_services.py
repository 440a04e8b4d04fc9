"""The client library inside Cinder and Nova processes, over real RabbitMQ.

Each test starts a process that comes up as ``cinder-volume`` or
``nova-compute`` does (``tests/consumers/service_client.py``), with a
configuration file of that service naming the real broker and the agents'
topic in ``[image_agent]``, then calls a real agent through the service's
own transport (``cinder.rpc.TRANSPORT``, ``nova.rpc.TRANSPORT``: made
without ``image_agent.exception`` among its allowed remote modules; Nova's
with ``control_exchange = nova``) and its own request context class.
"""

import io
import json
import os
import subprocess
import sys
import uuid

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))
DATA = os.urandom(1024 * 1024 + 5)
MISSING = '6f1d8c1e-0000-4000-8000-0000000c0115'


def _run_service(service, tmp_path, rabbit_url, topic, request, env=None):
    """Run the service process; its JSON report."""
    config_file = tmp_path / ('%s.conf' % service)
    config_file.write_text(
        '[DEFAULT]\n'
        'transport_url = %s\n'
        'debug = false\n'
        '[image_agent]\n'
        'topic = %s\n'
        'timeout = 60\n' % (rabbit_url, topic)
    )
    request_file = tmp_path / 'request.json'
    request_file.write_text(json.dumps(request))
    done = subprocess.run(
        [
            sys.executable,
            '-m',
            'tests.consumers.service_client',
            service,
            str(config_file),
            str(request_file),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture
def request_for(deployment, agent, images, demo_context):
    """What the service process asks: an image of the demo user, a path
    under the agent's root, the demo user's token and catalog."""
    image = images(demo_context, data=io.BytesIO(DATA))

    def make():
        return {
            'host': agent.host,
            'image_id': image['id'],
            'path': os.path.join(
                agent.root, 'service-%s.raw' % uuid.uuid4().hex[:8]
            ),
            'missing': MISSING,
            'credentials': deployment.authenticate('demo'),
        }

    make.image = image
    return make


def _check_report(report, request, image, topic, exchange):
    assert report['control_exchange'] == exchange
    assert report['topic'] == topic
    assert report['ping']['host'] == request['host']
    assert report['ping']['version']
    assert report['show']['id'] == image['id']
    assert report['show']['size'] == len(DATA)
    download = report['download']
    assert download['size'] == len(DATA)
    assert download['os_hash_value'] == image['os_hash_value']
    assert report['sha512_of_file'] == image['os_hash_value']
    assert os.path.getsize(request['path']) == len(DATA)
    assert report['missing'] == {
        'class': 'ImageNotFound',
        'is_image_not_found': True,
        'message': 'Image %s could not be found.' % MISSING,
        'code': 404,
    }


def _without(name):
    env = dict(os.environ)
    env.pop(name, None)
    return env


@pytest.mark.parametrize(
    'eventlet',
    [True, False],
    ids=['cinder-volume-eventlet', 'cinder-volume-threads'],
)
def test_cinder_volume_calls_the_agent_on_its_transport(
    tmp_path,
    rabbit_url,
    topic,
    request_for,
    eventlet,
):
    env = _without('OS_CINDER_DISABLE_EVENTLET_PATCHING')
    if not eventlet:
        env['OS_CINDER_DISABLE_EVENTLET_PATCHING'] = '1'
    request = request_for()
    report = _run_service('cinder', tmp_path, rabbit_url, topic, request, env)
    _check_report(report, request, request_for.image, topic, 'openstack')


def test_nova_compute_calls_the_agent_on_its_transport(
    tmp_path,
    rabbit_url,
    topic,
    request_for,
):
    env = _without('OS_NOVA_DISABLE_EVENTLET_PATCHING')
    request = request_for()
    report = _run_service('nova', tmp_path, rabbit_url, topic, request, env)
    _check_report(report, request, request_for.image, topic, 'nova')
