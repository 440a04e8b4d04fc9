"""The agent as a trust boundary: nothing in a request is believed.

Each test plays a caller on the bus who lies about something (the service
catalog, the token, its roles) and checks what the real deployment did.

* A request's catalog names an "evil" image endpoint (a recording relay on
  loopback that forwards to Glance, so that every call would succeed
  through it): the agent sends no request there, in particular not its
  service token, and serves the calls from its own Keystone catalog.
"""

from __future__ import annotations

import contextlib
import http.client
import http.server
import io
import os
import threading
import urllib.parse
import uuid

import pytest

from image_agent import exception
from tests.faults import helpers

pytestmark = pytest.mark.slow


class RecordingRelay:
    """An HTTP server on loopback that records each request, then relays
    it to ``target`` (a real Glance) and sends the answer back."""

    def __init__(self, target: str) -> None:
        self.target = urllib.parse.urlsplit(target).netloc
        self.requests: list[tuple[str, str, dict]] = []
        relay = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = 'HTTP/1.1'

            def log_message(self, *args) -> None:
                pass

            def _relay(self) -> None:
                length = int(self.headers.get('Content-Length') or 0)
                body = self.rfile.read(length) if length else None
                headers = dict(self.headers.items())
                relay.requests.append((self.command, self.path, headers))
                conn = http.client.HTTPConnection(relay.target, timeout=30)
                try:
                    conn.request(self.command, self.path, body, headers)
                    answer = conn.getresponse()
                    data = answer.read()
                finally:
                    conn.close()
                self.send_response(answer.status)
                for name, value in answer.getheaders():
                    if name.lower() not in ('transfer-encoding', 'connection'):
                        self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _relay  # noqa: N815
            do_HEAD = _relay  # noqa: N815

        self._server = http.server.ThreadingHTTPServer(
            ('127.0.0.1', 0), Handler
        )
        self._server.daemon_threads = True
        self.url = 'http://127.0.0.1:%d' % self._server.server_address[1]
        threading.Thread(
            target=self._server.serve_forever, daemon=True
        ).start()

    def tokens(self) -> set[str]:
        return {
            value
            for _, _, headers in self.requests
            for name, value in headers.items()
            if name.lower() in ('x-auth-token', 'x-service-token')
        }

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def hostile_catalog(url: str) -> list[dict]:
    """An image service whose every endpoint is ``url``, v2 shaped."""
    endpoint = {'publicURL': url, 'internalURL': url, 'adminURL': url}
    return [
        {
            'type': 'image',
            'name': 'glance',
            'endpoints': [
                dict(endpoint, region='RegionOne'),
                dict(endpoint, region='RegionTwo'),
            ],
        }
    ]


def with_catalog(ctxt, catalog: list[dict]) -> dict:
    values = ctxt.to_dict()
    values['service_catalog'] = catalog
    return values


@pytest.mark.scenario('20. Hostile service catalog')
@pytest.mark.test_timeout(180)
def test_a_hostile_catalog_gets_no_request_and_no_credentials(
    row,
    deployment,  # noqa: F811
    agent_factory,  # noqa: F811
    api,  # noqa: F811
    images,  # noqa: F811
    demo_context,  # noqa: F811
    admin_context,  # noqa: F811
):
    evil = RecordingRelay(deployment.glance_urls[0])
    # No api_servers: servers come from Keystone (or, before the fix, from
    # the request).
    agent = agent_factory(
        'catalog-%s' % uuid.uuid4().hex[:4],
        options={'glance': {'api_servers': ''}},
    )
    try:
        data = os.urandom(256 * 1024)
        image = images(demo_context, data=io.BytesIO(data))
        demo = with_catalog(demo_context, hostile_catalog(evil.url))
        admin = with_catalog(admin_context, hostile_catalog(evil.url))
        path = os.path.join(agent.root, 'from-catalog')
        calls = {
            'show': lambda: api.show(demo, image['id'], host=agent.host),
            'detail': lambda: api.detail(demo, host=agent.host),
            'download': lambda: api.download(
                demo, image['id'], path, host=agent.host
            ),
            'get_stores': lambda: api.get_stores(demo, host=agent.host),
            'get_location (demo)': lambda: api.get_location(
                demo, image['id'], host=agent.host
            ),
            'get_location (admin)': lambda: api.get_location(
                admin, image['id'], host=agent.host
            ),
        }
        failed = {}
        for name, call in calls.items():
            row.add(calls=1, faults=1)
            try:
                call()
            except exception.ImageAgentException as e:
                failed[name] = helpers.describe(e)
                row.add(failures=1)
        callers = {demo_context.auth_token, admin_context.auth_token}
        foreign = evil.tokens() - callers
        row.note(
            'catalog naming a relay on loopback, %d calls: %d requests '
            'reached it, %d of them with a token no caller sent (the '
            'agent\'s own)' % (len(calls), len(evil.requests), len(foreign))
        )
        if foreign:
            row.add(known_bugs=1)
        assert evil.requests == []
        assert failed == {}
        assert helpers.file_sha512(path) == helpers.sha512(data)
    finally:
        evil.close()
        agent.stop()
        with contextlib.suppress(OSError):
            os.unlink(os.path.join(agent.root, 'from-catalog'))
