"""(channels) -> an OPML 2.0 subscription list of every feed, for importing into a reader in one go."""

from __future__ import annotations

from collections.abc import Iterable
from xml.etree import ElementTree as ET

from feedsvc.model import ChannelKind, FeedFormat, FeedInfo


def render_opml(title: str, owner: str, feeds: Iterable[FeedInfo]) -> bytes:
    """The list titled `title` by `owner` of `feeds`, all posts first, then a folder per kind."""
    root = ET.Element("opml", version="2.0")
    head = ET.SubElement(root, "head")
    ET.SubElement(head, "title").text = title
    ET.SubElement(head, "ownerName").text = owner
    # Nothing else in the head: `urlPublic` is not OPML 2.0, and the W3C validator's OPML rules also
    # reject `docs`; readers import the outlines alone.
    body = ET.SubElement(root, "body")
    folders: dict[ChannelKind, ET.Element] = {}
    for feed in feeds:
        channel, parent = feed.channel, body
        if channel.kind is not ChannelKind.ALL:  # a folder per kind
            if channel.kind not in folders:
                folders[channel.kind] = ET.SubElement(body, "outline", text=channel.kind.plural)
            parent = folders[channel.kind]
        ET.SubElement(parent, "outline", type="rss", text=feed.title, title=feed.title,
                      xmlUrl=feed.url(FeedFormat.ATOM), htmlUrl=feed.preview_url)
    return bytes(ET.tostring(root, encoding="utf-8", xml_declaration=True))
