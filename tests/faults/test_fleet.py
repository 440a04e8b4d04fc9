"""A small fleet: many agents on one private RabbitMQ node, all pre-cached.

The CI version of ``tools/bench/fleet.py`` (run it by hand with 100
agents): ``FLEET_AGENTS`` agents start as separate processes, one admin
``precache`` call puts a 64 MiB image in every cache, every host answers
a ping fan-out, and the figures (memory per agent, broker queues and
connections, latencies) go to the summary table.
"""

from __future__ import annotations

import io
import os

import pytest

from tests.faults.helpers import MiB
from tools.bench import fleet

pytestmark = pytest.mark.slow

FLEET_AGENTS = int(os.environ.get('IMAGE_AGENT_FLEET_AGENTS', '20'))
SIZE_MIB = 64


@pytest.mark.scenario('61. A fleet of agents pre-cached at once')
@pytest.mark.test_timeout(600)
def test_fleet_precache(
    row,
    faults_rabbit,
    deployment,
    agents_dir,
    images,
    admin_context,
):
    image = images(admin_context, data=io.BytesIO(os.urandom(SIZE_MIB * MiB)))
    figures = fleet.run(
        FLEET_AGENTS,
        deployment,
        faults_rabbit,
        admin_context,
        image['id'],
        os.path.join(agents_dir, 'fleet'),
    )
    n = FLEET_AGENTS
    row.add(calls=1 + 2 * n, faults=0)
    for line in fleet.table(figures, SIZE_MIB).splitlines():
        row.note(' '.join(line.split()))
    failed = figures['failed_hosts']
    row.add(
        failures=len(failed)
        + sum(figures[k]['errors'].total() for k in ('ping_cold', 'ping'))
        + (n - figures['alive'])
    )
    assert failed == {}, failed
    assert figures['outcomes'] == {'cached': n}, figures['outcomes']
    assert not figures['ping']['errors'], figures['ping']['errors']
    assert figures['alive'] == n
    # One topic queue, one queue per host, a reply queue: the broker's
    # load grows by one queue and one connection or two per agent.
    broker = figures['broker']
    assert broker['queues'] >= n + 1, broker
    assert broker['connections'] >= n, broker
