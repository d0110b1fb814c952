"""CauseFlow event backbone."""

__version__ = "0.1.0"
