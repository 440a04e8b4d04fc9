"""Every folder of Python modules is a package that an install ships."""

import os

import setuptools

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))


def _module_folders() -> set[str]:
    folders = set()
    top = os.path.join(ROOT, 'image_agent')
    for folder, dirs, files in os.walk(top):
        dirs[:] = [d for d in dirs if d != '__pycache__']
        if any(name.endswith('.py') for name in files):
            relative = os.path.relpath(folder, ROOT)
            folders.add(relative.replace(os.sep, '.'))
    return folders


def test_every_module_folder_is_found_by_setuptools():
    # pbr installs what setuptools.find_packages finds: a folder without
    # an __init__.py imports from a checkout but is missing once installed.
    found = set(setuptools.find_packages(ROOT, include=['image_agent*']))
    assert _module_folders() - found == set()
