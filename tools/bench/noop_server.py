"""A raw oslo.messaging RPC server with one no-op method: the RPC floor.

    python -m tools.bench.noop_server --url rabbit://... --topic T

The agent's ``ping`` is compared with a call of ``noop`` here: same broker,
same threading executor, a process of its own, nothing else.
"""

import argparse
import sys
import threading

from oslo_service import backend

backend.init_backend(backend.BackendType.THREADING)

from oslo_config import cfg  # noqa: E402
import oslo_messaging as messaging  # noqa: E402


class NoopEndpoint:
    target = messaging.Target(version='1.0')

    def noop(self, ctxt) -> None:
        return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--url', required=True)
    parser.add_argument('--topic', required=True)
    args = parser.parse_args()
    conf = cfg.CONF
    conf([], project='image-agent-bench', default_config_files=[])
    transport = messaging.get_rpc_transport(conf, url=args.url)
    server = messaging.get_rpc_server(
        transport,
        messaging.Target(topic=args.topic, server='noop'),
        [NoopEndpoint()],
        access_policy=messaging.DefaultRPCAccessPolicy,
    )
    server.start()
    print('listening', flush=True)
    stop = threading.Event()
    try:
        # Ends when the benchmark closes our stdin.
        sys.stdin.read()
    finally:
        stop.set()
        server.stop()
        server.wait()
        transport.cleanup()
    return 0


if __name__ == '__main__':
    sys.exit(main())
