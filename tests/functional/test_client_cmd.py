"""``image-agent-client``: the operator's command, run as a real process.

It gets a token for the caller's own credentials from Keystone (``OS_*``
environment) and calls an agent over the real RabbitMQ.
"""

import hashlib
import io
import json
import os
import subprocess
import sys
import uuid

import pytest

DATA = os.urandom(512 * 1024)


def client_command() -> list[str]:
    script = os.path.join(
        os.path.dirname(sys.executable), 'image-agent-client'
    )
    if os.access(script, os.X_OK):
        return [script]
    return [sys.executable, '-m', 'image_agent.cmd.client']


@pytest.fixture
def run(deployment, rabbit_url, topic, agent):
    """run(*args) -> CompletedProcess of image-agent-client as user demo."""
    env = dict(
        os.environ,
        OS_AUTH_URL=deployment.keystone_url,
        OS_USERNAME='demo',
        OS_PASSWORD=deployment.password('demo'),
        OS_PROJECT_NAME='demo',
        OS_USER_DOMAIN_NAME='Default',
        OS_PROJECT_DOMAIN_NAME='Default',
        IMAGE_AGENT_TRANSPORT_URL=rabbit_url,
        IMAGE_AGENT_TOPIC=topic,
    )

    def run(*args, env_extra=None):
        return subprocess.run(
            [*client_command(), '--config-file', os.devnull, *args],
            env=dict(env, **(env_extra or {})),
            capture_output=True,
            text=True,
            timeout=60,
        )

    return run


def ok_json(result):
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_ping_as_json_and_table(run, agent):
    status = ok_json(run('--host', agent.host, '-f', 'json', 'ping'))
    assert status['host'] == agent.host
    table = run('--host', agent.host, 'ping')
    assert table.returncode == 0
    assert '| host ' in table.stdout and agent.host in table.stdout


def test_every_operation(run, agent, demo_context, images, deployment):
    image = images(demo_context, data=io.BytesIO(DATA))
    image_id = image['id']

    shown = ok_json(run('-f', 'json', 'show', image_id))
    assert shown['id'] == image_id
    listed = ok_json(
        run('-f', 'json', 'detail', '--filter', 'name=' + image['name'])
    )
    assert [i['id'] for i in listed] == [image_id]
    table = run('detail', '--filter', 'name=' + image['name'])
    assert image_id in table.stdout

    path = os.path.join(agent.root, 'cli-%s' % image_id[:8])
    done = run('--host', agent.host, '-f', 'json', 'download', image_id, path)
    result = ok_json(done)
    assert result['path'] == path
    assert result['os_hash_value'] == hashlib.sha512(DATA).hexdigest()
    assert 'download %s:' % image_id in done.stderr
    assert '/s)' in done.stderr  # size, time and rate at the end
    with open(path, 'rb') as f:
        assert f.read() == DATA

    created = ok_json(
        run(
            '--host', agent.host, '-f', 'json', 'create',
            '--name', 'cli-' + uuid.uuid4().hex[:6],
            '--disk-format', 'raw', '--container-format', 'bare',
            '--property', 'origin=cli', '--file', path,
        )
    )  # fmt: skip
    assert created['status'] == 'active'
    assert created['properties']['origin'] == 'cli'
    updated = ok_json(
        run('-f', 'json', 'update', created['id'], '--property', 'k=v')
    )
    assert updated['properties'] == {'origin': 'cli', 'k': 'v'}
    assert ok_json(run('-f', 'json', 'list-members', created['id'])) == []
    stores = ok_json(run('-f', 'json', 'get-stores'))
    assert {'fast', 'cheap'} <= {s['id'] for s in stores}
    location = ok_json(run('-f', 'json', 'get-location', created['id']))
    assert set(location) == {'direct_url', 'locations'}

    served = 'cli-loc-%s.raw' % uuid.uuid4().hex[:6]
    with open(os.path.join(deployment.fileserver_dir, served), 'wb') as f:
        f.write(b'served')
    url = '%s/%s' % (deployment.fileserver_url, served)
    empty = images(demo_context)
    ok_json(
        run(
            '-f', 'json', 'add-location', empty['id'], url,
            '--metadata', '{"origin": "cli"}',
        )
    )  # fmt: skip

    deleted = ok_json(run('-f', 'json', 'delete', created['id']))
    assert deleted == {'id': created['id'], 'deleted': True}


def test_errors_are_one_line_and_a_non_zero_exit(run, agent):
    missing = str(uuid.uuid4())
    result = run('show', missing)
    assert result.returncode == 1
    assert result.stderr.strip() == (
        'ERROR: Image %s could not be found.' % missing
    )
    bad = run('--host', agent.host, 'download', missing, 'relative/path')
    assert bad.returncode == 1
    assert len(bad.stderr.strip().splitlines()) == 1


def test_bad_credentials_fail_cleanly(run):
    result = run('ping', env_extra={'OS_PASSWORD': 'wrong'})
    assert result.returncode == 1
    assert result.stderr.startswith('ERROR: Keystone authentication failed')
    assert len(result.stderr.strip().splitlines()) == 1


def test_no_agent_on_the_topic_fails_at_once_with_one_line(run):
    topic = 'nobody-%s' % uuid.uuid4().hex
    result = run('--topic', topic, '--timeout', '2', 'ping')
    assert result.returncode == 1
    assert result.stderr.startswith(
        'ERROR: No image agent listens on topic %s, any host' % topic
    )
    assert len(result.stderr.strip().splitlines()) == 1


# -- credentials and formats as OpenStack's clients take and give them ------


def _demo_session(deployment):
    from keystoneauth1 import session as ks_session
    from keystoneauth1.identity import v3

    auth = v3.Password(
        auth_url=deployment.keystone_url,
        username='demo',
        password=deployment.password('demo'),
        project_name='demo',
        user_domain_id='default',
        project_domain_id='default',
    )
    return ks_session.Session(auth=auth)


@pytest.fixture
def app_credential(deployment):
    """An application credential of user demo, deleted afterwards."""
    session = _demo_session(deployment)
    user_id = session.get_user_id()
    body = session.post(
        '/users/%s/application_credentials' % user_id,
        endpoint_filter={'service_type': 'identity', 'interface': 'public'},
        json={
            'application_credential': {'name': 'ia-' + uuid.uuid4().hex[:8]}
        },
    ).json()['application_credential']
    yield body
    session.delete(
        '/users/%s/application_credentials/%s' % (user_id, body['id']),
        endpoint_filter={'service_type': 'identity', 'interface': 'public'},
        raise_exc=False,
    )


def _without_password(env_extra):
    """The demo user's OS_* variables replaced by ``env_extra``."""
    cleared = {
        name: ''
        for name in (
            'OS_USERNAME',
            'OS_PASSWORD',
            'OS_PROJECT_NAME',
            'OS_USER_DOMAIN_NAME',
            'OS_PROJECT_DOMAIN_NAME',
        )
    }
    return dict(cleared, **env_extra)


def test_an_application_credential_authenticates(
    run, agent, demo_context, images, app_credential
):
    image = images(demo_context)
    env = _without_password(
        {
            'OS_AUTH_TYPE': 'v3applicationcredential',
            'OS_APPLICATION_CREDENTIAL_ID': app_credential['id'],
            'OS_APPLICATION_CREDENTIAL_SECRET': app_credential['secret'],
        }
    )
    result = run('-f', 'value', '-c', 'id', 'show', image['id'], env_extra=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout == image['id'] + '\n'


def test_a_cloud_of_clouds_yaml_authenticates(
    run, agent, demo_context, images, deployment, tmp_path
):
    image = images(demo_context)
    clouds = tmp_path / 'clouds.yaml'
    clouds.write_text(
        'clouds:\n'
        '  ia-demo:\n'
        '    auth:\n'
        '      auth_url: %s\n'
        '      username: demo\n'
        '      password: %s\n'
        '      project_name: demo\n'
        '      user_domain_id: default\n'
        '      project_domain_id: default\n'
        % (deployment.keystone_url, deployment.password('demo'))
    )
    env = _without_password(
        {
            'OS_AUTH_URL': '',
            'OS_CLOUD': 'ia-demo',
            'OS_CLIENT_CONFIG_FILE': str(clouds),
        }
    )
    result = run('-f', 'json', '-c', 'id', '-c', 'name', 'show', image['id'],
                 env_extra=env)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {
        'id': image['id'],
        'name': image['name'],
    }


def test_domain_ids_are_honoured(run, agent):
    env = {
        'OS_USER_DOMAIN_NAME': '',
        'OS_PROJECT_DOMAIN_NAME': '',
        'OS_USER_DOMAIN_ID': 'default',
        'OS_PROJECT_DOMAIN_ID': 'default',
    }
    result = run('--host', agent.host, '-f', 'yaml', 'ping', env_extra=env)
    assert result.returncode == 0, result.stderr
    assert 'host: %s' % agent.host in result.stdout


def test_a_missing_domain_says_what_to_set(run):
    env = {'OS_USER_DOMAIN_NAME': ''}
    result = run('ping', env_extra=env)
    assert result.returncode == 1
    assert 'OS_USER_DOMAIN_NAME' in result.stderr


def test_no_credentials_say_what_to_set(run, agent):
    env = _without_password({'OS_AUTH_URL': ''})
    result = run('--host', agent.host, 'ping', env_extra=env)
    assert result.returncode == 1
    assert 'openrc' in result.stderr and 'OS_CLOUD' in result.stderr
