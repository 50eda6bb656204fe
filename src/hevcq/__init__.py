"""hevcq: a video transcoding farm, from one machine to an elastic AWS fleet."""

__version__ = "0.1.0"
