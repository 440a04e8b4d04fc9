"""Fixtures of the unit tests: configuration, contexts and a fake Glance.

Unit tests stub only the glanceclient boundary. The ``glance`` fixture puts
a :class:`FakeGlance` in place of ``glanceclient.Client``: its controllers
keep images in memory, record every call (with the server, headers and
credentials of the client that made it) and raise or return what a test
scripts with :meth:`FakeGlance.script`.
"""

import collections
from collections.abc import Callable
import dataclasses
import functools
import hashlib
import http.client
import types
from typing import Any
import uuid

from glanceclient import exc as glance_exc
from glanceclient.common import utils as glance_utils
from keystoneauth1 import exceptions as ksa_exc
from keystoneauth1 import loading as ks_loading
from oslo_config import fixture as config_fixture
import pytest
import requests
import urllib3

from image_agent import conf
from image_agent import context as context_mod
from image_agent import exception
from image_agent import identity
from image_agent.conf import client as client_conf
from image_agent.image import auth
from image_agent.image import client as client_mod
from image_agent.image import retry
from tests.unit import glance_http as http_stub

USER_ID = 'a1b2c3d4e5f60718293a4b5c6d7e8f90'
PROJECT_ID = 'f0e1d2c3b4a5968778695a4b3c2d1e0f'
OTHER_PROJECT_ID = '0123456789abcdef0123456789abcdef'
USER_TOKEN = 'gAAAAAB-user-token'
ADMIN_TOKEN = 'gAAAAAB-admin-token'
ADMIN_USER_ID = '9f8e7d6c5b4a39281706f5e4d3c2b1a0'
GLOBAL_REQUEST_ID = 'req-8b7e3a2c-5b1c-4e56-9d6e-1f2a3b4c5d6e'
DEFAULT_SERVER = 'http://glance.test:9292'

# A trimmed copy of Glance's image schema: base properties carry no
# ``is_base`` key, the custom ones of schema-image.json carry is_base false.
IMAGE_SCHEMA = {
    'name': 'image',
    'properties': {
        **{
            name: {}
            for name in (
                'id',
                'name',
                'status',
                'visibility',
                'protected',
                'os_hidden',
                'checksum',
                'os_hash_algo',
                'os_hash_value',
                'owner',
                'size',
                'virtual_size',
                'min_ram',
                'min_disk',
                'container_format',
                'disk_format',
                'created_at',
                'updated_at',
                'tags',
                'direct_url',
                'locations',
                'self',
                'file',
                'schema',
                'stores',
            )
        },
        **{
            name: {'is_base': False, 'type': 'string'}
            for name in (
                'kernel_id',
                'ramdisk_id',
                'instance_uuid',
                'architecture',
                'os_distro',
            )
        },
    },
}

MEMBER_SCHEMA = {
    'name': 'member',
    'properties': {
        name: {}
        for name in (
            'image_id',
            'member_id',
            'status',
            'created_at',
            'updated_at',
            'schema',
        )
    },
}


@dataclasses.dataclass
class Call:
    """One glanceclient method call, as the fake saw it."""

    server: str
    name: str
    args: tuple
    kwargs: dict
    headers: dict
    auth: Any
    global_request_id: str | None


def _response() -> types.SimpleNamespace:
    return types.SimpleNamespace(
        headers={'x-openstack-request-id': 'req-fake'}, status_code=200
    )


class _Schema:
    def __init__(self, raw: dict) -> None:
        self._raw = raw

    def raw(self) -> dict:
        return self._raw


# The schema glanceclient looks up (through the controller's schema_client)
# to build the models a method returns; ``create`` looks it up before it
# sends anything, the others once the answer is in.
MODEL_SCHEMAS = {
    'images.get': 'image',
    'images.list': 'image',
    'images.create': 'image',
    'images.update': 'image',
    'images.add_location': 'image',
    'image_members.get': 'member',
    'image_members.list': 'member',
    'image_members.create': 'member',
    'image_members.update': 'member',
}


class _Controller:
    def __init__(
        self,
        glance: 'FakeGlance',
        client: dict,
        name: str,
        schema_client: Any = None,
    ) -> None:
        self._glance = glance
        self._client = client
        self._name = name
        self.schema_client = schema_client

    def __getattr__(self, method: str) -> Callable:
        name = f'{self._name}.{method}'
        schema = MODEL_SCHEMAS.get(name)

        def call(*args: Any, **kwargs: Any) -> Any:
            if schema and method == 'create':
                self.schema_client.get(schema)
            result = self._glance.dispatch(self._client, name, *args, **kwargs)
            if schema and method != 'create':
                self.schema_client.get(schema)
            return result

        return call


class _Client:
    def __init__(self, glance: 'FakeGlance', kwargs: dict) -> None:
        self.kwargs = kwargs
        self.schemas = _Controller(glance, kwargs, 'schemas')
        self.images = _Controller(glance, kwargs, 'images', self.schemas)
        self.image_members = _Controller(
            glance, kwargs, 'image_members', self.schemas
        )


class FakeGlance:
    """glanceclient.Client's stand-in: an in-memory Glance v2.

    ``script('images.create', error, ...)`` queues outcomes for the next
    calls of one method: an exception instance is raised, a callable is
    called with the call's arguments, anything else is returned. Once the
    queue is empty the in-memory behaviour answers.
    """

    chunk_size = 4

    def __init__(self) -> None:
        self.images: dict[str, dict] = {}
        self.data: dict[str, bytes] = {}
        self.members: dict[str, list[dict]] = collections.defaultdict(list)
        self.stores: list[dict] = []
        self.schema = IMAGE_SCHEMA
        self.clients: list[dict] = []
        self.calls: list[Call] = []
        self._scripts: dict[str, collections.deque] = collections.defaultdict(
            collections.deque
        )

    # -- the test's side ---------------------------------------------------

    def add_image(self, data: bytes | None = None, **fields: Any) -> dict:
        """Put an image in Glance, as Glance would show it."""
        image_id = fields.pop('id', None) or str(uuid.uuid4())
        image = {
            'id': image_id,
            'name': 'cirros',
            'status': 'queued',
            'visibility': 'private',
            'protected': False,
            'os_hidden': False,
            'owner': PROJECT_ID,
            'min_ram': 0,
            'min_disk': 0,
            'container_format': 'bare',
            'disk_format': 'raw',
            'tags': [],
            'created_at': '2024-05-01T10:00:00Z',
            'updated_at': '2024-05-01T10:00:00Z',
            'self': f'/v2/images/{image_id}',
            'file': f'/v2/images/{image_id}/file',
            'schema': '/v2/schemas/image',
        }
        if data is not None:
            image.update(_data_fields(data))
            self.data[image_id] = data
        image.update(fields)
        self.images[image_id] = image
        return dict(image)

    def script(self, name: str, *outcomes: Any) -> None:
        self._scripts[name].extend(outcomes)

    def calls_to(self, name: str) -> list[Call]:
        return [call for call in self.calls if call.name == name]

    def servers_of(self, name: str) -> list[str]:
        return [call.server for call in self.calls_to(name)]

    @property
    def names(self) -> list[str]:
        return [call.name for call in self.calls]

    # -- glanceclient's side -----------------------------------------------

    def __call__(self, version: str, **kwargs: Any) -> _Client:
        assert version == '2'
        self.clients.append(kwargs)
        return _Client(self, kwargs)

    def dispatch(self, client: dict, name: str, /, *args: Any, **kwargs: Any):
        self.calls.append(
            Call(
                server=client['endpoint_override'],
                name=name,
                args=args,
                kwargs=kwargs,
                headers=dict(client.get('additional_headers') or {}),
                auth=client.get('auth'),
                global_request_id=client.get('global_request_id'),
            )
        )
        queue = self._scripts.get(name)
        if queue:
            outcome = queue.popleft()
            if isinstance(outcome, BaseException):
                raise outcome
            if callable(outcome):
                return outcome(*args, **kwargs)
            return outcome
        handler = getattr(self, '_' + name.replace('.', '_'), None)
        if handler is None:
            raise AssertionError(f'the fake Glance has no {name}')
        return handler(*args, **kwargs)

    def _image(self, image_id: str) -> dict:
        try:
            return self.images[image_id]
        except KeyError:
            raise glance_exc.HTTPNotFound(
                f'No image found with ID {image_id}'
            ) from None

    def _schemas_get(self, name: str) -> _Schema:
        if name == 'image':
            return _Schema(self.schema)
        if name == 'member':
            return _Schema(MEMBER_SCHEMA)
        raise glance_exc.HTTPNotFound(f'no schema {name}')

    def _images_get(self, image_id: str) -> dict:
        return dict(self._image(image_id))

    def _images_list(self, filters: dict | None = None, **kwargs: Any):
        for image in list(self.images.values()):
            if all(image.get(k) == v for k, v in (filters or {}).items()):
                yield dict(image)

    def _images_create(self, **kwargs: Any) -> dict:
        return self.add_image(**kwargs)

    def _images_upload(self, image_id: str, image_data: Any, **kwargs: Any):
        image = self._image(image_id)
        if hasattr(image_data, 'read'):
            data = image_data.read()
        else:
            data = b''.join(image_data)
        self.data[image_id] = data
        image.update(_data_fields(data))
        return glance_utils.RequestIdProxy(((None, None), _response()))

    def _images_update(self, image_id: str, remove_props=None, **kwargs):
        image = self._image(image_id)
        image.update(kwargs)
        for name in set(remove_props or ()) - set(kwargs):
            image.pop(name, None)
        return dict(image)

    def _images_delete(self, image_id: str) -> None:
        self._image(image_id)
        del self.images[image_id]
        self.data.pop(image_id, None)

    def _images_data(self, image_id: str, do_checksum: bool = True):
        self._image(image_id)
        data = self.data.get(image_id)
        if data is None:
            return glance_utils.RequestIdProxy((None, _response()))
        chunks = (
            data[i : i + self.chunk_size]
            for i in range(0, len(data), self.chunk_size)
        )
        body = glance_utils.IterableWithLength(chunks, len(data))
        return glance_utils.RequestIdProxy((body, _response()))

    def _images_get_image_locations(self, image_id: str) -> list[dict]:
        return [
            dict(loc) for loc in self._image(image_id).get('locations', [])
        ]

    def _images_add_image_location(self, image_id, url, validation_data=None):
        image = self._image(image_id)
        image.setdefault('locations', []).append({'url': url, 'metadata': {}})
        image.update(validation_data or {})
        return glance_utils.RequestIdProxy(((None, None), _response()))

    def _images_add_location(
        self, image_id, url, metadata, validation_data=None
    ):
        image = self._image(image_id)
        location = {'url': url, 'metadata': metadata}
        image.setdefault('locations', []).append(location)
        image.update(validation_data or {})
        return dict(image)

    def _images_get_stores_info(self):
        return glance_utils.RequestIdProxy(
            ({'stores': [dict(s) for s in self.stores]}, _response())
        )

    def _image_members_list(self, image_id: str):
        self._image(image_id)
        for member in self.members[image_id]:
            yield dict(member)

    def _image_members_get(self, image_id: str, member_id: str) -> dict:
        for member in self.members[image_id]:
            if member['member_id'] == member_id:
                return dict(member)
        raise glance_exc.HTTPNotFound(f'{member_id} is not a member')


def _data_fields(data: bytes) -> dict:
    return {
        'status': 'active',
        'size': len(data),
        'checksum': hashlib.md5(data, usedforsecurity=False).hexdigest(),
        'os_hash_algo': 'sha512',
        'os_hash_value': hashlib.sha512(data).hexdigest(),
    }


# -- connection failures as glanceclient raises them --------------------------


def chained(*errors: BaseException) -> BaseException:
    """The last error, raised while handling each of the ones before it."""
    for inner, outer in zip(errors, errors[1:], strict=False):
        outer.__context__ = inner
    return errors[-1]


def connection_refused() -> glance_exc.CommunicationError:
    """What glanceclient raises when nothing listens on the port."""
    refused = ConnectionRefusedError(111, 'Connection refused')
    new_conn = urllib3.exceptions.NewConnectionError(
        None, 'Failed to establish a new connection: [Errno 111]'
    )
    new_conn.__cause__ = refused
    max_retry = urllib3.exceptions.MaxRetryError(None, '/v2/images', new_conn)
    return chained(
        refused,
        new_conn,
        requests.exceptions.ConnectionError(max_retry),
        ksa_exc.ConnectFailure('Unable to establish connection'),
        glance_exc.CommunicationError('Error finding address for glance'),
    )


def connect_timeout() -> glance_exc.InvalidEndpoint:
    """What glanceclient raises when the TCP handshake times out."""
    timeout = urllib3.exceptions.ConnectTimeoutError(None, 'timed out')
    return chained(
        timeout,
        requests.exceptions.ConnectTimeout(timeout),
        ksa_exc.ConnectTimeout('Request to http://glance timed out'),
        glance_exc.InvalidEndpoint('Error communicating with glance'),
    )


def read_timeout() -> glance_exc.InvalidEndpoint:
    """What glanceclient raises when the answer does not come in time.

    keystoneauth turns every requests Timeout, read timeouts included, into
    its ConnectTimeout: only the cause tells them apart.
    """
    timeout = urllib3.exceptions.ReadTimeoutError(None, '/v2/images', 'read')
    return chained(
        timeout,
        requests.exceptions.ReadTimeout(timeout),
        ksa_exc.ConnectTimeout('Request to http://glance timed out'),
        glance_exc.InvalidEndpoint('Error communicating with glance'),
    )


def connection_reset() -> glance_exc.CommunicationError:
    """What glanceclient raises when the server drops the connection."""
    reset = ConnectionResetError(104, 'Connection reset by peer')
    protocol = urllib3.exceptions.ProtocolError('Connection aborted.', reset)
    return chained(
        reset,
        protocol,
        requests.exceptions.ConnectionError(protocol),
        ksa_exc.ConnectFailure('Connection aborted'),
        glance_exc.CommunicationError('Error finding address for glance'),
    )


def remote_disconnected() -> glance_exc.CommunicationError:
    """The server closed the connection without sending a response."""
    gone = http.client.RemoteDisconnected(
        'Remote end closed connection without response'
    )
    protocol = urllib3.exceptions.ProtocolError('Connection aborted.', gone)
    return chained(
        gone,
        protocol,
        requests.exceptions.ConnectionError(protocol),
        ksa_exc.ConnectFailure('Connection aborted'),
        glance_exc.CommunicationError('Error finding address for glance'),
    )


class BackoffLog:
    """What the retry back-off asked for: jitter ranges and sleeps."""

    def __init__(self) -> None:
        self.ranges: list[tuple[float, float]] = []
        self.sleeps: list[float] = []

    def rand(self, low: float, high: float) -> float:
        self.ranges.append((low, high))
        return high

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)


# -- fixtures -----------------------------------------------------------------


@pytest.fixture(autouse=True)
def config():
    """oslo.config's fixture on the global CONF, where the agent's options
    and the client's (registered by ImageAgentAPI) are; the auth caches
    reset."""
    client_conf.register_opts(conf.CONF)
    fixture = config_fixture.Config(conf.CONF)
    fixture.setUp()
    auth.reset()
    yield fixture
    fixture.cleanUp()
    auth.reset()


@pytest.fixture
def root(tmp_path):
    """A download root: a directory of its own inside ``tmp_path``, so that
    ``tmp_path`` itself is outside every root."""
    root = tmp_path / 'root'
    root.mkdir()
    return root


@pytest.fixture
def ctx() -> context_mod.RequestContext:
    """A user's context with a token, as keystonemiddleware makes it."""
    return context_mod.RequestContext(
        user_id=USER_ID,
        project_id=PROJECT_ID,
        auth_token=USER_TOKEN,
        roles=['member', 'reader'],
        user_name='alice',
        project_name='demo',
        global_request_id=GLOBAL_REQUEST_ID,
    )


@pytest.fixture
def anon_ctx() -> context_mod.RequestContext:
    """A non-admin context without a token (the noauth strategy)."""
    return context_mod.RequestContext(
        user_id=USER_ID,
        project_id=PROJECT_ID,
        roles=['member', 'reader'],
        global_request_id=GLOBAL_REQUEST_ID,
    )


@pytest.fixture
def admin_ctx() -> context_mod.RequestContext:
    """An admin context without a token."""
    return context_mod.RequestContext(
        user_id=USER_ID,
        project_id=PROJECT_ID,
        roles=['admin', 'member', 'reader'],
        is_admin=True,
    )


class FakeKeystone:
    """Keystone's answers about tokens, for ``identity.TokenValidator``.

    Knows ``USER_TOKEN`` (a member of ``PROJECT_ID``) and ``ADMIN_TOKEN``
    (admin of the same project); any other token is unknown. ``asked``
    counts the questions that reached it.
    """

    def __init__(self) -> None:
        self.identities = {
            USER_TOKEN: _identity(USER_ID, ('member', 'reader')),
            ADMIN_TOKEN: _identity(
                ADMIN_USER_ID, ('admin', 'member', 'reader')
            ),
        }
        self.asked = 0

    def ask(self, token: str) -> identity.Identity:
        self.asked += 1
        try:
            return self.identities[token]
        except KeyError:
            raise exception.NotAuthorized('Keystone: unknown token') from None

    def validator(self, **kwargs: Any) -> identity.TokenValidator:
        return identity.TokenValidator(ask=self.ask, **kwargs)


def _identity(user_id: str, roles: tuple[str, ...]) -> identity.Identity:
    return identity.Identity(
        user_id=user_id,
        user_name=None,
        user_domain_id='default',
        project_id=PROJECT_ID,
        project_name='demo',
        project_domain_id='default',
        domain_id=None,
        system_scope=None,
        roles=roles,
        expires_at=None,
    )


@pytest.fixture
def keystone() -> FakeKeystone:
    return FakeKeystone()


@pytest.fixture
def admin_token_ctx() -> context_mod.RequestContext:
    """An admin's context with a token Keystone knows."""
    return context_mod.RequestContext(
        user_id=ADMIN_USER_ID,
        project_id=PROJECT_ID,
        auth_token=ADMIN_TOKEN,
        roles=['admin', 'member', 'reader'],
        global_request_id=GLOBAL_REQUEST_ID,
    )


@pytest.fixture
def glance(config, monkeypatch) -> FakeGlance:
    """The fake Glance as glanceclient.Client, one server, no waits."""
    fake = FakeGlance()
    monkeypatch.setattr(client_mod.glanceclient, 'Client', fake)
    config.config(group='glance', api_servers=[DEFAULT_SERVER])
    config.config(group='glance', retry_backoff_base=0)
    return fake


@pytest.fixture
def glance_http(glance, config) -> http_stub.Scripts:
    """Image data over real HTTP: two stand-in servers serving the fake
    Glance's data (``glance_http.GlanceDataServer``) are the api_servers.

    Returns what they share: the answers to script, the requests seen.
    """
    scripts = http_stub.Scripts()
    servers = [http_stub.GlanceDataServer(glance, scripts) for _ in (1, 2)]
    config.config(group='glance', api_servers=[s.url for s in servers])
    scripts.urls = [s.url for s in servers]
    yield scripts
    for server in servers:
        server.close()


def set_password_credentials(config, group: str, **extra: Any) -> None:
    """keystoneauth password credentials of the image-agent user in
    ``group``, then the auth caches reset."""
    config.register_opts(
        ks_loading.get_auth_plugin_conf_options('password'), group=group
    )
    config.config(
        group=group,
        auth_type='password',
        auth_url='http://keystone.test/identity/v3',
        username='image-agent',
        password='service-secret',
        project_name='service',
        user_domain_name='Default',
        project_domain_name='Default',
        **extra,
    )
    auth.reset()


@pytest.fixture
def service_credentials(config):
    """``[glance]`` service credentials (a keystoneauth password plugin)."""
    set_password_credentials(config, 'glance')
    return auth.get_service_auth()


@pytest.fixture
def backoff_log(monkeypatch) -> BackoffLog:
    """Record the back-off of retries instead of sleeping.

    The real Backoff class is used, given the recording sleep and a jitter
    that always picks the top of its range, so delays are predictable.
    """
    log = BackoffLog()
    monkeypatch.setattr(
        retry,
        'Backoff',
        functools.partial(retry.Backoff, sleep=log.sleep, rand=log.rand),
    )
    return log
