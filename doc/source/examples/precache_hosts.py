"""Pre-cache images on several hosts and report what failed where.

    python precache_hosts.py --config-file /etc/nova/nova.conf \
        --image IMAGE_ID [--image ...] --host HOST [--host ...]

The caller's credentials come from the OS_* variables of an openrc file;
pre-caching is for administrators (the admin role). The configuration file
gives the transport (``[DEFAULT] transport_url``); ``--topic`` the agents'
topic when it is not the default.
"""

import argparse
import os
import sys

from keystoneauth1 import loading
from keystoneauth1 import session
from oslo_config import cfg

from image_agent import context
from image_agent import rpcapi


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
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--image', action='append', required=True)
    parser.add_argument('--host', action='append', required=True)
    parser.add_argument('--topic')
    args, oslo_args = parser.parse_known_args()
    conf = cfg.CONF
    conf(oslo_args, project='image-agent')

    agent = rpcapi.ImageAgentAPI(conf=conf, topic=args.topic)
    try:
        results = agent.precache(
            context_from_environment(), args.image, args.host
        )
    finally:
        agent.close()

    # Every failure of every host, not only the last of each.
    failed = {
        host: {
            image_id: outcome
            for image_id, outcome in outcomes.items()
            if outcome['status'] in ('error', 'skipped')
        }
        for host, outcomes in results.items()
    }
    failed = {host: images for host, images in failed.items() if images}
    for host, images in sorted(failed.items()):
        for image_id, outcome in sorted(images.items()):
            print('%s %s %s: %s' % (
                host, image_id, outcome['status'], outcome.get('error')))
    cached = sum(len(outcomes) for outcomes in results.values())
    print('%d of %d pre-cached' % (
        cached - sum(len(i) for i in failed.values()), cached))
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
