"""The OPML subscription list (/feeds.opml) and the HTML preview of each feed (/feeds/<path>)."""

from __future__ import annotations

from collections.abc import Callable
from html.parser import HTMLParser

import pytest
from conftest import BASE_URL, WritePost, parse, rebuild
from flask import Flask
from flask.testing import FlaskClient
from lxml import etree

FORMATS = {"atom": "application/atom+xml", "rss": "application/rss+xml", "json": "application/feed+json"}
CHANNELS = {
    "all": ["all"],
    "category": ["category/health-science", "category/news", "category/sport"],
    "tag": ["tag/harbour", "tag/health", "tag/transport"],
    "author": ["author/ana-lopez", "author/sam-rivera"],
}
EVERY_PATH = [path for paths in CHANNELS.values() for path in paths]
TRICKY_TITLE = "Tides <b>rise</b> & fall"


class Page(HTMLParser):
    """What a reader's browser finds in a page: autodiscovery links, anchors and entry titles."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.alternates: set[tuple[str | None, str | None]] = set()
        self.hrefs: list[str] = []
        self.entry_titles: list[str] = []
        self._in_h3 = False
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "link" and found.get("rel") == "alternate":
            self.alternates.add((found.get("type"), found.get("href")))
        elif tag == "a" and found.get("href"):
            self.hrefs.append(str(found["href"]))
        elif tag == "h3":
            self._in_h3 = True
            self.entry_titles.append("")

    def handle_endtag(self, tag: str) -> None:
        if tag == "h3":
            self._in_h3 = False

    def handle_data(self, data: str) -> None:
        if self._in_h3:
            self.entry_titles[-1] += data


@pytest.fixture
def newsroom(write_post: WritePost) -> None:
    write_post("ferry.md", title="Ferry returns", date="2025-01-10T08:00:00Z", categories="[news]",
               tags="[harbour, transport]", author="Sam Rivera")
    write_post("tides.md", title=TRICKY_TITLE, date="2025-01-12T08:00:00Z", categories="[news]",
               author="Ana Lopez")
    write_post("old.md", title="Old news", date="2024-12-01T08:00:00Z", categories="[news]")
    write_post("clinic.md", title="Clinic hours", date="2025-01-11T09:30:00Z", categories="[Health & Science]",
               tags="[health]")
    write_post("match.md", title="Cup final", date="2025-01-09T18:00:00Z", categories="[sport]")


def local(url: str) -> str:
    """An absolute URL the service handed out -> the path for the test client."""
    assert url.startswith(BASE_URL + "/"), url
    return url[len(BASE_URL):]


# --- OPML ------------------------------------------------------------------------------------

def test_opml_lists_every_feed_as_opml_2(newsroom: None, client: FlaskClient) -> None:
    response = client.get("/feeds.opml")
    assert response.status_code == 200
    assert response.mimetype == "text/x-opml"
    assert response.mimetype_params.get("charset") == "utf-8"

    root = etree.fromstring(response.data)
    assert root.tag == "opml" and root.get("version") == "2.0"
    assert root.findtext("head/title") == "Example News feeds"
    body = root.find("body")
    assert body is not None

    feeds = [o for o in root.iter("outline") if o.get("xmlUrl")]
    urls = [o.get("xmlUrl") for o in feeds]
    assert sorted(urls) == sorted(f"{BASE_URL}/feeds/{path}.atom" for path in EVERY_PATH)
    assert len(feeds) == client.get("/healthz").json["feeds"] // len(FORMATS)
    # all posts at the top, then one folder per kind
    assert [o.get("xmlUrl") for o in body if o.get("xmlUrl")] == [f"{BASE_URL}/feeds/all.atom"]
    for kind, folder in (("category", "Categories"), ("tag", "Tags"), ("author", "Authors")):
        [outline] = [o for o in body if o.get("text") == folder]
        assert sorted(o.get("xmlUrl") for o in outline) == [f"{BASE_URL}/feeds/{p}.atom" for p in CHANNELS[kind]]


def test_every_opml_outline_leads_to_a_feed_and_a_preview(newsroom: None, client: FlaskClient) -> None:
    root = etree.fromstring(client.get("/feeds.opml").data)
    outlines = [o for o in root.iter("outline") if o.get("xmlUrl")]
    assert outlines
    for outline in outlines:
        xml_url, html_url = outline.get("xmlUrl"), outline.get("htmlUrl")
        assert outline.get("type") == "rss"
        assert outline.get("text") and outline.get("title") == outline.get("text")

        response = client.get(local(xml_url))
        assert response.status_code == 200, xml_url
        feed = parse(response)
        assert feed.feed.title == outline.get("title"), xml_url
        assert feed.entries, xml_url

        assert html_url == xml_url.removesuffix(".atom")
        preview = client.get(local(html_url))
        assert preview.status_code == 200, html_url
        assert preview.mimetype == "text/html", html_url


def test_index_links_the_opml_list(newsroom: None, client: FlaskClient) -> None:
    assert f"{BASE_URL}/feeds.opml" in Page(client.get("/").text).hrefs


def test_opml_is_revalidated_with_its_etag(newsroom: None, write_post: WritePost,
                                          make_app: Callable[..., Flask]) -> None:
    app = make_app()
    client = app.test_client()
    first = client.get("/feeds.opml")
    etag = first.headers["ETag"]
    assert etag.startswith('"') and etag.endswith('"') and len(etag) > 2
    # By its ETag only: it sends no Last-Modified, so a date cannot make it 304 (a client would never see a new list).
    assert "Last-Modified" not in first.headers
    far_future = "Fri, 01 Jan 2100 00:00:00 GMT"
    assert client.get("/feeds.opml", headers={"If-Modified-Since": far_future}).status_code == 200

    again = client.get("/feeds.opml", headers={"If-None-Match": etag})
    assert again.status_code == 304
    assert again.data == b""
    assert again.headers["ETag"] == etag
    assert client.get("/feeds.opml", headers={"If-None-Match": '"something-else"'}).status_code == 200

    write_post("weather.md", title="Storm warning", date="2025-01-13T06:00:00Z", categories="[weather]")
    rebuild(app)
    changed = client.get("/feeds.opml", headers={"If-None-Match": etag})
    assert changed.status_code == 200
    assert changed.headers["ETag"] != etag
    assert f"{BASE_URL}/feeds/category/weather.atom".encode() in changed.data


# --- previews --------------------------------------------------------------------------------

def test_category_preview_shows_newest_entries_escaped(newsroom: None, make_app: Callable[..., Flask]) -> None:
    client = make_app(max_items=2).test_client()
    response = client.get("/feeds/category/news")
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    html = response.text
    assert "Tides &lt;b&gt;rise&lt;/b&gt; &amp; fall" in html
    assert "<b>rise</b>" not in html
    page = Page(html)
    assert page.entry_titles == [TRICKY_TITLE, "Ferry returns"]  # newest first, at most max_items
    assert "Old news" not in html
    assert "3 posts" in html


def test_preview_shows_and_advertises_the_three_feeds(newsroom: None, client: FlaskClient) -> None:
    for path in ("category/news", "tag/harbour", "author/sam-rivera"):
        response = client.get(f"/feeds/{path}")
        assert response.status_code == 200, path
        page = Page(response.text)
        expected = {(media_type, f"{BASE_URL}/feeds/{path}.{fmt}") for fmt, media_type in FORMATS.items()}
        assert page.alternates == expected, path
        for _, url in expected:
            assert url in page.hrefs, url
            assert f"<code>{url}</code>" in response.text, url
            assert client.get(local(url)).status_code == 200, url


def test_all_posts_preview(newsroom: None, client: FlaskClient) -> None:
    response = client.get("/feeds/all")
    assert response.status_code == 200
    page = Page(response.text)
    assert page.entry_titles == [TRICKY_TITLE, "Clinic hours", "Ferry returns", "Cup final", "Old news"]
    assert (FORMATS["atom"], f"{BASE_URL}/feeds/all.atom") in page.alternates
    assert "5 posts" in response.text


def test_index_links_every_preview(newsroom: None, client: FlaskClient) -> None:
    hrefs = Page(client.get("/").text).hrefs
    for path in EVERY_PATH:
        assert f"{BASE_URL}/feeds/{path}" in hrefs, path
        assert client.get(f"/feeds/{path}").status_code == 200, path


@pytest.mark.parametrize("path", ["/feeds/category/nope", "/feeds/tag/nope", "/feeds/nope", "/feeds/category",
                                  "/feeds/category/news/extra"])
def test_unknown_preview_is_404(newsroom: None, client: FlaskClient, path: str) -> None:
    assert client.get(path).status_code == 404


@pytest.mark.parametrize("path", ["/", "/feeds/all", "/feeds/category/news", "/posts/ferry"])
def test_html_pages_carry_security_headers(newsroom: None, client: FlaskClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    csp = response.headers["Content-Security-Policy"]
    directives = {d.split()[0]: d.split()[1:] for d in csp.split(";") if d.strip()}
    assert directives["default-src"] == ["'none'"]  # no script may run
    assert "script-src" not in directives
    assert directives["frame-ancestors"] == ["'none'"]


def test_opml_is_not_sniffed_either(newsroom: None, client: FlaskClient) -> None:
    assert client.get("/feeds.opml").headers["X-Content-Type-Options"] == "nosniff"


def test_a_large_opml_list_is_gzipped_with_its_own_etag(write_post: WritePost,
                                                       make_app: Callable[..., Flask]) -> None:
    import gzip

    for n in range(30):
        write_post(f"p{n}.md", title=f"Post {n}", tags=f"[topic-{n}]")
    client = make_app().test_client()
    plain = client.get("/feeds.opml")
    assert len(plain.data) >= 1024 and "Content-Encoding" not in plain.headers
    zipped = client.get("/feeds.opml", headers={"Accept-Encoding": "gzip"})
    assert zipped.headers["Content-Encoding"] == "gzip" and gzip.decompress(zipped.data) == plain.data
    assert zipped.headers["ETag"] == plain.headers["ETag"][:-1] + '-gzip"'
    assert zipped.headers["Vary"] == "Accept-Encoding"
    again = client.get("/feeds.opml", headers={"Accept-Encoding": "gzip", "If-None-Match": zipped.headers["ETag"]})
    assert again.status_code == 304
