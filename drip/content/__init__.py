"""Reading content/: pillar pages, posts, and the links between them."""

from drip.content.headings import READING_PATH_HEADINGS
from drip.content.links import absolute_url, add_utm, resolve_article
from drip.content.pillar import read_pillar
from drip.content.posts import ContentIndex, load_content, read_post

__all__ = [
    "READING_PATH_HEADINGS",
    "ContentIndex",
    "absolute_url",
    "add_utm",
    "load_content",
    "read_pillar",
    "read_post",
    "resolve_article",
]
