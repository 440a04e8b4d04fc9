"""Cinder's image_utils.fetch, twice, from one native thread of its own.

Run as a process of its own (``python -m tests.consumers.fetch_twice``),
given on stdin a JSON object: ``service`` ("image_agent" or "cinder"),
``glance_urls``, ``creds`` (as ``Deployment.authenticate`` gives them),
``image_id``, ``dir`` and ``timeout``. As cinder-volume with
OS_CINDER_DISABLE_EVENTLET_PATCHING=1: native threads, no monkey-patching,
and ``fetch`` wraps the file in an ``eventlet.tpool.Proxy``, whose first
use binds it to the thread that made it. A process of its own because
that binding is for the life of the process.

Prints a JSON object: the sha256 of each fetched file, or ``hung``.
"""

import faulthandler
import hashlib
import json
import os
import sys
import threading

from tests.consumers import cinder_setup

# isort: split

from oslo_config import cfg

from image_agent.image import glance


def _sha256(path: str) -> str:
    with open(path, 'rb') as f:
        return hashlib.file_digest(f, 'sha256').hexdigest()


def main() -> int:
    args = json.load(sys.stdin)
    conf = cfg.CONF
    conf([], project='cinder', default_config_files=[])
    conf.set_override('glance_api_servers', args['glance_urls'])
    conf.set_override('api_servers', args['glance_urls'], group='glance')
    conf.set_override('auth_strategy', 'keystone')
    if args['service'] == 'cinder':
        service = cinder_setup.cinder_glance.GlanceImageService()
    else:
        service = glance.GlanceImageService()
    context = cinder_setup.cinder_context_for(args['creds'])
    result: dict = {'sha256': []}

    def worker() -> None:
        for attempt in range(2):
            path = os.path.join(args['dir'], 'fetched-%d' % attempt)
            cinder_setup.image_utils.fetch(
                context, service, args['image_id'], path, None, None
            )
            result['sha256'].append(_sha256(path))

    thread = threading.Thread(target=worker, name='cinder-worker')
    thread.start()
    thread.join(args['timeout'])
    if thread.is_alive():
        result['hung'] = True
        faulthandler.dump_traceback(sys.stderr)
        print(json.dumps(result), flush=True)
        os._exit(3)
    print(json.dumps(result), flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
