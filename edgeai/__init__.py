"""edgeai: the reference library of the course *Neural Architecture Search for Edge AI*."""

__version__ = "0.1.0"
