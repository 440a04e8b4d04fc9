"""A RabbitMQ cluster of private nodes on loopback, for tests and benchmarks.

Each node is a ``PrivateRabbit`` (its own name, free ports and data); the
second and later nodes join the first. The machine's own broker is never
touched. Callers and agents reach the cluster through ``url``, which lists
every node, and declare quorum queues (``QUORUM_OPTIONS``) so that a queue
lives on a majority of the nodes and survives the loss of one.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time

from tests.functional.agent_fixtures import PrivateRabbit
from tests.functional.deployment_fixture import pid_alive

QUORUM_OPTIONS = {
    'rabbit_quorum_queue': 'true',
    'rabbit_transient_quorum_queue': 'true',
}


def node_pid(node: PrivateRabbit) -> int | None:
    """The Erlang VM of a running node, from its pid file."""
    try:
        with open(node.env['RABBITMQ_PID_FILE']) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


class RabbitCluster:
    """``size`` private nodes clustered together; ``node_class`` makes one."""

    def __init__(self, size: int = 3, node_class=PrivateRabbit) -> None:
        self.nodes: list[PrivateRabbit] = [node_class() for _ in range(size)]
        self.url = 'rabbit://%s/' % ','.join(
            'guest:guest@127.0.0.1:%d' % node.port for node in self.nodes
        )

    def start(self) -> RabbitCluster:
        """Start every node at once, then join the others to the first."""
        for node in self.nodes:
            node.start(wait=False)
        for node in self.nodes:
            node.wait_up()
        first = self.nodes[0].node
        for node in self.nodes[1:]:
            node.ctl('stop_app')
            node.ctl('join_cluster', first)
            node.ctl('start_app')
        return self

    def kill(self, index: int) -> float:
        """SIGKILL one node's VM; the seconds until it was gone."""
        node = self.nodes[index]
        pid = node_pid(node)
        assert pid, 'node %s has no pid file' % node.node
        started = time.monotonic()
        os.kill(pid, signal.SIGKILL)
        deadline = started + 30
        while pid_alive(pid):
            assert time.monotonic() < deadline, '%s did not die' % node.node
            time.sleep(0.05)
        return time.monotonic() - started

    def restart(self, index: int) -> float:
        """Start a killed node again with its data: it rejoins by itself."""
        started = time.monotonic()
        self.nodes[index].start()
        return time.monotonic() - started

    def ask(self, *args: str) -> str:
        """``rabbitmqctl`` output from the first node that answers."""
        for node in self.nodes:
            with contextlib.suppress(
                subprocess.CalledProcessError, subprocess.TimeoutExpired
            ):
                return node.ctl_output(*args, timeout=20)
        return ''

    def connections_on(self, index: int) -> int:
        """Client connections the cluster has on one node.

        A connection's pid (``<node.N.N.N>``) names its node.
        """
        prefix = '<%s.' % self.nodes[index].node
        lines = self.ask(
            'list_connections', '--no-table-headers', 'pid'
        ).splitlines()
        return sum(1 for line in lines if line.strip().startswith(prefix))

    def running_nodes(self) -> int:
        """How many nodes the first live node sees running."""
        out = self.ask('eval', 'length(nodes()) + 1.').strip()
        return int(out) if out.isdigit() else 0

    def stop(self) -> None:
        for node in self.nodes:
            pid = node_pid(node)
            node.stop()
            if pid and pid_alive(pid):
                os.kill(pid, signal.SIGKILL)
