"""``image-agent-status upgrade check`` against the real deployment.

The command reads an agent's own configuration file and asks Keystone,
both Glance servers, the broker and the agents on the topic.
"""

import configparser
import json
import os
import subprocess
import sys
import uuid

import pytest

from image_agent import rpcapi

Code = {'SUCCESS': 0, 'WARNING': 1, 'FAILURE': 2}


def status_command() -> list[str]:
    script = os.path.join(
        os.path.dirname(sys.executable), 'image-agent-status'
    )
    if os.access(script, os.X_OK):
        return [script]
    return [sys.executable, '-m', 'image_agent.cmd.status']


def run_check(config_file: str) -> tuple[int, dict[str, dict]]:
    result = subprocess.run(
        [
            *status_command(),
            '--config-file',
            config_file,
            'upgrade',
            'check',
            '--json',
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode in (0, 1, 2), result.stdout + result.stderr
    checks = {c['check']: c for c in json.loads(result.stdout)['checks']}
    return result.returncode, checks


@pytest.fixture(scope='module')
def agent(agent_factory):
    """An agent alone on a topic of its own.

    The status command finds agents by pinging the topic a few times
    (RabbitMQ hands each ping to the next listener); on the session's topic
    other tests' agents would answer too, and this one could be missed.
    """
    suffix = uuid.uuid4().hex[:6]
    return agent_factory(
        'status-%s' % suffix, topic_='image-agent-status-%s' % suffix
    )


def edited(agent, tmp_path, changes: dict[str, dict[str, str]]) -> str:
    """A copy of the agent's configuration file with ``changes``."""
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(agent.config_file)
    for section, values in changes.items():
        if section != 'DEFAULT' and not parser.has_section(section):
            parser.add_section(section)
        for key, value in values.items():
            parser.set(section, key, value)
    path = tmp_path / 'image-agent.conf'
    with open(path, 'w') as f:
        parser.write(f)
    return str(path)


def test_a_running_agent_passes_every_check(agent):
    code, checks = run_check(agent.config_file)
    assert code == 0, checks
    assert len(checks) == 6
    assert checks['Peers']['details'] == 'Peers are off.'
    glance = checks['Glance with the service credentials']['details']
    assert 'Keystone issued a token' in glance
    agents = checks['RPC version of the running agents']['details']
    assert agent.host in agents


def test_a_broken_configuration_fails_with_reasons(agent, tmp_path):
    config_file = edited(
        agent,
        tmp_path,
        {
            'glance': {'password': 'not-the-password'},
            'agent': {
                'download_roots': str(tmp_path / 'missing'),
                'cache_dir': '/var/tmp/elsewhere',
            },
        },
    )
    code, checks = run_check(config_file)
    assert code == Code['FAILURE']
    glance = checks['Glance with the service credentials']
    assert glance['result'] == Code['FAILURE']
    assert 'Keystone refused' in glance['details']
    roots = checks['Download and upload roots']
    assert roots['result'] == Code['FAILURE']
    assert str(tmp_path / 'missing') in roots['details']
    cache = checks['Image cache']
    assert cache['result'] == Code['FAILURE']
    assert 'not inside a download root' in cache['details']


def test_an_unreachable_glance_fails(agent, tmp_path):
    config_file = edited(
        agent, tmp_path, {'glance': {'api_servers': 'http://127.0.0.1:9'}}
    )
    code, checks = run_check(config_file)
    assert code == Code['FAILURE']
    details = checks['Glance with the service credentials']['details']
    assert '127.0.0.1:9' in details


@pytest.mark.parametrize(
    ('cap', 'expected'),
    [('1.0', 'WARNING'), (rpcapi.ImageAgentAPI.RPC_API_VERSION, 'SUCCESS')],
)
def test_the_version_pin_is_compared_with_the_agents(
    agent,
    tmp_path,
    cap,
    expected,
):
    config_file = edited(agent, tmp_path, {'agent': {'version_cap': cap}})
    _code, checks = run_check(config_file)
    check = checks['RPC version of the running agents']
    assert check['result'] == Code[expected], check
    assert agent.host in check['details']


def test_no_agent_on_the_topic_is_a_warning(agent, tmp_path):
    config_file = edited(
        agent, tmp_path, {'agent': {'topic': 'image-agent-nobody-here'}}
    )
    _code, checks = run_check(config_file)
    check = checks['RPC version of the running agents']
    assert check['result'] == Code['WARNING']
    assert 'No agent answered' in check['details']
