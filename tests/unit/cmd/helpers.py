"""What the tests of image-agent-client share."""

from image_agent.cmd import client

IMAGE_ID = '9b6ab1f6-56cc-4b4c-9d53-2b3e5e6f5a01'


def parse(*argv):
    """The arguments of ``image-agent-client argv...``."""
    return client.build_parser(list(argv)).parse_args(argv)
