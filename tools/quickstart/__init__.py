"""The quickstart: image-agent up and doing its job on one machine.

``tools/quickstart.sh`` installs what the machine lacks (RabbitMQ,
PostgreSQL, python3-venv, e2fsprogs) and then runs ``python3 -m
tools.quickstart start``, which

* starts (or reuses) the Keystone + Glance test deployment of
  ``tools.testenv`` in ``<state dir>/testenv``;
* builds (or reuses) a venv with image-agent installed editable;
* writes the agent's configuration from ``etc/image-agent/image-agent.conf``
  and starts (or reuses) ``image-agent`` in the background;
* makes a small genuine disk image (an MBR partition table and an ext2
  filesystem), uploads it through the agent, and then, through
  ``image-agent-client`` as the ``demo`` user, shows it, downloads it to a
  local path, updates a property and checks the file's sha512 against
  Glance's ``os_hash_value``.

Stdlib only: it runs with the system python3 before any venv exists. The
state dir is ``$IMAGE_AGENT_QUICKSTART_DIR`` or
``/tmp/image-agent-quickstart``.
"""
