"""Console scripts.

Importing this package selects oslo.service's threading backend, which must
happen before anything imports ``oslo_messaging`` or
``oslo_service.service``: every command module imports this package first.
No eventlet, no monkey-patching.
"""

import contextlib
import warnings

from oslo_service import backend
from oslo_service.backend import exceptions as backend_exceptions

# futurist imports eventlet when it is installed, which only warns that
# eventlet is deprecated: noise for users of the commands, who never use it.
warnings.filterwarnings('ignore', message=r'\s*Eventlet is deprecated')

# Only a process that imported oslo.messaging before this package (a test
# run) finds a backend already selected; ``agent.main`` refuses to run then.
with contextlib.suppress(backend_exceptions.BackendAlreadySelected):
    backend.init_backend(backend.BackendType.THREADING)
