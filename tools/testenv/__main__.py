"""``python3 -m tools.testenv start|stop|status|env`` from the repo root."""

from __future__ import annotations

import argparse
import shlex
import sys

from tools.testenv.deployment import Deployment
from tools.testenv.util import DeploymentError


def _env_lines(dep: Deployment) -> list[str]:
    info = dep.info
    values = [
        ('OS_AUTH_URL', dep.keystone_url),
        ('OS_IDENTITY_API_VERSION', '3'),
        ('OS_AUTH_TYPE', 'password'),
        ('OS_USERNAME', 'demo'),
        ('OS_PASSWORD', dep.password('demo')),
        ('OS_PROJECT_NAME', info['users']['demo']['project']),
        ('OS_USER_DOMAIN_NAME', 'Default'),
        ('OS_PROJECT_DOMAIN_NAME', 'Default'),
        ('OS_REGION_NAME', 'RegionOne'),
        ('OS_IMAGE_API_VERSION', '2'),
        ('IMAGE_AGENT_TESTENV_DIR', dep.state_dir),
        ('IMAGE_AGENT_KEYSTONE_URL', dep.keystone_url),
        ('IMAGE_AGENT_GLANCE_URLS', ','.join(dep.glance_urls)),
        ('IMAGE_AGENT_NOAUTH_GLANCE_URL', dep.noauth_glance_url),
        ('IMAGE_AGENT_SERVICE_USER', 'image-agent'),
        ('IMAGE_AGENT_SERVICE_PASSWORD', dep.password('image-agent')),
        (
            'IMAGE_AGENT_SERVICE_PROJECT',
            info['users']['image-agent']['project'],
        ),
        ('IMAGE_AGENT_FILESERVER_URL', dep.fileserver_url),
        ('IMAGE_AGENT_FILESERVER_DIR', dep.fileserver_dir),
        ('IMAGE_AGENT_STORE_FAST_DIR', dep.store_dirs['fast']),
        ('IMAGE_AGENT_STORE_CHEAP_DIR', dep.store_dirs['cheap']),
    ]
    return ['export %s=%s' % (k, shlex.quote(v)) for k, v in values]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog='python3 -m tools.testenv',
        description='Keystone + two Glance APIs (and one trusting identity '
        'headers) + a file server on loopback for image-agent tests.',
    )
    parser.add_argument(
        '--state-dir',
        help='default: $IMAGE_AGENT_TESTENV_DIR or /tmp/image-agent-testenv',
    )
    parser.add_argument('command', choices=['start', 'stop', 'status', 'env'])
    args = parser.parse_args(argv)
    dep = Deployment(args.state_dir)
    try:
        if args.command == 'start':
            dep.start()
            print(dep.summary())
        elif args.command == 'stop':
            dep.stop()
        elif args.command == 'status':
            health = dep.health()
            for name, problem in health.items():
                print('%-13s %s' % (name, problem or 'ok'))
            return 0 if health and not any(health.values()) else 1
        elif args.command == 'env':
            if not dep.is_healthy():
                print(
                    'deployment in %s is not running/healthy: run '
                    '"python3 -m tools.testenv start"' % dep.state_dir,
                    file=sys.stderr,
                )
                return 1
            print('\n'.join(_env_lines(dep)))
    except DeploymentError as e:
        print('error: %s' % e, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == '__main__':
    sys.exit(main())
