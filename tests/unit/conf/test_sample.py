"""The committed sample configuration is the one the options generate."""

import os
import subprocess
import sys

ROOT = os.path.dirname(
    os.path.dirname(os.path.dirname(os.path.dirname(__file__)))
)
GENERATOR_CONF = 'etc/image-agent/image-agent-config-generator.conf'
SAMPLE = 'etc/image-agent/image-agent.conf.sample'


def test_committed_sample_is_current(tmp_path):
    generated = tmp_path / 'image-agent.conf.sample'
    subprocess.run(
        [
            sys.executable,
            '-m',
            'oslo_config.generator',
            '--config-file',
            GENERATOR_CONF,
            '--output-file',
            str(generated),
        ],
        cwd=ROOT,
        check=True,
        capture_output=True,
        timeout=120,
    )
    with open(os.path.join(ROOT, SAMPLE)) as committed:
        assert generated.read_text() == committed.read(), (
            '%s is stale: run "tox -e genconfig" and commit it' % SAMPLE
        )
