"""``python -m hevcq``: the same as the ``hevcq`` command."""

from hevcq.cli import entry

entry()
