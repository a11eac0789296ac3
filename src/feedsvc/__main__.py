"""Lets `python -m feedsvc` behave like the `feedsvc` command."""

from feedsvc.cli import main

if __name__ == "__main__":  # not when a spawned worker process imports this module
    raise SystemExit(main())
