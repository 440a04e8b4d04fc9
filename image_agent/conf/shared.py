"""Registering options on a ConfigOpts that another service also fills.

``image_agent.image.glance`` is imported into Cinder's and Nova's processes
in place of their own image module, and its options live on the same global
``cfg.CONF``. Those services registered options of the same names first
(``[DEFAULT] host`` and ``auth_strategy``, ``[glance] region_name``,
``api_servers``, ``num_retries``, the TLS options...), with their own help
text and choices, so oslo.config refuses ours as duplicates. They mean the
same thing (Cinder's ``[glance] region_name`` is the region of its Glance
endpoints, as ours): the host service's definition is kept and read.
"""

from oslo_config import cfg
from oslo_config import types
from oslo_log import log as logging

LOG = logging.getLogger(__name__)


# Types whose values are plain strings, however they are checked.
_STRING_TYPES = (
    types.String,
    types.HostAddress,
    types.Hostname,
    types.IPAddress,
    types.URI,
)


def _same_kind(ours: cfg.Opt, theirs: cfg.Opt) -> bool:
    """Both options give values of the same Python type."""
    if type(ours.type) is type(theirs.type):
        return True
    return isinstance(ours.type, _STRING_TYPES) and isinstance(
        theirs.type, _STRING_TYPES
    )


def register_beside(
    conf: cfg.ConfigOpts, opts: list[cfg.Opt], group: str | None = None
) -> None:
    """Register ``opts``, keeping a same-named option already registered.

    An option registered before under the same name but of another kind
    (an integer where we read a string) is a real conflict: that error is
    raised as oslo.config raises it.
    """
    for opt in opts:
        try:
            conf.register_opt(opt, group=group)
        except cfg.DuplicateOptError:
            theirs = conf._get_opt_info(opt.dest, group)['opt']
            if not _same_kind(opt, theirs):
                raise
            LOG.debug(
                'Option [%s] %s was registered by the host service; '
                'its definition is used',
                group or 'DEFAULT',
                opt.dest,
            )


def register_group(conf: cfg.ConfigOpts, group: cfg.OptGroup) -> None:
    """Register ``group`` on ``conf`` with a table of options of its own.

    oslo.config keeps a shallow copy of the ``OptGroup`` it is given, which
    shares the given object's table of options: an option registered in
    that group on one ConfigOpts would then appear on every ConfigOpts that
    registers the same module-level group, before or after (a private
    ConfigOpts holding keystoneauth's password options made the global
    ``CONF`` require ``[glance] auth_url``).
    """
    conf.register_group(
        cfg.OptGroup(
            group.name,
            title=group.title,
            help=group.help,
            dynamic_group_owner=group.dynamic_group_owner,
            driver_option=group.driver_option,
        )
    )
