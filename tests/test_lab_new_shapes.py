"""The new feed shapes as real clients other people wrote read them: a configured feed with the summary
policy, one with the excerpt policy, `featured` and a per-language feed, from a running `feedsvc serve`.

Each client subscribes to one of them, polls, and must show exactly the entries (ids and titles) the
server serves; a second poll with nothing changed must add nothing and, for clients that send
validators, be answered 304."""

from __future__ import annotations

from pathlib import Path

import feedparser
import pytest
from conftest import front_matter_post
from lab.clients import ADAPTERS, Entry, make_client, missing
from lab.proxy import RecordingProxy
from serving import serve

pytestmark = pytest.mark.system

CONFIG = """
[[feeds]]
slug = "digest"
title = "Digest"
filter = "everything NOT tag sponsored"
content = "summary"

[[feeds]]
slug = "teasers"
title = "Teasers"
filter = "category news"
content = "excerpt"
"""
FEEDS = ("/feeds/digest.atom", "/feeds/teasers.rss", "/feeds/featured.atom", "/feeds/lang/fr.rss")


@pytest.mark.parametrize("name", sorted(ADAPTERS))
def test_every_client_reads_the_new_feed_shapes(name: str, tmp_path: Path) -> None:
    if needs := missing(name):
        pytest.skip(f"{name} needs {', '.join(needs)}")
    content = tmp_path / "content"
    content.mkdir()
    posts = {
        "ferry.txt": dict(title="Ferry returns", date="2025-01-10-08-00-00", categories="[news]", featured="true",
                          description="The ferry is back.", body="First part.\n\n<!--more-->\n\nThe rest."),
        "ad.txt": dict(title="Buy boats", date="2025-01-11-08-00-00", categories="[news]", tags="[sponsored]"),
        "fete.txt": dict(title="La fête du port", date="2025-01-12-08-00-00", categories="[culture]", lang="fr",
                         featured="true"),
    }
    for file, fields in posts.items():
        (content / file).write_text(front_matter_post(**fields), "utf-8")
    config = tmp_path / "feedsvc.toml"
    config.write_text(CONFIG, "utf-8")
    with serve(content, tmp_path, FEEDSVC_CONFIG=str(config)) as served, \
            RecordingProxy(served.url) as proxy:
        served_entries = {}
        for path in FEEDS:
            parsed = feedparser.parse(f"{served.url}{path}")
            assert not parsed.bozo and parsed.entries, path
            served_entries[path] = sorted(Entry(e.id, e.title) for e in parsed.entries)
        for number, path in enumerate(FEEDS):  # one feed a client: some keep one item per id across feeds
            client = make_client(name, tmp_path / f"client-{number}")
            try:
                client.subscribe(f"{proxy.url}{path}")
                client.poll()
                view = client.view()
                shown = sorted(view.get(f"{proxy.url}{path}", []))
                assert shown == served_entries[path], (name, path, shown, client.errors)
                for _ in range(client.unconditional_polls - 1):  # newsboat stores validators from its third
                    client.poll()
                before = len(proxy.exchanges)
                client.poll()
                assert client.view() == view
                if client.sends_validators:
                    statuses = [x.status for x in proxy.exchanges[before:] if x.path == path]
                    assert set(statuses) <= {304}, (name, path, statuses)  # feed2exec may not ask at all
            finally:
                client.close()
