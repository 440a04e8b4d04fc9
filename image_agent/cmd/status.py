"""``image-agent-status upgrade check``: is this host's agent ready to run?

Run on a host with the agent's configuration, before and after an upgrade,
as ``nova-status`` and ``cinder-status`` are. Each check reads the
configuration the agent would read and asks the real peers: Keystone with
the ``[glance]`` service credentials, every Glance server, the local
directories, the message broker, and the agents listening on the topic.
The exit code is oslo.upgradecheck's: 0 success, 1 warning, 2 failure.
"""

import os
import sys

from keystoneauth1 import exceptions as ks_exceptions
from keystoneauth1 import loading as ks_loading
from oslo_config import cfg
import oslo_messaging as messaging
from oslo_upgradecheck import upgradecheck
from oslo_utils import versionutils

from image_agent import conf
from image_agent import context as ia_context
from image_agent import exception
from image_agent import paths
from image_agent import rpc
from image_agent import rpcapi
from image_agent import upgrade_levels
from image_agent.conf import client as client_conf
from image_agent.i18n import _
from image_agent.image import servers
from image_agent.peers import checks as peer_checks

Result = upgradecheck.Result
Code = upgradecheck.Code
# Seconds a Glance server, Keystone or an agent has to answer.
TIMEOUT = 10
# Pings sent to the topic: RabbitMQ hands them to its consumers in turn, so
# this many pings reach up to this many agents.
PINGS = 8
MIB = 1024 * 1024


def _worst(results: list[Result]) -> Result:
    """One result for several findings: the worst code, every detail."""
    code = max((r.code for r in results), default=Code.SUCCESS)
    details = ' '.join(r.details for r in results if r.details)
    return Result(code, details or None)


# -- Glance and Keystone ------------------------------------------------------


def _service_session(cfg_: cfg.ConfigOpts):
    """A session and the ``[glance]`` service credentials' auth plugin."""
    session = ks_loading.load_session_from_conf_options(
        cfg_, 'glance', timeout=TIMEOUT
    )
    return session, ks_loading.load_auth_from_conf_options(cfg_, 'glance')


def _glance_urls(cfg_: cfg.ConfigOpts, session, auth) -> list[str]:
    if cfg_.glance.api_servers:
        return [
            servers.normalize_server_url(url)
            for url in cfg_.glance.api_servers
        ]
    url = session.get_endpoint(
        auth,
        service_type='image',
        interface=cfg_.glance.interface,
        region_name=cfg_.glance.region_name,
    )
    return [url] if url else []


def check_glance(cfg_: cfg.ConfigOpts) -> Result:
    """Keystone takes the service credentials; every Glance answers them."""
    if cfg_.auth_strategy == 'noauth':
        return Result(
            Code.WARNING,
            _(
                'auth_strategy is noauth: Glance is trusted to run without '
                'Keystone; nothing to check with credentials.'
            ),
        )
    if not cfg_.glance.auth_type:
        return Result(
            Code.WARNING,
            _(
                '[glance] auth_type is unset: without service credentials the '
                'image location API (get_location, add_location) fails.'
            ),
        )
    try:
        session, auth = _service_session(cfg_)
        token = session.get_token(auth)
        urls = _glance_urls(cfg_, session, auth)
    except (ks_exceptions.ClientException, exception.ImageAgentException) as e:
        return Result(
            Code.FAILURE,
            _(
                'Keystone refused the [glance] service credentials or could '
                'not be reached: %s'
            )
            % e,
        )
    if not urls:
        return Result(
            Code.FAILURE,
            _(
                'No Glance server: [glance] api_servers is unset and the '
                'catalog has no image endpoint.'
            ),
        )
    failed = []
    for url in urls:
        try:
            resp = session.get(
                url.rstrip('/') + '/v2/images?limit=1',
                headers={'X-Auth-Token': token},
                authenticated=False,
                raise_exc=False,
            )
            if resp.status_code != 200:
                failed.append('%s (HTTP %d)' % (url, resp.status_code))
        except ks_exceptions.ClientException as e:
            failed.append('%s (%s)' % (url, e))
    if failed:
        return Result(
            Code.FAILURE,
            _('Glance did not list images for the service user: %s.')
            % ', '.join(failed),
        )
    return Result(
        Code.SUCCESS,
        _('Keystone issued a token; Glance answered at %s.') % ', '.join(urls),
    )


# -- local directories --------------------------------------------------------


def _check_dir(path: str, option: str, writable: bool) -> Result | None:
    if not os.path.isabs(path):
        return Result(
            Code.FAILURE,
            _('%(opt)s: %(path)s is not absolute.')
            % {'opt': option, 'path': path},
        )
    if not os.path.isdir(path):
        return Result(
            Code.FAILURE,
            _('%(opt)s: %(path)s is not a directory.')
            % {'opt': option, 'path': path},
        )
    mode = os.W_OK | os.X_OK if writable else os.R_OK | os.X_OK
    if not os.access(path, mode):
        return Result(
            Code.FAILURE,
            _('%(opt)s: %(path)s is not %(what)s.')
            % {
                'opt': option,
                'path': path,
                'what': _('writable') if writable else _('readable'),
            },
        )
    return None


def check_roots(cfg_: cfg.ConfigOpts) -> Result:
    """The download roots exist and are writable, upload roots readable."""
    agent = cfg_.agent
    if not agent.download_roots:
        return Result(
            Code.WARNING,
            _(
                '[agent] download_roots is empty: every download to a local '
                'path is refused.'
            ),
        )
    problems = [
        _check_dir(root, '[agent] download_roots', True)
        for root in agent.download_roots
    ]
    problems += [
        _check_dir(root, '[agent] upload_roots', False)
        for root in agent.upload_roots or ()
    ]
    problems = [p for p in problems if p is not None]
    if problems:
        return _worst(problems)
    return Result(
        Code.SUCCESS,
        _('Download roots: %s.') % ', '.join(agent.download_roots),
    )


def _free_bytes(path: str) -> int:
    while not os.path.isdir(path):
        path = os.path.dirname(path)
    stat = os.statvfs(path)
    return stat.f_bavail * stat.f_frsize


def check_cache(cfg_: cfg.ConfigOpts) -> Result:
    """The cache directory lies in a download root; its limit fits the disk."""
    agent = cfg_.agent
    if not agent.cache_dir:
        return Result(
            Code.SUCCESS,
            _(
                'No image cache ([agent] cache_dir unset): precache, '
                'cache-list and cache-evict are refused.'
            ),
        )
    problem = _cache_dir_problem(agent)
    if problem:
        return Result(Code.FAILURE, problem)
    free = _free_bytes(agent.cache_dir)
    if agent.cache_max_size == 0:
        return Result(
            Code.WARNING,
            _(
                '[agent] cache_max_size is 0: the cache may grow until the '
                'filesystem of %s is full (%d MiB free now).'
            )
            % (agent.cache_dir, free // MIB),
        )
    if agent.cache_max_size * MIB > free + _cache_usage(agent.cache_dir):
        return Result(
            Code.WARNING,
            _(
                '[agent] cache_max_size (%(max)d MiB) is more than the '
                'filesystem has free (%(free)d MiB).'
            )
            % {'max': agent.cache_max_size, 'free': free // MIB},
        )
    return Result(
        Code.SUCCESS,
        _('Cache %(dir)s, up to %(max)d MiB.')
        % {'dir': agent.cache_dir, 'max': agent.cache_max_size},
    )


def _cache_dir_problem(agent) -> str | None:
    if not os.path.isabs(agent.cache_dir):
        return _('[agent] cache_dir %s is not absolute.') % agent.cache_dir
    roots = paths.PathPolicy(agent.download_roots, 'download')
    if not roots.is_inside(os.path.realpath(agent.cache_dir)):
        return _(
            '[agent] cache_dir %(dir)s is not inside a download root '
            '(%(roots)s).'
        ) % {
            'dir': agent.cache_dir,
            'roots': ', '.join(agent.download_roots) or _('none'),
        }
    return None


def _cache_usage(directory: str) -> int:
    try:
        names = os.listdir(directory)
    except OSError:
        return 0
    total = 0
    for name in names:
        try:
            total += os.lstat(os.path.join(directory, name)).st_size
        except OSError:
            continue
    return total


# -- the message broker and the agents ---------------------------------------


def check_transport(cfg_: cfg.ConfigOpts) -> Result:
    """A transport URL is set; a cluster has replicated queues."""
    # Making the transport registers its options and the driver's; it
    # connects only when used.
    try:
        rpc.get_transport(cfg_).cleanup()
    except (messaging.InvalidTransportURL, messaging.DriverLoadFailure) as e:
        return Result(Code.FAILURE, _('transport_url: %s') % e)
    url = cfg_.transport_url
    if not url or url == 'rabbit://':
        return Result(
            Code.WARNING,
            _(
                'transport_url is unset: the agent uses a RabbitMQ on '
                'localhost as guest.'
            ),
        )
    hosts = messaging.TransportURL.parse(cfg_, url).hosts
    rabbit = cfg_.oslo_messaging_rabbit
    if rabbit.rabbit_transient_quorum_queue and not rabbit.rabbit_quorum_queue:
        return Result(
            Code.WARNING,
            _(
                'rabbit_transient_quorum_queue without rabbit_quorum_queue: '
                'the topic queues are classic queues.'
            ),
        )
    if len(hosts) > 1 and not rabbit.rabbit_quorum_queue:
        return Result(
            Code.WARNING,
            _(
                'transport_url names %d RabbitMQ nodes but '
                '[oslo_messaging_rabbit] rabbit_quorum_queue is false: a '
                'classic queue lives on one node and its calls are lost with '
                'it.'
            )
            % len(hosts),
        )
    return Result(
        Code.SUCCESS,
        _('%(n)d RabbitMQ node(s), quorum queues %(q)s.')
        % {
            'n': max(len(hosts), 1),
            'q': _('on') if rabbit.rabbit_quorum_queue else _('off'),
        },
    )


def _service_context(cfg_: cfg.ConfigOpts) -> ia_context.RequestContext:
    """A context carrying the service user's token: agents refuse calls
    without one (under keystone)."""
    if cfg_.auth_strategy == 'noauth' or not cfg_.glance.auth_type:
        return ia_context.RequestContext()
    session, auth = _service_session(cfg_)
    return ia_context.RequestContext(
        auth_token=session.get_token(auth),
        user_id=session.get_user_id(auth),
        project_id=session.get_project_id(auth),
    )


def _ping_agents(cfg_: cfg.ConfigOpts) -> dict[str, str]:
    """``{host: version}`` of the agents that answered."""
    ctxt = _service_context(cfg_)
    # The agent's own file: its [agent] topic is the agents' topic.
    api = rpcapi.ImageAgentAPI(
        conf=cfg_, topic=cfg_.agent.topic, timeout=TIMEOUT, retry=1
    )
    found: dict[str, str] = {}
    try:
        for _n in range(PINGS):
            answer = api.ping(ctxt)
            found[answer['host']] = answer['version']
    except messaging.MessagingTimeout:
        pass
    finally:
        api.close()
    return found


def _version_pin(cfg_: cfg.ConfigOpts) -> str | None:
    """``[upgrade_levels] image_agent`` as a version, ``auto`` or None."""
    client_conf.register_opts(cfg_)
    return upgrade_levels.resolve(
        cfg_.upgrade_levels.image_agent, rpcapi.ImageAgentAPI.VERSION_ALIASES
    )


def check_agents(cfg_: cfg.ConfigOpts) -> Result:
    """The RPC version pin allows what every running agent understands."""
    try:
        found = _ping_agents(cfg_)
    except (
        messaging.MessageDeliveryFailure,
        messaging.RPCVersionCapError,
        ks_exceptions.ClientException,
        exception.ImageAgentException,
    ) as e:
        return Result(
            Code.FAILURE,
            _('The agents could not be asked: %(type)s: %(error)s')
            % {'type': type(e).__name__, 'error': e},
        )
    if not found:
        return Result(
            Code.WARNING,
            _(
                'No agent answered on topic %s within %d s: the RPC version '
                'pin cannot be compared with them.'
            )
            % (cfg_.agent.topic, TIMEOUT),
        )
    listed = ', '.join('%s %s' % item for item in sorted(found.items()))
    cap = _version_pin(cfg_)
    if cap == upgrade_levels.AUTO:
        return Result(
            Code.SUCCESS,
            _(
                'Agents: %s. Callers ask each agent its version '
                '([upgrade_levels] image_agent = auto).'
            )
            % listed,
        )
    sent = cap or rpcapi.ImageAgentAPI.RPC_API_VERSION
    older = {
        host: version
        for host, version in found.items()
        if not versionutils.is_compatible(sent, version, same_major=True)
    }
    if older:
        oldest = min(older.values(), key=versionutils.convert_version_to_tuple)
        return Result(
            Code.FAILURE,
            _(
                'Callers send RPC version %(sent)s but %(hosts)s answer '
                'only %(oldest)s: set [upgrade_levels] image_agent = '
                '%(oldest)s in the callers until they are upgraded.'
            )
            % {
                'sent': sent,
                'hosts': ', '.join(sorted(older)),
                'oldest': oldest,
            },
        )
    if cap and all(
        versionutils.convert_version_to_tuple(v)
        > versionutils.convert_version_to_tuple(cap)
        for v in found.values()
    ):
        return Result(
            Code.WARNING,
            _(
                'Every agent that answered (%(agents)s) is newer than '
                '[upgrade_levels] image_agent %(cap)s: the pin may be removed.'
            )
            % {'agents': listed, 'cap': cap},
        )
    return Result(Code.SUCCESS, _('Agents: %s.') % listed)


class Checks(upgradecheck.UpgradeCommands):
    """The checks of ``image-agent-status upgrade check``, in order."""

    def __init__(self, cfg_: cfg.ConfigOpts) -> None:
        self.conf = cfg_

    _upgrade_checks = (
        (
            _('Glance with the service credentials'),
            lambda self: check_glance(self.conf),
        ),
        (_('Download and upload roots'), lambda self: check_roots(self.conf)),
        (_('Image cache'), lambda self: check_cache(self.conf)),
        (_('Peers'), lambda self: peer_checks.check_peers(self.conf)),
        (_('Message transport'), lambda self: check_transport(self.conf)),
        (
            _('RPC version of the running agents'),
            lambda self: check_agents(self.conf),
        ),
    )


def main(argv: list[str] | None = None) -> int:
    return upgradecheck.main(
        conf.CONF,
        project='image-agent',
        upgrade_command=Checks(conf.CONF),
        argv=sys.argv[1:] if argv is None else argv,
    )


if __name__ == '__main__':
    sys.exit(main())
