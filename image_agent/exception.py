"""Exceptions of image-agent.

Every class carries a ``msg_fmt`` formatted with the keyword arguments given
to the constructor, so the message a caller reads names what went wrong and
the object concerned. The same classes are raised on the caller's side of an
RPC call (``image_agent.exception`` is an allowed remote module), so a
consumer can ``except ImageNotFound`` whether the call was local or remote.
"""

from typing import Any

from oslo_log import log as logging
import oslo_messaging as messaging

from image_agent.i18n import _

LOG = logging.getLogger(__name__)


class ImageAgentException(Exception):
    """Base class; ``msg_fmt % kwargs`` is the message."""

    msg_fmt = _('An unknown exception occurred.')
    code = 500

    def __init__(self, message: str | None = None, **kwargs: Any) -> None:
        self.kwargs = kwargs
        self.kwargs.setdefault('code', self.code)
        if not message:
            try:
                message = self.msg_fmt % kwargs
            except (KeyError, TypeError, ValueError):
                # A wrong set of arguments is a bug of the raiser; keep the
                # template rather than losing the error being reported.
                LOG.exception(
                    'Exception %s got arguments that do not fit its message',
                    type(self).__name__,
                )
                message = self.msg_fmt
        self.msg = str(message)
        super().__init__(self.msg)

    def __str__(self) -> str:
        return self.msg


class NotAuthorized(ImageAgentException):
    msg_fmt = _('Not authorized.')
    code = 403


class ImageNotAuthorized(NotAuthorized):
    msg_fmt = _('Not authorized for image %(image_id)s.')


class Invalid(ImageAgentException):
    msg_fmt = _('Unacceptable parameters: %(reason)s')
    code = 400


class InvalidImageRef(Invalid):
    msg_fmt = _('Invalid image href %(image_href)s: %(reason)s')


class InvalidInput(Invalid):
    msg_fmt = _('Invalid input received: %(reason)s')


class InvalidConfigurationValue(Invalid):
    msg_fmt = _(
        'Value "%(value)s" is not valid for configuration option '
        '"%(option)s": %(reason)s'
    )


class NotFound(ImageAgentException):
    msg_fmt = _('Resource could not be found.')
    code = 404


class ImageNotFound(NotFound):
    msg_fmt = _('Image %(image_id)s could not be found.')


class Conflict(ImageAgentException):
    msg_fmt = _('Conflict: %(reason)s')
    code = 409


class ImageConflict(Conflict):
    msg_fmt = _(
        'Image %(image_id)s is in a state that does not allow this '
        'request: %(reason)s'
    )


class ImageLimitExceeded(ImageAgentException):
    msg_fmt = _('Image quota or size limit exceeded: %(reason)s')
    code = 413


class GlanceConnectionFailed(ImageAgentException):
    msg_fmt = _(
        'Connection to Glance failed after %(attempts)d attempt(s) '
        'on %(servers)s: %(reason)s'
    )
    code = 503


class GlanceError(ImageAgentException):
    msg_fmt = _('Glance failed the request: %(reason)s')
    code = 502


class GlanceServersNotFound(ImageAgentException):
    msg_fmt = _(
        'No Glance API server is configured or can be found: %(reason)s'
    )


class ImageDownloadFailed(ImageAgentException):
    msg_fmt = _('Failed to download image %(image_id)s: %(reason)s')


class ImageChecksumMismatch(ImageDownloadFailed):
    msg_fmt = _(
        'Image %(image_id)s failed verification: its %(algorithm)s '
        'is %(actual)s but Glance recorded %(expected)s.'
    )


class ImageUnacceptable(Invalid):
    msg_fmt = _('Image %(image_id)s is unacceptable: %(reason)s')


class ImageFormatMismatch(ImageUnacceptable):
    msg_fmt = _(
        'Image %(image_id)s is unacceptable: its content is %(detected)s '
        'but its disk_format says %(disk_format)s.'
    )


class ImageConversionFailed(ImageAgentException):
    msg_fmt = _(
        'Could not convert image %(image_id)s from %(source_format)s to '
        '%(target_format)s: %(reason)s'
    )


class ConversionLimitExceeded(ImageConversionFailed):
    msg_fmt = _(
        'Could not convert image %(image_id)s from %(source_format)s to '
        '%(target_format)s: qemu-img %(command)s went past its %(limit)s '
        'limit ([agent] qemu_img_*).'
    )


# -- the agent: local paths, transfers, RPC ---------------------------------


class InvalidPath(Invalid):
    msg_fmt = _('Invalid path %(path)s: %(reason)s')


class PathNotAllowed(InvalidPath):
    msg_fmt = _('Path %(path)s is not under an allowed directory (%(roots)s).')
    code = 403


class LocalFileNotFound(NotFound):
    msg_fmt = _('Local file %(path)s does not exist.')


class DestinationExists(Conflict):
    msg_fmt = _(
        'Destination %(path)s already exists with other content; '
        'ask for overwrite to replace it.'
    )


class InsufficientSpace(ImageAgentException):
    msg_fmt = _(
        'Not enough free space under %(path)s for image '
        '%(image_id)s: %(needed)d bytes needed, %(available)d '
        'available.'
    )
    code = 507


class OutOfSpace(InsufficientSpace):
    msg_fmt = _(
        'Ran out of space under %(path)s while writing image '
        '%(image_id)s: %(reason)s'
    )


class AgentBusy(ImageAgentException):
    msg_fmt = _(
        'The image agent is busy: %(limit)d transfers are running or '
        'waiting for a slot already; try again later.'
    )
    code = 503


class ImageUploadFailed(ImageAgentException):
    msg_fmt = _('Failed to upload image data from %(path)s: %(reason)s')


class AgentError(ImageAgentException):
    msg_fmt = _('The image agent failed to %(operation)s: %(reason)s')


class CacheDisabled(Invalid):
    msg_fmt = _('This agent has no image cache ([agent] cache_dir is unset).')


class CacheFull(InsufficientSpace):
    msg_fmt = _(
        'No room in the image cache for %(size)d more bytes (limit '
        '%(limit)d bytes): %(reason)s'
    )


class CacheEntryInUse(Conflict):
    msg_fmt = _('Cached image %(image_id)s is being read; try again later.')


class RPCVersionCapped(Invalid):
    msg_fmt = _(
        '%(method)s needs RPC API version %(version)s, above the version '
        'cap %(cap)s ([upgrade_levels] image_agent): upgrade the agents first.'
    )


class PolicyNotAuthorized(NotAuthorized):
    msg_fmt = _(
        '%(action)s needs one of the roles %(roles)s; the caller\'s token '
        'carries %(held)s.'
    )


class TokenValidationFailed(ImageAgentException):
    msg_fmt = _('Keystone could not validate the caller\'s token: %(reason)s')


class RequestExpired(ImageAgentException):
    msg_fmt = _(
        'Refused to start %(method)s: the request waited %(waited)s s for '
        'an agent, longer than the %(start_within)s s its caller waits.'
    )
    code = 408


class AgentUnavailable(ImageAgentException, messaging.MessagingTimeout):
    """The caller got no answer from an agent.

    Also a ``MessagingTimeout``, the class callers caught before.
    """

    msg_fmt = _('No answer from an image agent on %(target)s.')
    code = 503


_WHAT_TO_CHECK = _(
    'is image-agent running there, with the same transport_url and [agent] '
    'topic? Are this caller\'s configuration and credentials loaded?'
)


class AgentNotListening(AgentUnavailable):
    """Nothing was queued: the request did not run and never will."""

    msg_fmt = (
        _(
            'No image agent listens on %(target)s (the broker has no queue '
            '%(queue)s): '
        )
        + _WHAT_TO_CHECK
    )


class BrokerUnreachable(AgentUnavailable):
    """The caller lost the message broker during the call (RabbitMQ down
    or restarting): as after a timeout, the request may or may not have
    reached an agent."""

    msg_fmt = _(
        'The message broker could not be reached for a call to an image '
        'agent on %(target)s: %(reason)s. Is RabbitMQ up, and this '
        'caller\'s transport_url right?'
    )


class AgentTimeout(AgentUnavailable):
    """No answer in time: the agent will not start the request any more,
    but may have run it if it started in time (see ``deadline``)."""

    msg_fmt = (
        _('No answer from an image agent on %(target)s within %(seconds)s s: ')
        + _WHAT_TO_CHECK
        + '%(hint)s'
    )
