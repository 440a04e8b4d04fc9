"""The version of the installed image-agent."""

import pbr.version

_info = pbr.version.VersionInfo('image-agent')


def version_string() -> str:
    return _info.version_string()


def info() -> pbr.version.VersionInfo:
    """The package's version object, as oslo.reports prints it."""
    return _info
