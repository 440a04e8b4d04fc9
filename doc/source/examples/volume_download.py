"""Write an image onto a host's disk for a volume, as a volume service would.

    python volume_download.py --config-file /etc/cinder/cinder.conf \
        --image IMAGE_ID --host volume-2 --volume VOLUME_ID \
        --directory /var/lib/image-agent/images

The file is written by the agent of ``--host``, under one of its download
roots; the caller's credentials come from the OS_* variables of an openrc
file. The image then records which volume used it last, keeping its other
properties.
"""

import argparse
import logging
import os
import sys

from keystoneauth1 import loading
from keystoneauth1 import session
from oslo_config import cfg

from image_agent import context
from image_agent import rpcapi

LOG = logging.getLogger(__name__)


def context_from_environment() -> context.RequestContext:
    """A request context for the user of the OS_* variables."""
    auth = loading.get_plugin_loader('password').load_from_options(
        auth_url=os.environ['OS_AUTH_URL'],
        username=os.environ['OS_USERNAME'],
        password=os.environ['OS_PASSWORD'],
        project_name=os.environ['OS_PROJECT_NAME'],
        user_domain_name=os.environ['OS_USER_DOMAIN_NAME'],
        project_domain_name=os.environ['OS_PROJECT_DOMAIN_NAME'],
    )
    access = auth.get_access(session.Session(auth=auth))
    return context.RequestContext(
        auth_token=access.auth_token,
        user_id=access.user_id,
        project_id=access.project_id,
        roles=list(access.role_names),
        service_catalog=access.service_catalog.catalog,
    )


def main() -> int:
    logging.basicConfig(level=logging.INFO, format='%(message)s')
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--image', required=True)
    parser.add_argument('--host', required=True)
    parser.add_argument('--volume', required=True)
    parser.add_argument('--directory', required=True)
    parser.add_argument('--topic')
    args, oslo_args = parser.parse_known_args()
    conf = cfg.CONF
    conf(oslo_args, project='image-agent')

    ctxt = context_from_environment()
    agent = rpcapi.ImageAgentAPI(conf=conf, topic=args.topic)
    try:
        image = agent.show(ctxt, args.image)
        if image['disk_format'] != 'raw':
            LOG.error('Image %s is %s, not raw', args.image,
                      image['disk_format'])
            return 1

        path = os.path.join(args.directory, 'volume-%s.raw' % args.volume)
        result = agent.download(ctxt, args.image, path, host=args.host)
        LOG.info('Image %s (%d bytes, %s %s) is at %s',
                 args.image, result['size'], result['os_hash_algo'],
                 result['os_hash_value'], result['path'])

        # Keep the other custom properties: purge_props=False.
        agent.update(ctxt, args.image,
                     {'properties': {'cinder_last_used': args.volume}},
                     purge_props=False)
    finally:
        agent.close()
    return 0


if __name__ == '__main__':
    sys.exit(main())
