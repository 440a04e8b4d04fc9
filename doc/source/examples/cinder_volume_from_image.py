"""Create a volume from an image the way cinder-volume would, with image-agent.

The volume lives on the host named in the volume's ``host``
(``node@backend#pool``). The agent of that node downloads the image into a
file there, verified against Glance's hash; the volume driver then copies
or converts that file onto the volume (``qemu-img convert``), as it does
with the file ``cinder.image.image_utils.fetch_to_raw`` makes today.

Run it with Cinder installed beside image-agent, a Keystone user in the
environment (``OS_AUTH_URL``, ``OS_USERNAME``, ``OS_PASSWORD``,
``OS_PROJECT_NAME``, ``OS_USER_DOMAIN_NAME``, ``OS_PROJECT_DOMAIN_NAME``)
and a cinder.conf naming the RabbitMQ the agents listen on
(``[DEFAULT] transport_url``) and their topic (``[image_agent] topic``)::

    python cinder_volume_from_image.py --config-file /etc/cinder/cinder.conf \\
        IMAGE_ID VOLUME_HOST PATH

``PATH`` must be under one of the agent's ``[agent] download_roots``. The
last line printed is a JSON summary of what the agent did.
"""

import argparse
import json
import os
import sys


def start_like_cinder_volume(config_file: str):
    """Cinder's own start-up: eventlet (unless disabled by the
    environment), its options, its configuration, its RPC transport."""
    from cinder import monkey_patch

    monkey_patch.patch()
    from cinder import objects
    from cinder import rpc
    from cinder.common import config  # noqa: F401 (Cinder's options)
    from oslo_config import cfg

    objects.register_all()
    cfg.CONF(
        ['--config-file', config_file],
        project='cinder',
        default_config_files=[],
    )
    rpc.init(cfg.CONF)
    return cfg.CONF, rpc.TRANSPORT


def user_context():
    """A Cinder RequestContext for the user of the environment, as
    cinder-api makes one from the request's token."""
    from cinder import context
    from keystoneauth1 import session
    from keystoneauth1.identity import v3

    auth = v3.Password(
        auth_url=os.environ['OS_AUTH_URL'],
        username=os.environ['OS_USERNAME'],
        password=os.environ['OS_PASSWORD'],
        project_name=os.environ['OS_PROJECT_NAME'],
        user_domain_name=os.environ.get('OS_USER_DOMAIN_NAME', 'Default'),
        project_domain_name=os.environ.get(
            'OS_PROJECT_DOMAIN_NAME', 'Default'
        ),
    )
    access = auth.get_access(session.Session(auth=auth))
    return context.RequestContext(
        user_id=access.user_id,
        project_id=access.project_id,
        roles=list(access.role_names),
        is_admin='admin' in access.role_names,
        auth_token=access.auth_token,
        service_catalog=access.service_catalog.catalog,
    )


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--config-file', required=True)
    parser.add_argument('image_id')
    parser.add_argument('volume_host', help='node@backend#pool')
    parser.add_argument('path', help="where the file goes, on that node")
    args = parser.parse_args(argv)

    conf, transport = start_like_cinder_volume(args.config_file)
    from cinder.volume import volume_utils

    from image_agent import exception
    from image_agent import rpcapi

    ctxt = user_context()
    # The client's options ([image_agent]) are Cinder's configuration's;
    # its errors arrive as image_agent.exception classes on any transport.
    agent = rpcapi.ImageAgentAPI(conf=conf, transport=transport)
    # The agent of the volume's node: its [DEFAULT] host is the node name.
    node = volume_utils.extract_host(args.volume_host, 'host')
    image = agent.show(ctxt, args.image_id)
    try:
        result = agent.download(ctxt, args.image_id, args.path, host=node)
    except exception.InsufficientSpace as e:
        print('not enough room on %s: %s' % (node, e.msg), file=sys.stderr)
        return 1
    summary = {
        'node': node,
        'image_id': image['id'],
        'disk_format': image['disk_format'],
        'path': result['path'],
        'size': result['size'],
        'os_hash_value': result['os_hash_value'],
        'source': result['source'],
    }
    print(json.dumps(summary))
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
