"""list_opts, for oslo-config-generator, covers every registered option."""

import importlib
import importlib.metadata
import pkgutil

from keystoneauth1 import loading as ks_loading
from oslo_config import cfg

import image_agent.conf
from image_agent.conf import opts


def _group_name(group) -> str:
    return group.name if isinstance(group, cfg.OptGroup) else group


def _listed() -> dict[str, set[str]]:
    listed: dict[str, set[str]] = {}
    for group, group_opts in opts.list_opts():
        listed.setdefault(_group_name(group), set()).update(
            o.dest for o in group_opts
        )
    return listed


def _option_modules():
    """Every module of image_agent.conf that registers options."""
    for info in pkgutil.iter_modules(image_agent.conf.__path__):
        module = importlib.import_module(f'image_agent.conf.{info.name}')
        if hasattr(module, 'register_opts'):
            yield module


def _options(conf: cfg.ConfigOpts) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {'DEFAULT': set()}
    for name in conf:
        if isinstance(conf[name], cfg.ConfigOpts.GroupAttr):
            found[name] = set(conf[name])
        else:
            found['DEFAULT'].add(name)
    return found


def _registered() -> dict[str, set[str]]:
    """What the agent registers, oslo.config's own options left out."""
    builtin = _options(cfg.ConfigOpts())
    private = cfg.ConfigOpts()
    for module in _option_modules():
        module.register_opts(private)
    # What loading the [glance] service credentials registers at run time.
    private.register_opts(
        ks_loading.get_auth_plugin_conf_options('password'), group='glance'
    )
    return {
        group: names - builtin.get(group, set())
        for group, names in _options(private).items()
    }


def test_every_option_module_is_listed():
    modules = {m.__name__ for m in _option_modules()}
    assert {'image_agent.conf.default', 'image_agent.conf.glance'} <= modules


def test_list_opts_covers_every_registered_option():
    listed = _listed()
    for group, names in _registered().items():
        missing = names - listed.get(group, set())
        assert not missing, f'[{group}] not in list_opts: {sorted(missing)}'


def test_list_opts_names_the_agent_groups_once_each():
    groups = [_group_name(g) for g, _ in opts.list_opts()]
    assert len(groups) == len(set(groups))
    assert {'DEFAULT', 'glance'} <= set(groups)


def test_list_opts_has_no_duplicate_options():
    for group, group_opts in opts.list_opts():
        names = [o.dest for o in group_opts]
        assert len(names) == len(set(names)), _group_name(group)


def test_list_opts_is_the_config_generator_entry_point():
    (entry_point,) = [
        ep
        for ep in importlib.metadata.entry_points(group='oslo.config.opts')
        if ep.name == 'image-agent'
    ]
    assert entry_point.load() is opts.list_opts
