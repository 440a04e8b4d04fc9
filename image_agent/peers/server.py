"""The peer server: an agent hands its cached images to other agents.

One route, the path of Glance's own: ``GET /v2/images/<id>/file``, with
the token of the caller the fetching agent works for in ``X-Auth-Token``.
Nothing in the request is trusted (contract, trust rule): before a byte is
served, Keystone is asked who the token is (as for an RPC call) and Glance,
with that token, whether it may download that image now (``show``, then
the one-byte ranged GET of ``check_download``: Glance's download policy,
the image's status and visibility). Only then is the cache entry of the
image's *current* hash, as Glance gave it, opened and served; or, while
this agent is still writing that entry, what it has written so far and the
rest as it comes (``growing``).

Ranges (resuming from another peer) are WebOb's; the server is cheroot, a
maintained pure-Python threaded WSGI server, with its TLS adapter when
``[peers] tls_cert_file`` and ``tls_key_file`` are set.
"""

import contextlib
import os
import re
import threading

from cheroot import wsgi
from cheroot.ssl import builtin as cheroot_ssl
from oslo_log import log as logging
import webob
from webob import exc as webob_exc
from webob import static as webob_static

from image_agent import cache as image_cache
from image_agent import conf
from image_agent import context as context_mod
from image_agent import exception
from image_agent import identity
from image_agent.i18n import _
from image_agent.peers import growing

LOG = logging.getLogger(__name__)
CONF = conf.CONF

_PATH = re.compile(r'/v2/images/(?P<id>[^/]{1,128})/file')
_REQUEST_ID = re.compile(r'req-[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}')
# Bytes read from the entry per write to the socket.
BLOCK_SIZE = 1024 * 1024


class _EntryFile:
    """A cache entry open for reading, kept from eviction until closed."""

    def __init__(self, cache, entry) -> None:
        self._stack = contextlib.ExitStack()
        fd = self._stack.enter_context(cache.open(entry))
        self._file = self._stack.enter_context(
            open(fd, 'rb', buffering=0, closefd=False)  # noqa: SIM115
        )

    def read(self, size: int) -> bytes:
        return self._file.read(size)

    def seek(self, offset: int) -> int:
        return self._file.seek(offset)

    def close(self) -> None:
        self._stack.close()


class _Body(webob_static.FileIter):
    """WebOb's file body (it serves ranges) in large blocks."""

    def app_iter_range(self, seek=None, limit=None, block_size=None):
        return super().app_iter_range(seek, limit, block_size or BLOCK_SIZE)

    __iter__ = app_iter_range

    def close(self) -> None:
        """Called by the server however the answer ended: the entry is
        released at once (a client gone mid-way)."""
        self.file.close()


class PeerApp:
    """The WSGI application of the peer server."""

    def __init__(self, images, cache, validator=None) -> None:
        self._images = images
        self._cache = cache
        self._validator = validator or identity.TokenValidator()

    def __call__(self, environ, start_response):
        request = webob.Request(environ)
        try:
            response = self._answer(request)
        except webob_exc.HTTPException as e:
            response = e
        return response(environ, start_response)

    def _answer(self, request: webob.Request) -> webob.Response:
        if request.method != 'GET':
            raise webob_exc.HTTPMethodNotAllowed(allow='GET')
        match = _PATH.fullmatch(request.path_info)
        if match is None:
            raise webob_exc.HTTPNotFound()
        image_id = match['id']
        image = self._granted(request, image_id)
        body, size, state = self._open(image)
        LOG.info(
            'Serving image %(id)s (%(range)s, %(state)s) to %(peer)s',
            {
                'id': image_id,
                'range': request.headers.get('Range') or 'whole',
                'state': state,
                'peer': request.remote_addr,
            },
        )
        return webob.Response(
            app_iter=_Body(body),
            content_type='application/octet-stream',
            content_length=size,
            conditional_response=True,
        )

    def _open(self, image: dict):
        """``(file, size, state)`` of the image's bytes here: its cache
        entry, else the entry being written now (``growing``)."""
        entry = self._cache.lookup(image)
        if entry is not None:
            with contextlib.suppress(FileNotFoundError):
                return _EntryFile(self._cache, entry), entry.size, 'cached'
        name = image_cache.entry_name(image)
        path = growing.find(self._cache.directory, name) if name else None
        size = image.get('size')
        if path is None or not size:
            raise webob_exc.HTTPNotFound(_('not in this agent\'s cache'))
        try:
            body = growing.GrowingFile(path, size, CONF.peers.timeout)
        except FileNotFoundError as e:
            # Renamed into place meanwhile: it is the entry now.
            entry = self._cache.lookup(image)
            if entry is None:
                raise webob_exc.HTTPNotFound() from e
            return _EntryFile(self._cache, entry), entry.size, 'cached'
        return body, size, 'growing'

    def _granted(self, request: webob.Request, image_id: str) -> dict:
        """The image as Glance shows it to the request's token, once
        Keystone knows the token and Glance lets it download the image."""
        token = request.headers.get('X-Auth-Token')
        if not token:
            raise webob_exc.HTTPUnauthorized(_('a token is needed'))
        request_id = request.headers.get('X-OpenStack-Request-ID')
        if not (request_id and _REQUEST_ID.fullmatch(request_id)):
            request_id = None
        try:
            context = identity.authenticate(
                context_mod.RequestContext(
                    auth_token=token, global_request_id=request_id
                ),
                self._validator,
            )
            image = self._images.show(context, image_id)
            self._images.check_download(context, image)
        except exception.ImageNotAuthorized as e:
            self._refused(image_id, request, e)
            raise webob_exc.HTTPForbidden() from e
        except exception.NotAuthorized as e:
            self._refused(image_id, request, e)
            raise webob_exc.HTTPUnauthorized() from e
        except exception.NotFound as e:
            self._refused(image_id, request, e)
            raise webob_exc.HTTPNotFound() from e
        except exception.Invalid as e:
            self._refused(image_id, request, e)
            raise webob_exc.HTTPBadRequest() from e
        except exception.ImageAgentException as e:
            LOG.warning('Cannot check a peer request with Glance: %s', e)
            raise webob_exc.HTTPServiceUnavailable() from e
        return image

    @staticmethod
    def _refused(image_id: str, request: webob.Request, error) -> None:
        LOG.info(
            'Refused image %(id)s to %(peer)s: %(error)s',
            {'id': image_id, 'peer': request.remote_addr, 'error': error},
        )


class PeerServer:
    """cheroot serving ``PeerApp`` on ``[peers] listen_address:port``."""

    def __init__(self, conf, app: PeerApp) -> None:
        options = conf.peers
        tls = (options.tls_cert_file, options.tls_key_file)
        if any(tls) and not all(tls):
            raise exception.InvalidConfigurationValue(
                option='[peers] tls_cert_file, tls_key_file',
                value=None,
                reason=_('set both or neither'),
            )
        if conf.auth_strategy == 'noauth':
            raise exception.InvalidConfigurationValue(
                option='[peers] enabled',
                value=True,
                reason=_(
                    'without Keystone a peer cannot prove that a request '
                    'may have an image'
                ),
            )
        self._tls = all(tls)
        self._advertise = options.advertise_host or options.listen_address
        self._advertise_port = options.advertise_port
        self._server = wsgi.Server(
            (options.listen_address, options.listen_port),
            app,
            numthreads=options.max_connections,
            server_name='image-agent-peer',
            timeout=max(1, int(options.timeout)),
        )
        if self._tls:
            self._server.ssl_adapter = cheroot_ssl.BuiltinSSLAdapter(*tls)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """What other agents connect to (its port known once started)."""
        host = self._advertise
        if ':' in host and not host.startswith('['):
            host = '[%s]' % host
        return '%s://%s:%d' % (
            'https' if self._tls else 'http',
            host,
            self._advertise_port or self._server.bind_addr[1],
        )

    def start(self) -> str:
        """Bind and serve in a thread; return the URL."""
        self._server.prepare()
        self._thread = threading.Thread(
            target=self._server.serve, name='image-agent-peers', daemon=True
        )
        self._thread.start()
        LOG.info('Peer server up at %s (pid %d)', self.url, os.getpid())
        return self.url

    def stop(self) -> None:
        if self._thread is None:
            return
        self._server.stop()
        self._thread.join(10)
        self._thread = None
