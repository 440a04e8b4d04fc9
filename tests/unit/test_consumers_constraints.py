"""tests/consumers/constraints.txt pins only what upper-constraints.txt
does not: one file decides each version, and pip never meets two pins of
one package (tox -e consumers installs with both)."""

import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))


def _pins(path: str) -> dict[str, str]:
    pins = {}
    with open(os.path.join(ROOT, path)) as f:
        for line in f:
            line = line.split('#', 1)[0].strip()
            if '==' in line:
                name, version = line.split('==', 1)
                pins[re.sub(r'[-_.]+', '-', name).lower()] = version
    return pins


def test_the_consumers_pins_are_beyond_upper_constraints():
    ours = _pins('tests/consumers/constraints.txt')
    upper = _pins('upper-constraints.txt')
    assert {'cinder', 'nova'} <= set(ours)
    assert sorted(set(ours) & set(upper)) == []
