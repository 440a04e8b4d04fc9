"""The RPC endpoint of the agent: one method per operation of the API.

Every method takes the caller's context first and returns JSON-able data.
Errors of ``image_agent.exception`` reach the caller as the same classes;
anything else is logged here and reaches the caller as ``AgentError``, so a
caller never has to handle oslo.messaging's ``RemoteError``.

Only the public methods below are callable over RPC (the dispatcher's
default access policy refuses names starting with ``_``); the agent's own
lifecycle lives in ``service``.
"""

from collections.abc import Callable
import datetime
import functools
import inspect
import os
import time
from typing import Any

from oslo_log import log as logging
import oslo_messaging as messaging

from image_agent import conf
from image_agent import deadline
from image_agent import exception
from image_agent import identity
from image_agent import policy
from image_agent.i18n import _
from image_agent.transfers import upload_calls

LOG = logging.getLogger(__name__)
CONF = conf.CONF

# The history of the versions is in rpcapi.ImageAgentAPI.
RPC_API_VERSION = '1.4'
# Peer hosts a pre-cache request may name, at most.
MAX_PEER_HOSTS = 64


def _rpc_method(func: Callable) -> Callable:
    """Refuse expired requests, authenticate the caller, keep errors typed,
    and log outcomes.

    The method runs in the context ``identity.authenticate`` gives: the
    token's user, project and roles as Keystone says, never the request's
    claims; what the method needs beyond that is in ``policy``.
    """
    name = func.__name__
    signature = inspect.signature(func)

    # The context is positional-only: an argument the caller names
    # "context" must be refused like any other unknown argument.
    def wrapper(self, context, /, **kwargs):
        # First: its caller may have given up on it (no Keystone call).
        deadline.check(
            getattr(context, 'deadline', None),
            name,
            CONF.agent.clock_skew,
            context,
        )
        try:
            context = identity.authenticate(context, self._validator)
        except exception.ImageAgentException as e:
            LOG.info(
                'Refused %(method)s: %(error)s', {'method': name, 'error': e}
            )
            raise
        try:
            bound = signature.bind(self, context, **kwargs)
        except TypeError as e:
            raise exception.InvalidInput(
                reason=_('%(method)s: %(error)s')
                % {'method': name, 'error': e}
            ) from e
        try:
            return func(*bound.args, **bound.kwargs)
        except exception.ImageAgentException as e:
            LOG.info(
                '%(method)s failed: %(error)s', {'method': name, 'error': e}
            )
            raise
        except Exception as e:
            LOG.exception('Unexpected error in %s', name)
            raise exception.AgentError(operation=name, reason=str(e)) from e

    expected = messaging.expected_exceptions(exception.ImageAgentException)
    return functools.wraps(func)(expected(wrapper))


class ImageAgentManager:
    """Serves the image API over RPC for the callers on the bus."""

    target = messaging.Target(version=RPC_API_VERSION)

    def __init__(
        self,
        host: str,
        topic: str,
        image_service,
        transfers,
        validator: identity.TokenValidator | None = None,
        peer_url: str | None = None,
    ) -> None:
        self._validator = validator or identity.TokenValidator()
        self._host = host
        self._topic = topic
        self._images = image_service
        self._transfers = transfers
        self._peer_url = peer_url
        self._started = time.monotonic()
        self._started_at = datetime.datetime.now(datetime.UTC)
        self._uploads = upload_calls.UploadCalls(image_service, transfers)

    @_rpc_method
    def ping(self, context) -> dict[str, Any]:
        """Who answers, since when, and the transfers it is running: all
        of them for ``policy.STATUS``, else the caller's project's."""
        status = {
            'host': self._host,
            'topic': self._topic,
            'version': RPC_API_VERSION,
            'pid': os.getpid(),
            'started_at': self._started_at,
            'uptime': round(time.monotonic() - self._started, 3),
        }
        if self._peer_url:
            status['peer_url'] = self._peer_url
        if policy.allowed(context, policy.STATUS):
            status['transfers'] = self._transfers.status()
        else:
            status['transfers'] = self._transfers.status(
                project_id=context.project_id or ''
            )
        return status

    @_rpc_method
    def show(self, context, image_id: str) -> dict:
        return self._images.show(context, image_id)

    @_rpc_method
    def detail(self, context, **params) -> list[dict]:
        return self._images.detail(context, **params)

    @_rpc_method
    def download(
        self,
        context,
        image_id: str,
        path: str,
        overwrite: bool = False,
        convert_to: str | None = None,
    ) -> dict:
        return self._transfers.download(
            context, image_id, path, overwrite, convert_to
        )

    @_rpc_method
    def create(
        self,
        context,
        image_meta: dict,
        path: str | None = None,
        idempotency_key: str | None = None,
        convert_from: str | None = None,
    ) -> dict:
        return self._uploads.create(
            context, image_meta, path, idempotency_key, convert_from
        )

    @_rpc_method
    def update(
        self,
        context,
        image_id: str,
        image_meta: dict,
        path: str | None = None,
        purge_props: bool = True,
        store_id: str | None = None,
        base_image_ref: str | None = None,
        convert_from: str | None = None,
    ) -> dict:
        return self._uploads.update(
            context,
            image_id,
            image_meta,
            path,
            purge_props,
            store_id,
            base_image_ref,
            convert_from,
        )

    @_rpc_method
    def delete(self, context, image_id: str) -> bool:
        return self._images.delete(context, image_id)

    @_rpc_method
    def get_location(self, context, image_id: str) -> dict:
        direct_url, locations = self._images.get_location(context, image_id)
        return {'direct_url': direct_url, 'locations': locations}

    @_rpc_method
    def add_location(
        self, context, image_id: str, url: str, metadata: dict
    ) -> dict:
        return self._images.add_location(context, image_id, url, metadata)

    @_rpc_method
    def get_stores(self, context) -> list[dict]:
        # The RPC API's shape since 1.0: a list, the flags as booleans (the
        # library returns Glance's body, flags as the string "true").
        body = self._images.get_stores(context)
        return [
            _store_with_booleans(store) for store in body.get('stores', [])
        ]

    @_rpc_method
    def list_members(self, context, image_id: str) -> list[dict]:
        return self._images.list_members(context, image_id)

    # -- 1.1: the image cache --------------------------------------------

    @_rpc_method
    def list_cache(self, context) -> dict:
        """The cache directory, its limit, size and entries (LRU first)."""
        policy.enforce(context, policy.CACHE)
        return self._transfers.list_cache()

    @_rpc_method
    def evict(self, context, image_id: str) -> dict:
        """Remove an image from the cache (CacheEntryInUse while read)."""
        policy.enforce(context, policy.CACHE)
        if not isinstance(image_id, str):
            raise exception.InvalidInput(reason=_('image_id must be a string'))
        return self._transfers.evict(image_id)

    @_rpc_method
    def precache(
        self, context, image_ids: list[str], peers: list[str] | None = None
    ) -> dict[str, dict]:
        """Put images in the cache, one after the other.

        Returns, per image id, the outcome: ``status`` ``cached`` or
        ``existing`` (with ``size`` and ``fetched``, the bytes received
        from Glance), or ``error`` with ``error_class`` and ``error``: one
        image failing does not stop the others. ``peers`` (1.3): hosts
        whose agents may serve the bytes (with ``[peers] enabled``).
        """
        policy.enforce(context, policy.PRECACHE)
        if not isinstance(image_ids, list) or not all(
            isinstance(i, str) for i in image_ids
        ):
            raise exception.InvalidInput(
                reason=_('image_ids must be a list of image ids')
            )
        peers = _peer_hosts(peers)
        results = {}
        for image_id in image_ids:
            try:
                results[image_id] = self._transfers.precache(
                    context, image_id, peers=peers
                )
            except Exception as e:
                LOG.info(
                    'Pre-caching image %(id)s failed: %(error)s',
                    {'id': image_id, 'error': e},
                )
                results[image_id] = {
                    'image_id': image_id,
                    'status': 'error',
                    'error_class': type(e).__name__,
                    'error': str(e),
                }
        return results


def _peer_hosts(peers) -> list[str]:
    """The peer host names of a request, checked (names, never URLs: the
    agent asks each host's agent for its URL)."""
    if peers is None:
        return []
    if (
        not isinstance(peers, list)
        or len(peers) > MAX_PEER_HOSTS
        or not all(isinstance(p, str) and 0 < len(p) <= 255 for p in peers)
    ):
        raise exception.InvalidInput(
            reason=_('peers must be a list of at most %d host names')
            % MAX_PEER_HOSTS
        )
    return list(dict.fromkeys(peers))


def _store_with_booleans(store: dict) -> dict:
    """Glance's ``default``/``read-only`` flags ("true", or absent) as
    booleans."""
    store = dict(store)
    for flag in ('default', 'read-only'):
        value = store.get(flag, False)
        if isinstance(value, str):
            value = value.strip().lower() == 'true'
        store[flag] = bool(value)
    return store
