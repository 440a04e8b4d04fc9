"""What ``image-agent-status upgrade check`` says about ``[peers]``.

The same rules the agent applies when it starts (``server.PeerServer``,
``runtime.start``), said before it starts, and the warnings an operator
should act on: a port without TLS, a port on every interface.
"""

import os

from oslo_upgradecheck import upgradecheck

from image_agent.i18n import _

Code = upgradecheck.Code
Result = upgradecheck.Result
_EVERY_INTERFACE = ('0.0.0.0', '::', '')  # noqa: S104 - what is looked for


def check_peers(conf) -> Result:
    """The peer port's configuration, worst finding first."""
    options = conf.peers
    if not options.enabled:
        return Result(Code.SUCCESS, _('Peers are off.'))
    failure = _failure(conf)
    if failure:
        return Result(Code.FAILURE, failure)
    warnings = []
    if not options.tls_cert_file:
        warnings.append(
            _(
                'The peer port %d has no TLS: callers\' tokens and image '
                'bytes cross the network in clear. Set [peers] '
                'tls_cert_file, tls_key_file and tls_ca_file.'
            )
            % options.listen_port
        )
    if options.listen_address in _EVERY_INTERFACE:
        warnings.append(
            _(
                'The peer port listens on every interface (%s): bind it to '
                'the agents\' network.'
            )
            % (options.listen_address or '""')
        )
    if warnings:
        return Result(Code.WARNING, ' '.join(warnings))
    return Result(
        Code.SUCCESS,
        _('Peers on %(address)s:%(port)d with TLS.')
        % {'address': options.listen_address, 'port': options.listen_port},
    )


def _failure(conf) -> str | None:
    """Why the agent would refuse to start with these options, if so."""
    options = conf.peers
    if not conf.agent.cache_dir:
        return _('[peers] enabled needs [agent] cache_dir.')
    if conf.auth_strategy == 'noauth':
        return _(
            '[peers] enabled needs auth_strategy keystone: without it no '
            'request can prove its right to an image.'
        )
    tls = {
        'tls_cert_file': options.tls_cert_file,
        'tls_key_file': options.tls_key_file,
    }
    if any(tls.values()) and not all(tls.values()):
        return _('Set both [peers] tls_cert_file and tls_key_file, or none.')
    files = dict(tls, tls_ca_file=options.tls_ca_file)
    unreadable = [
        '%s (%s)' % (name, path)
        for name, path in files.items()
        if path and not os.access(path, os.R_OK)
    ]
    if unreadable:
        return _('Unreadable [peers] files: %s.') % ', '.join(unreadable)
    return None
