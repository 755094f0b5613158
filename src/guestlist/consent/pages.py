"""The small server-rendered pages behind consent links (templates/ beside this file).

Pages load nothing from elsewhere and send no referrer, so the token in their URL does
not leak; they are never cached or indexed (`PAGE_HEADERS`).
"""

from __future__ import annotations

from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Robots-Tag": "noindex, nofollow",
}

_env = Environment(
    loader=PackageLoader("guestlist.consent", "templates"),
    autoescape=select_autoescape(default=True),
    undefined=StrictUndefined,
)


def render(template: str, **context: Any) -> str:
    """One page: `confirm.html`, `unsubscribe.html` or `message.html`."""
    return _env.get_template(template).render(**context)
