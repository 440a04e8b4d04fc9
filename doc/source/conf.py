# Sphinx configuration of image-agent's documentation (tox -e docs).

project = 'image-agent'
copyright = 'image-agent developers'  # noqa: A001
author = 'image-agent developers'

extensions = ['oslo_config.sphinxext']
exclude_patterns = ['_build']
html_theme = 'alabaster'
html_theme_options = {
    'description': 'Glance images to local disks, over RPC',
}
# Options in the configuration reference are cross-referenced by
# oslo_config.sphinxext (:oslo.config:option:`agent.download_roots`).
