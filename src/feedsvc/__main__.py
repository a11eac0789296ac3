"""Lets `python -m feedsvc` behave like the `feedsvc` command."""

from feedsvc.cli import main

raise SystemExit(main())
