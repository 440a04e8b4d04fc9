"""Glance client errors -> image-agent exceptions.

The translated exception is raised ``from`` the original, so the original
traceback stays attached for logs and debugging.
"""

from glanceclient import exc as glance_exc
from keystoneauth1 import exceptions as ks_exc
import requests

from image_agent import exception


def _reason(error: Exception) -> str:
    details = getattr(error, 'details', None)
    return str(details) if details else str(error)


def translate_image_exception(image_id: str, error: Exception) -> Exception:
    """The exception to raise for ``error`` raised by a call on one image."""
    if isinstance(
        error, (glance_exc.HTTPForbidden, glance_exc.HTTPUnauthorized)
    ):
        return exception.ImageNotAuthorized(image_id=image_id)
    if isinstance(error, glance_exc.HTTPNotFound):
        return exception.ImageNotFound(image_id=image_id)
    if isinstance(error, glance_exc.HTTPConflict):
        return exception.ImageConflict(
            image_id=image_id, reason=_reason(error)
        )
    if isinstance(error, glance_exc.HTTPBadRequest):
        return exception.Invalid(reason=_reason(error))
    if isinstance(error, glance_exc.HTTPOverLimit):
        return exception.ImageLimitExceeded(reason=_reason(error))
    return _translate_other(error)


def translate_plain_exception(error: Exception) -> Exception:
    """The exception to raise for ``error`` from a call on no one image."""
    if isinstance(
        error, (glance_exc.HTTPForbidden, glance_exc.HTTPUnauthorized)
    ):
        return exception.NotAuthorized(_reason(error))
    if isinstance(error, glance_exc.HTTPNotFound):
        return exception.NotFound(_reason(error))
    if isinstance(error, glance_exc.HTTPConflict):
        return exception.Conflict(reason=_reason(error))
    if isinstance(error, glance_exc.HTTPBadRequest):
        return exception.Invalid(reason=_reason(error))
    if isinstance(error, glance_exc.HTTPOverLimit):
        return exception.ImageLimitExceeded(reason=_reason(error))
    return _translate_other(error)


def _translate_other(error: Exception) -> Exception:
    """Whatever the specific translations left: other HTTP answers and
    request failures that are not connection problems."""
    if isinstance(error, glance_exc.HTTPException):
        code = getattr(error, 'code', None)
        if isinstance(code, int) and 400 <= code < 500:
            return exception.Invalid(reason=str(error))
        return exception.GlanceError(reason=str(error))
    if isinstance(
        error, (ks_exc.ClientException, requests.exceptions.RequestException)
    ):
        return exception.GlanceError(reason=str(error))
    return error


def reraise_translated(error: Exception, image_id: str | None = None):
    """Raise the translation of ``error``, chained to it."""
    if image_id is None:
        translated = translate_plain_exception(error)
    else:
        translated = translate_image_exception(image_id, error)
    if translated is error:
        raise error
    raise translated from error
