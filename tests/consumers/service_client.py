"""A service process calling the agents: run as a subprocess of the tests.

``python -m tests.consumers.service_client cinder|nova CONFIG REQUEST``
starts up as ``cinder-volume`` or ``nova-compute`` does (their options on
``cfg.CONF``, their configuration file parsed, their RPC transport made),
then imports ``image_agent.rpcapi``, registers the client's options on the
service's ``CONF`` and calls the agent named in the REQUEST file (JSON:
``host``, ``image_id``, ``path``, ``missing``, ``credentials``) through the
service's own transport and request context. Prints a JSON report as its
last line; an unexpected error ends it with a traceback.
"""

import hashlib
import json
import sys


def start_cinder(config_file: str):
    """As cinder-volume: eventlet first (unless the environment says
    otherwise), its options, objects and volume manager, then its
    configuration and ``cinder.rpc.init``."""
    from cinder import monkey_patch

    monkey_patch.patch()
    from cinder import objects
    from cinder.common import config  # noqa: F401

    objects.register_all()
    from cinder import context
    from cinder import rpc
    import cinder.volume.manager  # noqa: F401
    from oslo_config import cfg

    cfg.CONF(
        ['--config-file', config_file],
        project='cinder',
        default_config_files=[],
    )
    rpc.init(cfg.CONF)
    return cfg.CONF, rpc.TRANSPORT, context.RequestContext


def start_nova(config_file: str):
    """As nova-compute: native threads, ``nova.conf``, then
    ``nova.config.parse_args`` (``control_exchange = nova``, rpc.init)."""
    from nova import monkey_patch

    monkey_patch.patch(backend='threading')
    from nova import config
    from nova import context
    from nova import rpc
    import nova.conf

    config.parse_args(
        ['nova-compute', '--config-file', config_file],
        default_config_files=[],
    )
    return nova.conf.CONF, rpc.TRANSPORT, context.RequestContext


STARTS = {'cinder': start_cinder, 'nova': start_nova}


def _sha512(path: str) -> str:
    with open(path, 'rb') as f:
        return hashlib.file_digest(f, 'sha512').hexdigest()


def call_agent(conf, transport, context_class, request: dict) -> dict:
    """What the service sees of each call, as JSON-able data."""
    from image_agent import exception
    from image_agent import rpcapi
    from image_agent.conf import client as client_conf

    client_conf.register_opts(conf)
    creds = request['credentials']
    ctxt = context_class(
        user_id=creds['user_id'],
        project_id=creds['project_id'],
        roles=list(creds['roles']),
        auth_token=creds['token'],
        service_catalog=creds['catalog_v2'],
        is_admin=False,
    )
    api = rpcapi.ImageAgentAPI(conf=conf, transport=transport)
    host = request['host']
    report: dict = {
        'control_exchange': conf.control_exchange,
        'topic': api.topic,
        'ping': api.ping(ctxt, host=host),
        'show': api.show(ctxt, request['image_id']),
    }
    result = api.download(ctxt, request['image_id'], request['path'], host)
    report['download'] = result
    report['sha512_of_file'] = _sha512(request['path'])
    try:
        api.show(ctxt, request['missing'], host=host)
    except exception.ImageNotFound as e:
        report['missing'] = {
            'class': type(e).__name__,
            'is_image_not_found': isinstance(e, exception.ImageNotFound),
            'message': str(e),
            'code': e.kwargs.get('code'),
        }
    else:
        report['missing'] = None
    return report


def main(argv: list[str]) -> None:
    service, config_file, request_file = argv
    conf, transport, context_class = STARTS[service](config_file)
    with open(request_file) as f:
        request = json.load(f)
    report = call_agent(conf, transport, context_class, request)
    print(json.dumps(report, default=str))


if __name__ == '__main__':
    main(sys.argv[1:])
