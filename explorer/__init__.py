"""eigen-explorer: the spectral structure of transformer language models, measured and shown."""

__version__ = "0.1.0"
