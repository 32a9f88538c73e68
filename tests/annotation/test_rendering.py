from annotation.rendering import CACHE_MAX_CHARS, markdown_to_html


def test_untrusted_markup_is_escaped_or_removed():
    html = markdown_to_html(
        '<script>alert(1)</script>\n\n<svg onload="alert(2)"></svg>\n\n[x](javascript:alert(3)) '
        '<a href="https://example.com" onclick="alert(4)">y</a>\n\n<img src=x onerror=alert(5)>'
    )
    assert "<script" not in html and "<svg" not in html and "<img" not in html
    assert "<a " not in html and "&lt;a href" in html  # raw HTML is shown as text, never as a tag
    assert 'href="javascript:' not in html


def test_markdown_and_code_are_rendered():
    html = markdown_to_html(
        "**bold** [site](https://example.com)\n\n```python\nprint('hi')\n```\n\n| a |\n|---|\n| 1 |"
    )
    assert "<strong>bold</strong>" in html
    assert 'href="https://example.com"' in html and 'rel="noopener noreferrer nofollow"' in html
    assert 'class="language-python"' in html and '<span class="nb">print</span>' in html
    assert "<table>" in html


def test_text_survives_unicode_and_long_inputs():
    text = "right-to-left \u202e override and emoji \U0001f600"
    assert "\U0001f600" in markdown_to_html(text)
    long = "word " * (CACHE_MAX_CHARS // 4)
    assert markdown_to_html(long).startswith("<p>word")
