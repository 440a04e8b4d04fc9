# Sphinx configuration of image-agent's documentation (tox -e docs).

project = 'image-agent'
copyright = 'image-agent developers'  # noqa: A001
author = 'image-agent developers'

extensions = [
    'openstackdocstheme',
    'oslo_config.sphinxext',
    'oslo_config.sphinxconfiggen',
]
exclude_patterns = ['_build']
html_theme = 'openstackdocs'
html_static_path = ['_static']

# openstackdocstheme: the repository the "report a bug" and source links
# point to, and pygments' style as in the other projects' guides.
openstackdocs_repo_name = 'openstack/image-agent'
openstackdocs_bug_project = 'image-agent'
openstackdocs_bug_tag = 'doc'
openstackdocs_auto_name = False
pygments_style = 'native'

# oslo_config.sphinxconfiggen writes the sample file into _static from the
# same generator configuration as tox -e genconfig.
config_generator_config_file = [
    (
        '../../etc/image-agent/image-agent-config-generator.conf',
        '_static/image-agent',
    ),
]

# sphinx-build -b man: the manual pages of the commands.
man_pages = [
    (
        'cli/image-agent-client',
        'image-agent-client',
        'the image-agent command-line client',
        [author],
        1,
    ),
    (
        'cli/image-agent-status',
        'image-agent-status',
        'checks of an image-agent deployment before and after an upgrade',
        [author],
        1,
    ),
]
