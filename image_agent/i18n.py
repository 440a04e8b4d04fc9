"""oslo.i18n integration: ``_`` marks translatable user-facing messages."""

import oslo_i18n

_translators = oslo_i18n.TranslatorFactory(domain='image_agent')

_ = _translators.primary
