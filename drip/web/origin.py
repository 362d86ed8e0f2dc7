"""Cross-site form posts refused: the Origin (or, without it, the Referer) must be the site's own.

SameSite cookies do not help here (drip sets none) and a form on any page can post to
drip. A browser names where a POST comes from in Origin, or ``null`` for an opaque
origin (a sandboxed frame, a page with ``Referrer-Policy: no-referrer``): both refused
unless they are the public base URL's origin or the host being served. A request
with neither header is accepted: some privacy settings strip both, and a forged
cross-site post from a browser always carries one of them.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.requests import Request

_DEFAULT_PORTS = {"http": "80", "https": "443"}


def origin_of(url: str) -> str | None:
    """``scheme://host[:port]`` in lower case, the default port left out; None if not an http(s) URL."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    scheme, host = parts.scheme.lower(), (parts.hostname or "")
    if scheme not in _DEFAULT_PORTS or not host:
        return None
    if ":" in host:
        host = f"[{host}]"
    shown = "" if port is None or str(port) == _DEFAULT_PORTS[scheme] else f":{port}"
    return f"{scheme}://{host}{shown}"


def allowed_origins(request: Request, base_url: str) -> set[str]:
    """The public site's origin and the origin of the host this request was sent to."""
    found = {origin_of(base_url), origin_of(f"{request.url.scheme}://{request.headers.get('host', '')}")}
    return {o for o in found if o is not None}


def is_cross_site(request: Request, base_url: str) -> bool:
    """True when the browser says the post comes from another origin (or an opaque one)."""
    claimed = request.headers.get("origin")
    if claimed is None:
        referer = request.headers.get("referer")
        if referer is None:
            return False
        claimed = referer
    return origin_of(claimed) not in allowed_origins(request, base_url)
