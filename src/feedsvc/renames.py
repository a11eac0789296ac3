"""Channels renamed or retired in the configuration: checked once at start-up, each rename made one hop.

A feed's URL never just disappears: a renamed channel's URLs answer 301 to the new ones, a retired
channel's 410 (see web and export). Values come as configured (`[redirects]`, `retired`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from feedsvc.model import is_channel_path


def check_renames(redirects: Iterable[tuple[str, str]], retired: Iterable[str]) -> None:
    """Well-formed paths, none both renamed and retired, no circles; a ValueError says which entry is wrong."""
    retired = set(retired)
    for path in sorted(retired):
        if not is_channel_path(path):
            raise ValueError(f"FEEDSVC_RETIRED (retired): {path!r} {_NOT_A_CHANNEL}")
    moved = dict(redirects)
    for old, new in moved.items():
        entry = f"FEEDSVC_REDIRECTS ([redirects]): {old!r} = {new!r}"
        for path in (old, new):
            if not (is_channel_path(path) or path == new == "all"):  # all posts may be a new home, never an old one
                raise ValueError(f"{entry}: {path!r} {_NOT_A_CHANNEL}")
        if clash := next((path for path in (old, new) if path in retired), None):
            raise ValueError(f"{entry}: {clash!r} is also retired")
    for old in moved:
        if _is_circle(hops := _hops(old, moved)):
            raise ValueError(f"FEEDSVC_REDIRECTS ([redirects]): {old!r} = {moved[old]!r}: the renames go round "
                              f"in a circle ({' -> '.join(hops)})")


def _hops(old: str, moved: Mapping[str, str]) -> list[str]:
    """The renames from `old` on, ending at the first name met twice (a circle) or not renamed."""
    hops = [old]
    while (new := moved.get(hops[-1])) is not None:
        hops.append(new)
        if new in hops[:-1]:
            break
    return hops


def _is_circle(hops: list[str]) -> bool:
    return hops[-1] in hops[:-1]


def one_hop(redirects: Iterable[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    """Each rename to where it ends up, sorted, so readers get one redirect, not a chain."""
    moved = dict(redirects)
    return tuple(sorted((old, _last_hop(old, moved)) for old in moved))


def _last_hop(old: str, moved: Mapping[str, str]) -> str:
    """Where a rename ends up when the new name was renamed again: readers get one redirect, not a chain.
    A circle is left as it was written, for check_renames() to report."""
    hops = _hops(old, moved)
    return moved[old] if _is_circle(hops) else hops[-1]


_NOT_A_CHANNEL = ("is not a channel path: category/, tag/ or author/ and a slug of a-z, 0-9 and single "
                  "hyphens, as in the feed's URL without /feeds/ and the extension")
