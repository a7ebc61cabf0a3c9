"""Generative Playground: the application that composes the panels (widgets) and engines."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("generative-playground")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.1.0"
