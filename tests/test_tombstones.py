"""RFC 6721: a deleted post announced as `at:deleted-entry` in its feeds' Atom documents, for a while."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

from conftest import NOW, WritePost, parse
from lxml import etree

from feedsvc.config import Settings
from feedsvc.publisher import Publisher

AT = "{http://purl.org/atompub/tombstones/1.0}"


def tombstones(body: bytes) -> list[tuple[str, str]]:
    return [(e.get("ref"), e.get("when")) for e in etree.fromstring(body).iter(f"{AT}deleted-entry")]


def test_a_deleted_post_is_announced_in_each_of_its_atom_feeds_for_the_days_set(
        write_post: WritePost, make_settings: Callable[..., Settings]) -> None:
    clock = [NOW]
    doomed = write_post("2025/doomed.txt", title="Doomed", date="2025-01-10-08-00-00", categories="[news]")
    write_post("2025/stays.txt", title="Stays", date="2025-01-09-08-00-00", categories="[news]")
    settings = make_settings(tombstone_days=7)
    publisher = Publisher(settings, clock=lambda: clock[0])
    before = publisher.rebuild()
    gone_id = parse(before.feeds["all.atom"].body).entries[0].id
    doomed.unlink()
    clock[0] = NOW + timedelta(minutes=5)
    after = publisher.rebuild([str(doomed)])
    for name in ("all.atom", "category/news.atom"):
        [(ref, when)] = tombstones(after.feeds[name].body)
        assert ref == gone_id and datetime.fromisoformat(when) <= clock[0]
        assert [e.title for e in parse(after.feeds[name].body).entries] == ["Stays"]
    assert b"deleted-entry" not in after.feeds["all.rss"].body and b"deleted-entry" not in after.feeds["all.json"].body
    assert after.stamps["all"] > before.stamps["all"]
    clock[0] = NOW + timedelta(days=8)  # the time set has passed: the documents lose it, and are dated anew
    later = publisher.rebuild()
    assert tombstones(later.feeds["all.atom"].body) == [] and later.stamps["all"] > after.stamps["all"]


def test_off_by_default(write_post: WritePost, make_settings: Callable[..., Settings]) -> None:
    doomed = write_post("doomed.txt", title="Doomed")
    write_post("stays.txt", title="Stays")
    publisher = Publisher(make_settings())
    publisher.rebuild()
    doomed.unlink()
    assert tombstones(publisher.rebuild([str(doomed)]).feeds["all.atom"].body) == []


def test_a_changed_id_leaves_a_tombstone_for_the_old_one_and_a_restart_keeps_it(
        write_post: WritePost, make_settings: Callable[..., Settings], tmp_path: Path) -> None:
    post = write_post("ferry.txt", title="Ferry", date="2025-01-10-08-00-00")
    settings = make_settings(tombstone_days=7, cache_dir=str(tmp_path / "cache"))
    publisher = Publisher(settings, clock=lambda: NOW)
    old_id = parse(publisher.rebuild().feeds["all.atom"].body).entries[0].id
    write_post("ferry.txt", title="Ferry", date="2025-01-11-08-00-00")
    snapshot = publisher.rebuild([str(post)])
    assert [ref for ref, _ in tombstones(snapshot.feeds["all.atom"].body)] == [old_id]
    publisher.persist()
    again = Publisher(settings, clock=lambda: NOW).rebuild()
    assert [ref for ref, _ in tombstones(again.feeds["all.atom"].body)] == [old_id]
    assert again.feeds["all.atom"].body == snapshot.feeds["all.atom"].body
