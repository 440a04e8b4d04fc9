"""Importing the client library prints nothing (a consumer's process)."""

import subprocess
import sys


def test_importing_rpcapi_is_silent():
    result = subprocess.run(
        [sys.executable, '-c', 'import image_agent.rpcapi'],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert result.stderr == ''
    assert result.stdout == ''
