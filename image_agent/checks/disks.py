"""The local directories: download and upload roots, the image cache."""

import os

from oslo_config import cfg

from image_agent import paths
from image_agent.checks import Code
from image_agent.checks import Result
from image_agent.checks import worst
from image_agent.i18n import _

MIB = 1024 * 1024


def _check_dir(path: str, option: str, writable: bool) -> Result | None:
    if not os.path.isabs(path):
        return Result(
            Code.FAILURE,
            _('%(opt)s: %(path)s is not absolute.')
            % {'opt': option, 'path': path},
        )
    if not os.path.isdir(path):
        return Result(
            Code.FAILURE,
            _('%(opt)s: %(path)s is not a directory.')
            % {'opt': option, 'path': path},
        )
    mode = os.W_OK | os.X_OK if writable else os.R_OK | os.X_OK
    if not os.access(path, mode):
        return Result(
            Code.FAILURE,
            _('%(opt)s: %(path)s is not %(what)s.')
            % {
                'opt': option,
                'path': path,
                'what': _('writable') if writable else _('readable'),
            },
        )
    return None


def check_roots(cfg_: cfg.ConfigOpts) -> Result:
    """The download roots exist and are writable, upload roots readable."""
    agent = cfg_.agent
    if not agent.download_roots:
        return Result(
            Code.WARNING,
            _(
                '[agent] download_roots is empty: every download to a local '
                'path is refused.'
            ),
        )
    problems = [
        _check_dir(root, '[agent] download_roots', True)
        for root in agent.download_roots
    ]
    problems += [
        _check_dir(root, '[agent] upload_roots', False)
        for root in agent.upload_roots or ()
    ]
    problems = [p for p in problems if p is not None]
    if problems:
        return worst(problems)
    return Result(
        Code.SUCCESS,
        _('Download roots: %s.') % ', '.join(agent.download_roots),
    )


def _free_bytes(path: str) -> int:
    while not os.path.isdir(path):
        path = os.path.dirname(path)
    stat = os.statvfs(path)
    return stat.f_bavail * stat.f_frsize


def check_cache(cfg_: cfg.ConfigOpts) -> Result:
    """The cache directory lies in a download root; its limit fits the disk."""
    agent = cfg_.agent
    if not agent.cache_dir:
        return Result(
            Code.SUCCESS,
            _(
                'No image cache ([agent] cache_dir unset): precache, '
                'cache-list and cache-evict are refused.'
            ),
        )
    problem = _cache_dir_problem(agent)
    if problem:
        return Result(Code.FAILURE, problem)
    free = _free_bytes(agent.cache_dir)
    if agent.cache_max_size == 0:
        return Result(
            Code.WARNING,
            _(
                '[agent] cache_max_size is 0: the cache may grow until the '
                'filesystem of %s is full (%d MiB free now).'
            )
            % (agent.cache_dir, free // MIB),
        )
    if agent.cache_max_size * MIB > free + _cache_usage(agent.cache_dir):
        return Result(
            Code.WARNING,
            _(
                '[agent] cache_max_size (%(max)d MiB) is more than the '
                'filesystem has free (%(free)d MiB).'
            )
            % {'max': agent.cache_max_size, 'free': free // MIB},
        )
    return Result(
        Code.SUCCESS,
        _('Cache %(dir)s, up to %(max)d MiB.')
        % {'dir': agent.cache_dir, 'max': agent.cache_max_size},
    )


def _cache_dir_problem(agent) -> str | None:
    if not os.path.isabs(agent.cache_dir):
        return _('[agent] cache_dir %s is not absolute.') % agent.cache_dir
    roots = paths.PathPolicy(agent.download_roots, 'download')
    if not roots.is_inside(os.path.realpath(agent.cache_dir)):
        return _(
            '[agent] cache_dir %(dir)s is not inside a download root '
            '(%(roots)s).'
        ) % {
            'dir': agent.cache_dir,
            'roots': ', '.join(agent.download_roots) or _('none'),
        }
    return None


def _cache_usage(directory: str) -> int:
    try:
        names = os.listdir(directory)
    except OSError:
        return 0
    total = 0
    for name in names:
        try:
            total += os.lstat(os.path.join(directory, name)).st_size
        except OSError:
            continue
    return total
