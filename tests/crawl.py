"""Walking the site as a user: every page reachable by links, parsed for its forms, links and
inline code (tests of CSRF, the content security policy, and pages with Redis down)."""
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

from django.urls import Resolver404, resolve


class Page(HTMLParser):
    """The links, POST forms (with whether each has a CSRF token) and inline code of a page."""

    def __init__(self):
        super().__init__()
        self.links: list[str] = []
        self.forms: list[dict] = []
        self.inline: list[str] = []
        self._form = None
        self._script_has_src = True

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "a" and a.get("href"):
            self.links.append(a["href"])
        if tag == "form":
            self._form = {"method": (a.get("method") or "get").lower(),
                          "action": a.get("action"), "csrf": False}
            self.forms.append(self._form)
        if tag == "input" and a.get("name") == "csrfmiddlewaretoken" and self._form:
            self._form["csrf"] = a.get("type") == "hidden" and bool(a.get("value"))
        if tag == "script":
            # A JSON data block (Django's json_script) is never run: not code for the CSP.
            self._script_has_src = "src" in a or a.get("type") == "application/json"
        for name in a:
            if name == "style" or name.startswith("on"):
                self.inline.append(f"<{tag} {name}=…>")

    def handle_endtag(self, tag):
        if tag == "form":
            self._form = None

    def handle_data(self, data):
        if self.lasttag == "script" and not self._script_has_src and data.strip():
            self.inline.append("<script> with inline code")


def crawl(client, start: str = "/", limit: int = 120, *, statuses: dict | None = None):
    """Follow the site's own links from ``start``, one page per route and query string; return
    the HTML pages that answered 200 (``statuses`` receives every URL's status)."""
    seen_routes, queue, pages = set(), [start], {}
    statuses = statuses if statuses is not None else {}
    while queue and len(pages) < limit:
        url = queue.pop(0)
        parts = urlsplit(url)
        if parts.netloc or not parts.path.startswith("/") or "logout" in parts.path:
            continue
        try:
            match = resolve(parts.path)
        except Resolver404:
            continue
        route = (match.route, bool(parts.query))
        if route in seen_routes or parts.path.startswith("/admin/") and len(pages) > limit // 2:
            continue
        seen_routes.add(route)
        response = client.get(url)
        statuses[url] = response.status_code
        if response.status_code != 200 or "html" not in response.get("Content-Type", ""):
            continue
        page = Page()
        page.feed(response.content.decode())
        pages[url] = (response, page)
        queue.extend(urljoin(url, link) for link in page.links)
    return pages
