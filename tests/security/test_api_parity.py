"""Everything a lead or admin does on a page can be scripted: each page route has API routes that can do what it
does (tests/security/api_parity.py), checked against the URL tree and the permission matrix's methods."""

from django.urls import URLPattern, URLResolver, get_resolver

from .api_parity import API_FOR_PAGE, PAGE_ONLY
from .permission_matrix import ROUTES

WRITES = {"POST", "PUT", "PATCH", "DELETE"}


def _names(patterns, namespace=""):
    for p in patterns:
        if isinstance(p, URLResolver):
            if p.namespace != "admin":
                yield from _names(p.url_patterns, ":".join(filter(None, [namespace, p.namespace])))
        elif isinstance(p, URLPattern) and p.name:
            yield ":".join(filter(None, [namespace, p.name]))


def _methods() -> dict[str, set[str]]:
    methods: dict[str, set[str]] = {}
    for route in ROUTES:
        methods.setdefault(route.name, set()).update(route.methods)
    return methods


def test_every_page_route_has_an_api_counterpart_or_a_reason():
    pages = {name for name in _names(get_resolver().url_patterns) if ":" in name}
    assert len(pages) > 60  # the walk really found the pages
    missing = sorted(pages - set(API_FOR_PAGE) - set(PAGE_ONLY))
    assert not missing, f"pages with no API counterpart (add one, then a line in api_parity.py): {missing}"
    stale = sorted((set(API_FOR_PAGE) | set(PAGE_ONLY)) - pages)
    assert not stale, f"tests/security/api_parity.py names pages that do not exist: {stale}"
    assert not set(API_FOR_PAGE) & set(PAGE_ONLY)


def test_the_api_counterparts_exist_and_can_do_what_the_page_does():
    methods, api_names = _methods(), set(_names(get_resolver().url_patterns))
    gaps = []
    for page, apis in API_FOR_PAGE.items():
        unknown = [api for api in apis if api not in api_names or not api.startswith("api-")]
        assert not unknown, f"{page}: no such API route {unknown}"
        api_methods = set().union(*(methods.get(api, set()) for api in apis))
        page_methods = methods[page]
        if "GET" in page_methods and "GET" not in api_methods:
            gaps.append(f"{page} shows something none of {apis} returns (no GET)")
        if page_methods & WRITES and not api_methods & WRITES:
            gaps.append(f"{page} takes an action none of {apis} can (no POST/PUT/PATCH/DELETE)")
    assert not gaps, "\n".join(gaps)
