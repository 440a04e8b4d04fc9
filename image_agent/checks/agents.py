"""The message broker, and the running agents against the RPC version pin."""

from keystoneauth1 import exceptions as ks_exceptions
from oslo_config import cfg
import oslo_messaging as messaging
from oslo_utils import versionutils

from image_agent import context as ia_context
from image_agent import exception
from image_agent import rpc
from image_agent import rpcapi
from image_agent import upgrade_levels
from image_agent.checks import TIMEOUT
from image_agent.checks import Code
from image_agent.checks import Result
from image_agent.checks import glance
from image_agent.conf import client as client_conf
from image_agent.i18n import _

# Pings sent to the topic: RabbitMQ hands them to its consumers in turn, so
# this many pings reach up to this many agents.
PINGS = 8


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
    session, auth = glance.service_session(cfg_)
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
