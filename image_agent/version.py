"""The version of the installed image-agent."""

import pbr.version

_info = pbr.version.VersionInfo('image-agent')


def version_string() -> str:
    return _info.version_string()
