"""The ``hevcq`` command line: ``app`` (shared), ``farm`` and ``library`` commands, ``main``."""
