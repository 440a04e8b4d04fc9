# Sphinx configuration of image-agent's release notes (tox -e releasenotes).
# reno's extension reads releasenotes/notes from the git history.

project = 'image-agent Release Notes'
copyright = 'image-agent developers'  # noqa: A001
author = 'image-agent developers'

extensions = ['openstackdocstheme', 'reno.sphinxext']
exclude_patterns = ['_build']
html_theme = 'openstackdocs'
html_static_path = ['_static']
openstackdocs_repo_name = 'openstack/image-agent'
openstackdocs_bug_project = 'image-agent'
openstackdocs_bug_tag = 'releasenotes'
openstackdocs_auto_name = False
pygments_style = 'native'
