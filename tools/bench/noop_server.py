"""A raw oslo.messaging RPC server: the floors of the agent's calls.

    python -m tools.bench.noop_server --url rabbit://... --topic T \
        [--glance-url http://...]

The agent's ``ping`` is compared with a call of ``noop`` here: same broker,
same threading executor, a process of its own, nothing else. Its ``show``
is the plainest server of an image's metadata: python-glanceclient's
``images.get`` with the caller's token (one client per token, kept) and
nothing else (no token validation, no checks): what the agent's ``show``
would cost with no work of its own. ``load_start``/``load_wait`` run
downloads inside it (one thread each: read, sha512, write, the plainest
verified download in Python), so that its calls can be timed while the
process moves bytes as the agent's does.
"""

import argparse
import sys
import threading

from oslo_service import backend

backend.init_backend(backend.BackendType.THREADING)

import glanceclient  # noqa: E402
from keystoneauth1 import session as ks_session  # noqa: E402
from keystoneauth1 import token_endpoint  # noqa: E402
from oslo_config import cfg  # noqa: E402
import oslo_messaging as messaging  # noqa: E402

from tools.bench import loader  # noqa: E402


class NoopEndpoint:
    target = messaging.Target(version='1.0')

    def __init__(self, glance_url: str | None = None) -> None:
        self._glance_url = glance_url
        self._session = ks_session.Session()
        self._clients: dict[str, glanceclient.Client] = {}
        self._load = loader.Load()

    def noop(self, ctxt) -> None:
        return None

    def load_start(self, ctxt, url: str, paths: list[str]) -> None:
        self._load.start(url, ctxt['auth_token'], paths)

    def load_wait(self, ctxt) -> float:
        """Seconds from ``load_start`` until its downloads ended."""
        return self._load.wait()

    def show(self, ctxt, image_id: str) -> dict:
        return dict(self._client(ctxt['auth_token']).images.get(image_id))

    def _client(self, token: str) -> glanceclient.Client:
        # One client per token, as the benchmark's direct show has one:
        # the schema is fetched and its model built once, not per call.
        client = self._clients.get(token)
        if client is None:
            client = self._clients[token] = glanceclient.Client(
                '2',
                session=self._session,
                auth=token_endpoint.Token(None, token),
                endpoint_override=self._glance_url,
            )
        return client


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--url', required=True)
    parser.add_argument('--topic', required=True)
    parser.add_argument('--glance-url')
    args = parser.parse_args()
    conf = cfg.CONF
    conf([], project='image-agent-bench', default_config_files=[])
    transport = messaging.get_rpc_transport(conf, url=args.url)
    server = messaging.get_rpc_server(
        transport,
        messaging.Target(topic=args.topic, server='noop'),
        [NoopEndpoint(args.glance_url)],
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
