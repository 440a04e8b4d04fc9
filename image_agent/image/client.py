"""GlanceClientWrapper: one glanceclient call, retried across servers."""

import collections
from collections.abc import Callable
from collections.abc import Collection
from collections.abc import Iterator
import threading
from typing import Any

import glanceclient
from glanceclient import exc as glance_exc
from oslo_log import log as logging

from image_agent import conf
from image_agent import exception
from image_agent.image import auth
from image_agent.image import retry
from image_agent.image import servers as servers_mod

LOG = logging.getLogger(__name__)
CONF = conf.CONF

# Methods returning lazy generators: consumed inside the retry loop so that
# an error on a later page is retried and translated like any other.
_LISTINGS = frozenset({('images', 'list'), ('image_members', 'list')})


# The schema each controller's models are built from.
_CONTROLLER_SCHEMAS = {'images': 'image', 'image_members': 'member'}
# Where glanceclient's memoized_property keeps a controller's models.
_MODEL_ATTRS = ('_lazy_once_model', '_lazy_once_unvalidated_model')


class _SchemaCache:
    """Glance's schemas, fetched once per set of servers.

    python-glanceclient fetches a schema before every request that builds a
    model (every show, create, update): one more round trip each time and,
    for a create, a GET inside the call that must not be retried blindly.
    """

    def __init__(self) -> None:
        self._schemas: dict = {}
        self._models: dict[tuple[str, str], Any] = {}
        self._lock = threading.Lock()

    def has(self, name: str) -> bool:
        return name in self._schemas

    def install(self, client: glanceclient.Client) -> None:
        """Make every schema lookup of ``client`` go through the cache,
        and give its controllers the models earlier clients built."""
        cached = _CachedSchemas(self, client.schemas)
        client.schemas = cached
        for controller in _CONTROLLER_SCHEMAS:
            target = getattr(client, controller)
            target.schema_client = cached
            for attr in _MODEL_ATTRS:
                model = self._models.get((controller, attr))
                if model is not None:
                    setattr(target, attr, model)

    def keep_models(self, client: glanceclient.Client) -> None:
        """Remember the models ``client`` built from the schemas.

        glanceclient builds a controller's model class (a deep copy of the
        schema made into a warlock class) once per controller; a client per
        call would build it on every call, about a third of the CPU of a
        show.
        """
        for controller in _CONTROLLER_SCHEMAS:
            target = getattr(client, controller)
            for attr in _MODEL_ATTRS:
                model = getattr(target, attr, None)
                if (
                    model is not None
                    and (controller, attr) not in self._models
                ):
                    with self._lock:
                        self._models.setdefault((controller, attr), model)

    def get(self, name: str, fetch: Callable[[str], Any]) -> Any:
        schema = self._schemas.get(name)
        if schema is None:
            schema = fetch(name)
            with self._lock:
                self._schemas.setdefault(name, schema)
        return schema


class _CachedSchemas:
    """Stands in for a client's schema controller, served from the cache."""

    def __init__(self, cache: _SchemaCache, controller: Any) -> None:
        self._cache = cache
        self._controller = controller

    def get(self, name: str) -> Any:
        return self._cache.get(name, self._controller.get)


# Server sets a wrapper keeps a rotation (and schemas) for: callers with
# other catalogs cannot make it grow without bound.
MAX_ROTATIONS = 16


class _Rotation:
    """One set of servers: its shuffled cycle and the schemas they gave.

    Kept per set, so that the schemas one set of servers answered are never
    used for calls to another.
    """

    def __init__(self, urls: tuple[str, ...]) -> None:
        self.urls = urls
        self.cycle = servers_mod.cycle_shuffled(list(urls))
        self.schemas = _SchemaCache()


class _DataRewinder:
    """Puts file-like arguments back where they were before a new attempt."""

    def __init__(self, args: tuple, kwargs: dict) -> None:
        self._positions = []
        self.rewindable = True
        for value in (*args, *kwargs.values()):
            if hasattr(value, 'read'):
                try:
                    self._positions.append((value, value.tell()))
                except (AttributeError, OSError, ValueError):
                    self.rewindable = False
            elif isinstance(value, Iterator):
                # Chunks already sent cannot be sent again.
                self.rewindable = False

    def rewind(self) -> None:
        for stream, position in self._positions:
            stream.seek(position)


class GlanceClientWrapper:
    """Glance client wrapper class that implements retries.

    Built with a ``netloc`` it talks to that one server; otherwise each
    attempt takes the next server of a shuffled cycle, and the rotation goes
    on across calls made through the same wrapper.
    """

    def __init__(
        self, context=None, netloc: str | None = None, use_ssl: bool = False
    ) -> None:
        scheme = 'https' if use_ssl else 'http'
        self._fixed_server = f'{scheme}://{netloc}' if netloc else None
        self._rotations: collections.OrderedDict[
            tuple[str, ...], _Rotation
        ] = collections.OrderedDict()
        self._lock = threading.Lock()

    def _rotation(self, context) -> _Rotation:
        """The rotation of the servers ``context`` may use."""
        if self._fixed_server:
            urls: tuple[str, ...] = (self._fixed_server,)
        else:
            # Keystone does not keep the catalog's order: the same servers
            # in another order are the same rotation.
            urls = tuple(sorted(set(servers_mod.find_servers(context))))
        with self._lock:
            rotation = self._rotations.get(urls)
            if rotation is None:
                rotation = self._rotations[urls] = _Rotation(urls)
                while len(self._rotations) > MAX_ROTATIONS:
                    self._rotations.popitem(last=False)
            else:
                self._rotations.move_to_end(urls)
            return rotation

    def servers_key(self, context) -> tuple[str, ...]:
        """The servers ``context`` uses: what per-server caches key on."""
        return self._rotation(context).urls

    def server_picker(self, context) -> tuple[int, Callable[..., str]]:
        """How many servers there are, and a function giving the next one.

        Used by every call, and by downloads that resume on the next server.
        ``next_server(avoid)`` skips the servers in ``avoid`` (those a call
        already tried) while others remain: concurrent calls advance the
        same rotation, so a call's retry must not land on the server that
        just failed it because another call took the server in between.
        """
        return self._picker(self._rotation(context))

    def _picker(self, rotation: _Rotation) -> tuple[int, Callable[..., str]]:
        if self._fixed_server:
            return 1, lambda avoid=(): self._fixed_server
        urls, cycle = rotation.urls, rotation.cycle

        def next_server(avoid: Collection[str] = ()) -> str:
            with self._lock:
                for _ in urls:
                    server = next(cycle)
                    if server not in avoid:
                        return server
                return next(cycle)

        return len(urls), next_server

    def _make_client(
        self,
        context,
        server: str,
        privileged: bool,
        headers: dict[str, str],
        schemas: _SchemaCache,
    ) -> glanceclient.Client:
        headers = dict(headers)
        if CONF.auth_strategy == 'noauth':
            headers.update(auth.noauth_identity_headers(context))
        global_request_id = getattr(context, 'global_request_id', None)
        client = glanceclient.Client(
            '2',
            session=auth.get_session(),
            auth=auth.auth_for(context, privileged),
            endpoint_override=server,
            global_request_id=global_request_id,
            additional_headers=headers,
        )
        schemas.install(client)
        return client

    def _ensure_schema(
        self, context, controller: str, schemas: _SchemaCache
    ) -> None:
        """Fetch a model's schema in a call of its own (idempotent, so
        retried freely) before a call that must not be repeated."""
        name = _CONTROLLER_SCHEMAS.get(controller)
        if name and not schemas.has(name):
            self.call(context, 'get', name, controller='schemas')

    def call(self, context, method: str, *args: Any, **kwargs: Any) -> Any:
        """Call a glance client method.

        A 503 or a connection failure is retried, on the next server, up to
        ``[glance] num_retries`` times; requests that create something are
        retried only when they surely never reached a server.
        """
        return self.invoke(
            context,
            method,
            args,
            kwargs,
            controller=kwargs.pop('controller', 'images'),
            store_id=kwargs.pop('store_id', None),
            base_image_ref=kwargs.pop('base_image_ref', None),
            privileged_user=bool(kwargs.pop('privileged_user', False)),
        )

    def invoke(
        self,
        context,
        method: str,
        args: tuple = (),
        kwargs: dict | None = None,
        *,
        controller: str = 'images',
        store_id: str | None = None,
        base_image_ref: str | None = None,
        privileged_user: bool = False,
    ) -> Any:
        """``call`` with the method's own arguments kept apart.

        Image metadata from a caller goes to glanceclient as keyword
        arguments; passed through ``call`` its keys could name the
        wrapper's own options (``privileged_user``, ``controller``...).
        Here they cannot.
        """
        kwargs = dict(kwargs or {})
        headers = {}
        if store_id:
            headers['x-image-meta-store'] = store_id
        if base_image_ref:
            headers['x-openstack-base-image-ref'] = base_image_ref
        privileged = bool(privileged_user)

        idempotent = (controller, method) not in retry.NON_IDEMPOTENT
        rotation = self._rotation(context)
        if not idempotent:
            self._ensure_schema(context, controller, rotation.schemas)
        attempts = CONF.glance.num_retries + 1
        backoff = retry.Backoff(
            CONF.glance.retry_backoff_base, CONF.glance.retry_backoff_max
        )
        rewinder = _DataRewinder(args, kwargs)
        _, next_server = self._picker(rotation)
        tried: list[str] = []
        last_error: BaseException | None = None
        for attempt in range(attempts):
            server = next_server(tried)
            if attempt:
                backoff.wait(tried.count(server))
                rewinder.rewind()
            tried.append(server)
            client = self._make_client(
                context, server, privileged, headers, rotation.schemas
            )
            try:
                result = getattr(getattr(client, controller), method)(
                    *args, **kwargs
                )
                if (controller, method) in _LISTINGS:
                    result = list(result)
                rotation.schemas.keep_models(client)
                return result
            except glance_exc.HTTPOverLimit as e:
                raise exception.ImageLimitExceeded(reason=e.details) from e
            except retry.TRANSIENT_ERRORS as e:
                last_error = e
                LOG.warning(
                    'Glance %(controller)s.%(method)s failed on %(server)s '
                    '(attempt %(attempt)d of %(attempts)d): %(error)s',
                    {
                        'controller': controller,
                        'method': method,
                        'server': server,
                        'attempt': attempt + 1,
                        'attempts': attempts,
                        'error': e,
                    },
                )
                if not (
                    rewinder.rewindable and retry.is_retriable(e, idempotent)
                ):
                    # The server may have acted: a retry could duplicate
                    # what it did.
                    break
        raise exception.GlanceConnectionFailed(
            attempts=len(tried),
            servers=', '.join(dict.fromkeys(tried)),
            reason=str(last_error),
        ) from last_error
