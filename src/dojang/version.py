"""dojang's version, written once (``pyproject.toml`` and model files read it from here)."""

__version__ = "0.1.0"
