"""Markdown to safe HTML: markdown-it (CommonMark, raw HTML off) -> Pygments for code -> nh3 sanitizer.

Raw HTML in the source is escaped by markdown-it (html=False), and nh3 removes anything unsafe that could still
come through (javascript: links, event attributes). Only the tags and attributes below survive."""

from __future__ import annotations

from functools import lru_cache

import nh3
from markdown_it import MarkdownIt
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import TextLexer, get_lexer_by_name
from pygments.util import ClassNotFound

_ALLOWED_TAGS = {
    "a", "blockquote", "br", "code", "del", "em", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "li", "ol", "p",
    "pre", "span", "strong", "table", "tbody", "td", "th", "thead", "tr", "ul", "div", "s",
}  # fmt: skip
_ALLOWED_ATTRIBUTES = {"a": {"href", "title"}, "span": {"class"}, "div": {"class"}, "code": {"class"}, "pre": {"class"}}
# nowrap: markdown-it wraps the spans in <pre><code class="language-x">; CSS targets ".md pre".
_FORMATTER = HtmlFormatter(nowrap=True)


def _highlight(code: str, lang: str, _attrs) -> str:
    try:
        lexer = get_lexer_by_name(lang) if lang else TextLexer()
    except ClassNotFound:
        lexer = TextLexer()
    return highlight(code, lexer, _FORMATTER)


_md = (
    MarkdownIt("commonmark", {"html": False, "linkify": False, "highlight": _highlight})
    .enable("table")
    .enable("strikethrough")
)


def _render(text: str) -> str:
    rendered = _md.render(text)
    return nh3.clean(
        rendered,
        tags=_ALLOWED_TAGS,
        attributes=_ALLOWED_ATTRIBUTES,
        url_schemes={"http", "https", "mailto"},
        link_rel="noopener noreferrer nofollow",
    )


_render_cached = lru_cache(maxsize=1024)(_render)
CACHE_MAX_CHARS = 20_000  # the memo holds at most ~1024 x 2 x this many characters per process


def markdown_to_html(text: str) -> str:
    """Render untrusted markdown to HTML that is safe to insert into the page. Memoized per process for texts up to
    CACHE_MAX_CHARS (the same pair is rendered for K annotators and once more when prefetched)."""
    return _render_cached(text) if len(text) <= CACHE_MAX_CHARS else _render(text)


@lru_cache(maxsize=1)
def pygments_css() -> str:
    return _FORMATTER.get_style_defs(".md pre")
