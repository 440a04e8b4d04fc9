"""Guru Meditation Reports: SIGUSR2 or a watched file, on a real agent.

A download runs through a throttling proxy while the report is asked for,
so the report shows it in flight.
"""

import io
import os
import signal
import time

import pytest

from tests.functional.background import download_under_way
from tests.functional.test_agent_lifecycle import RATE

pytestmark = pytest.mark.slow

DATA = os.urandom(6 * 1024 * 1024)
REPORT = 'Guru Meditation'


@pytest.fixture
def image(images, demo_context):
    return images(demo_context, data=io.BytesIO(DATA))


@pytest.fixture
def start_agent(agent_factory):
    """agent_factory, with the agents stopped at the end of the test: they
    listen on the session's topic, where other tests call any agent."""
    started = []

    def start(**kwargs):
        started.append(agent_factory(**kwargs))
        return started[-1]

    yield start
    for agent in started:
        agent.stop(timeout=20)


def wait_for_report(agent, count=1, timeout=15):
    agent.wait_for_log(REPORT, count=count, timeout=timeout)
    # The report is written in one go; give the last lines a moment.
    time.sleep(0.3)
    return agent.log_text()


def worker_pid(api, demo_context, agent):
    return api.ping(demo_context, host=agent.host)['pid']


def test_sigusr2_reports_the_transfer_in_flight(
    start_agent,
    slow_glance,
    api,
    demo_context,
    image,
    deployment,
):
    agent = start_agent(
        glance_urls=[slow_glance(RATE)],
        options={'agent': {'max_concurrent_downloads': '3'}},
    )
    call, path = download_under_way(
        api, demo_context, image['id'], agent, 'reported'
    )
    os.kill(worker_pid(api, demo_context, agent), signal.SIGUSR2)
    text = wait_for_report(agent)
    report = text[text.index(REPORT) :]
    assert 'Transfers in flight' in report
    assert image['id'] in report
    assert 'Transfer slots' in report
    assert 'total = 3' in report and 'in_use = 1' in report
    assert 'Image cache' in report
    assert 'Configuration' in report
    assert deployment.password('image-agent') not in report
    call.join(30)
    assert call.error is None, call.error
    assert agent.alive()


def test_sigusr2_to_the_master_does_not_stop_the_agent(
    start_agent,
    api,
    demo_context,
):
    agent = start_agent()
    agent.signal(signal.SIGUSR2)
    wait_for_report(agent)
    assert agent.alive()
    assert api.ping(demo_context, host=agent.host)['host'] == agent.host


def test_a_modified_trigger_file_writes_a_report(
    start_agent,
    agents_dir,
    api,
    demo_context,
):
    trigger = os.path.join(agents_dir, 'gmr-trigger')
    with open(trigger, 'w'):
        pass
    agent = start_agent(
        options={
            'oslo_reports': {
                'file_event_handler': trigger,
                'file_event_handler_interval': '1',
            }
        }
    )
    time.sleep(1.5)
    os.utime(trigger)
    text = wait_for_report(agent)
    assert 'Transfer slots' in text[text.index(REPORT) :]
    assert api.ping(demo_context, host=agent.host)['host'] == agent.host
