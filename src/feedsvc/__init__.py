"""feedsvc: a folder of posts in, always-fresh RSS and Atom feeds out."""

__version__ = "0.1.0"

from feedsvc.app import create_app

__all__ = ["__version__", "create_app"]
