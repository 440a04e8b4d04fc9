"""Where the quickstart keeps its things, derived from one state dir."""

from __future__ import annotations

import hashlib
import os

DEFAULT_STATE_DIR = '/tmp/image-agent-quickstart'
REPO = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))
IMAGE_NAME = 'quickstart-disk'
AGENT_HOST = 'quickstart'


class Layout:
    """Paths, names and tags of the quickstart of one state dir.

    Everything that could collide with another quickstart on the same
    machine (RPC topic, process tag, databases through the test
    deployment's own state dir) is derived from the state dir, so a second
    state dir (the CI test's) runs beside the default one.
    """

    def __init__(self, state_dir: str | None = None) -> None:
        self.state_dir = os.path.abspath(
            state_dir
            or os.environ.get('IMAGE_AGENT_QUICKSTART_DIR')
            or DEFAULT_STATE_DIR
        )
        digest = hashlib.sha256(self.state_dir.encode()).hexdigest()
        #: Carried by the agent's processes (environment), see ``agent``.
        self.owner = 'ia-quickstart-%s' % digest[:10]
        self.topic = 'image-agent-quickstart'
        if self.state_dir != DEFAULT_STATE_DIR:
            self.topic += '-' + digest[:8]
        self.host = AGENT_HOST
        self.repo = os.path.abspath(REPO)

    def _path(self, *parts: str) -> str:
        return os.path.join(self.state_dir, *parts)

    @property
    def testenv_dir(self) -> str:
        return self._path('testenv')

    @property
    def config(self) -> str:
        return self._path('image-agent.conf')

    @property
    def config_dir(self) -> str:
        """The user's own settings (``*.conf``), read after ``config`` and
        never written by the quickstart."""
        return self._path('image-agent.conf.d')

    @property
    def cache_dir(self) -> str:
        """The agent's image cache, inside its download root."""
        return self._path('downloads', '.cache')

    @property
    def openrc(self) -> str:
        return self._path('openrc')

    @property
    def pid_file(self) -> str:
        return self._path('image-agent.pid')

    @property
    def lock(self) -> str:
        return self._path('.lock')

    @property
    def logs(self) -> str:
        return self._path('logs')

    @property
    def agent_log(self) -> str:
        return self._path('logs', 'image-agent.log')

    @property
    def console_log(self) -> str:
        """stdout/stderr of the agent: what happens before logging starts."""
        return self._path('logs', 'image-agent.console.log')

    @property
    def source_dir(self) -> str:
        """The agent's upload root: where the disk image is built."""
        return self._path('source')

    @property
    def download_dir(self) -> str:
        """The agent's download root."""
        return self._path('downloads')

    @property
    def source_image(self) -> str:
        return os.path.join(self.source_dir, IMAGE_NAME + '.raw')

    @property
    def downloaded_image(self) -> str:
        return os.path.join(self.download_dir, IMAGE_NAME + '.raw')

    @property
    def converted_image(self) -> str:
        """The qcow2 copy of the image, downloaded converted to raw."""
        return os.path.join(self.download_dir, IMAGE_NAME + '-from-qcow2.raw')

    def make_dirs(self) -> None:
        for path in (
            self.logs,
            self.source_dir,
            self.download_dir,
            self.config_dir,
        ):
            os.makedirs(path, exist_ok=True)
