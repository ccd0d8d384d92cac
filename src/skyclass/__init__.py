"""skyclass: flying-object image classification from raw photos to an HTTP API."""

__version__ = "0.1.0"
