"""Addresses the learner's browser can open, wherever the notebook runs.

The kernel always talks to a local cluster on 127.0.0.1. The learner's browser can only
do the same when it runs on the same machine (`make lab` on a laptop). On Binder or a
JupyterHub the browser is elsewhere, and jupyter-server-proxy forwards
`<server prefix>/proxy/<port>/` to 127.0.0.1:<port> for whoever is logged into Jupyter.
"""

from __future__ import annotations

import html
import os

from servelab.cluster._ports import LOOPBACK

PREFIX_ENV = "SERVELAB_PROXY_PREFIX"   # "/proxy" behind plain `jupyter lab` on a remote host; "" turns it off


def proxy_prefix() -> str | None:
    """The path under which jupyter-server-proxy serves local ports, or None for direct links."""
    explicit = os.environ.get(PREFIX_ENV)
    if explicit is not None:
        return explicit.rstrip("/") or None
    hub = os.environ.get("JUPYTERHUB_SERVICE_PREFIX")   # set by Binder and JupyterHub: /user/<name>/
    if not hub:
        return None
    public = os.environ.get("JUPYTERHUB_PUBLIC_URL", "").rstrip("/")   # absolute when the hub says where it is
    return f"{public}/{hub.strip('/')}/proxy"


def browser_url(port: int, path: str = "/") -> str:
    """Where the learner's browser reaches a local port."""
    prefix = proxy_prefix()
    path = path if path.startswith("/") else "/" + path
    return f"{prefix}/{port}{path}" if prefix else f"http://{LOOPBACK}:{port}{path}"


def html_links(links: dict[str, str], note: str = "") -> str:
    """Links as one line of HTML for a notebook cell's output."""
    items = " · ".join(f'<a href="{html.escape(url)}" target="_blank">{html.escape(name)}</a>'
                       for name, url in links.items())
    return f"<div>{items}{(' — ' + html.escape(note)) if note else ''}</div>"
