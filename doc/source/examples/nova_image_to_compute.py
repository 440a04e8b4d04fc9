"""Bring an image onto a compute host the way nova-compute would, with
image-agent.

nova-compute keeps the images its instances boot from in
``<instances_path>/_base/<sha1 of the image id>``. Here the agent on the
compute host (its ``[DEFAULT] host`` is Nova's ``[DEFAULT] host``) writes
the image there, verified against Glance's hash; an image already there
and verified is kept as it is.

Run it with Nova installed beside image-agent, a Keystone user in the
environment (``OS_AUTH_URL``, ``OS_USERNAME``, ``OS_PASSWORD``,
``OS_PROJECT_NAME``, ``OS_USER_DOMAIN_NAME``, ``OS_PROJECT_DOMAIN_NAME``)
and the compute host's nova.conf (``[DEFAULT] transport_url``, ``host``,
``instances_path``, ``[image_agent] topic``)::

    python nova_image_to_compute.py --config-file /etc/nova/nova.conf \\
        IMAGE_ID

Nova's ``control_exchange`` is ``nova``; the calls go to the agents' own
exchange all the same. The last line printed is a JSON summary of what
the agent did.
"""

import argparse
import hashlib
import json
import os
import sys


def start_like_nova_compute(config_file: str):
    """Nova's own start-up: native threads, its options, its
    configuration and RPC transport."""
    from nova import monkey_patch

    monkey_patch.patch(backend='threading')
    from nova import config
    from nova import rpc
    import nova.conf

    config.parse_args(
        ['nova-compute', '--config-file', config_file],
        default_config_files=[],
    )
    return nova.conf.CONF, rpc.TRANSPORT


def user_context():
    """A Nova RequestContext for the user of the environment, as nova-api
    makes one from the request's token."""
    from keystoneauth1 import session
    from keystoneauth1.identity import v3
    from nova import context

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
        auth_token=access.auth_token,
        service_catalog=access.service_catalog.catalog,
    )


def base_image_path(conf, image_id: str) -> str:
    """Where nova-compute's image cache keeps this image."""
    name = hashlib.sha1(image_id.encode(), usedforsecurity=False).hexdigest()
    return os.path.join(
        conf.instances_path, conf.image_cache.subdirectory_name, name
    )


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--config-file', required=True)
    parser.add_argument('image_id')
    args = parser.parse_args(argv)

    conf, transport = start_like_nova_compute(args.config_file)
    from image_agent import rpcapi

    ctxt = user_context()
    agent = rpcapi.ImageAgentAPI(conf=conf, transport=transport)
    path = base_image_path(conf, args.image_id)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    result = agent.download(ctxt, args.image_id, path, host=conf.host)
    summary = {
        'host': conf.host,
        'path': result['path'],
        'size': result['size'],
        'os_hash_value': result['os_hash_value'],
        'reused': result['reused'],
        'source': result['source'],
    }
    print(json.dumps(summary))
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
