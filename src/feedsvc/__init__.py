"""feedsvc: a folder of posts in, always-fresh RSS and Atom feeds out."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = ["__version__", "create_app"]

if TYPE_CHECKING:
    from feedsvc.app import create_app


def __getattr__(name: str) -> Any:
    """`create_app`, imported on first use (PEP 562): every parse worker process imports this
    package (through feedsvc.scan), and should not pay for Flask, APScheduler, watchdog and the rest."""
    if name == "create_app":
        from feedsvc.app import create_app

        globals()["create_app"] = create_app  # later lookups skip this function
        return create_app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
