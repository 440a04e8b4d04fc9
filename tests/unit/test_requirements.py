"""requirements.txt declares what the package imports, and only that."""

import ast
import importlib.metadata
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))
# Needed to build and install, never imported.
BUILD_ONLY = {'pbr'}


def _normalize(name: str) -> str:
    return re.sub(r'[-_.]+', '-', name).lower()


def _declared() -> set[str]:
    names = set()
    with open(os.path.join(ROOT, 'requirements.txt')) as f:
        for line in f:
            line = line.split('#')[0].strip()
            if line:
                names.add(_normalize(re.split(r'[\[<>=!~; ]', line)[0]))
    return names


def _imported_modules() -> set[str]:
    modules = set()
    for folder, _dirs, files in os.walk(os.path.join(ROOT, 'image_agent')):
        for name in files:
            if not name.endswith('.py'):
                continue
            with open(os.path.join(folder, name)) as f:
                tree = ast.parse(f.read())
            for node in ast.walk(tree):
                if isinstance(node, ast.Import):
                    modules.update(a.name.split('.')[0] for a in node.names)
                elif isinstance(node, ast.ImportFrom) and not node.level:
                    modules.add(node.module.split('.')[0])
    return {
        m
        for m in modules
        if m not in sys.stdlib_module_names and m != 'image_agent'
    }


def _imported_distributions() -> set[str]:
    by_module = importlib.metadata.packages_distributions()
    found = set()
    for module in _imported_modules():
        assert module in by_module, '%s is imported but not installed' % module
        found.update(_normalize(d) for d in by_module[module])
    return found


def test_every_imported_distribution_is_declared():
    missing = _imported_distributions() - _declared()
    assert not missing, 'imported, not in requirements.txt: %s' % missing


def test_every_declared_distribution_is_imported():
    unused = _declared() - _imported_distributions() - BUILD_ONLY
    assert not unused, 'in requirements.txt, never imported: %s' % unused
