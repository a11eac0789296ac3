"""(channels) -> an OPML 2.0 subscription list of every feed, for importing into a reader in one go."""

from __future__ import annotations

from collections.abc import Iterable
from xml.etree import ElementTree as ET

from feedsvc.config import Settings
from feedsvc.model import Channel, FeedFormat
from feedsvc.urls import feed_title, feed_url, preview_url

_FOLDERS = {"category": "Categories", "tag": "Tags", "author": "Authors"}


def render_opml(settings: Settings, channels: Iterable[Channel]) -> bytes:
    root = ET.Element("opml", version="2.0")
    head = ET.SubElement(root, "head")
    ET.SubElement(head, "title").text = f"{settings.site_title} feeds"
    ET.SubElement(head, "ownerName").text = settings.author
    # Nothing else in the head: `urlPublic` is not OPML 2.0, and the W3C validator's OPML rules also
    # reject `docs`; readers import the outlines alone.
    body = ET.SubElement(root, "body")
    folders: dict[str, ET.Element] = {}
    for channel in channels:
        parent = body
        if channel.kind in _FOLDERS:
            if channel.kind not in folders:
                folders[channel.kind] = ET.SubElement(body, "outline", text=_FOLDERS[channel.kind])
            parent = folders[channel.kind]
        title = feed_title(settings, channel)
        ET.SubElement(parent, "outline", type="rss", text=title, title=title,
                      xmlUrl=feed_url(settings, channel, FeedFormat.ATOM), htmlUrl=preview_url(settings, channel))
    return bytes(ET.tostring(root, encoding="utf-8", xml_declaration=True))
