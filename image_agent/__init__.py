"""image-agent: Glance images to local disks, over RPC.

Importing ``oslo_messaging`` imports ``oslo_service.service``, which loads
oslo.service's eventlet backend when the process chose none; eventlet then
prints a 10-line deprecation notice at whoever imported the client library,
although nothing here runs on eventlet. That one notice, from that one
place, is silenced; every other warning is left as it is.
"""

import warnings

warnings.filterwarnings(
    'ignore',
    message=r'\s*Eventlet is deprecated',
    module=r'oslo_service\.backend\._eventlet\.',
)
