"""Links the learner's browser can open: direct on a laptop, through jupyter-server-proxy on
Binder or a hub (checked against a real JupyterLab and a real local HTTP server)."""

import http.server
import threading
from functools import partial

import pytest
import requests
from lab_server import jupyter_lab

from servelab.cluster import _links as links


def test_direct_links_on_a_laptop(monkeypatch):
    monkeypatch.delenv("JUPYTERHUB_SERVICE_PREFIX", raising=False)
    monkeypatch.delenv(links.PREFIX_ENV, raising=False)
    assert links.browser_url(8265) == "http://127.0.0.1:8265/"
    assert links.browser_url(8000, "api/ask") == "http://127.0.0.1:8000/api/ask"


def test_proxied_links_on_binder_and_a_hub(monkeypatch):
    monkeypatch.delenv(links.PREFIX_ENV, raising=False)
    monkeypatch.setenv("JUPYTERHUB_SERVICE_PREFIX", "/user/ada-x1y2/")
    monkeypatch.delenv("JUPYTERHUB_PUBLIC_URL", raising=False)
    assert links.browser_url(8265) == "/user/ada-x1y2/proxy/8265/"
    monkeypatch.setenv("JUPYTERHUB_PUBLIC_URL", "https://hub.example.org/")
    assert links.browser_url(8000, "/-/healthz") == "https://hub.example.org/user/ada-x1y2/proxy/8000/-/healthz"
    monkeypatch.setenv(links.PREFIX_ENV, "")     # an explicit setting wins: direct links
    assert links.browser_url(8265) == "http://127.0.0.1:8265/"


def test_the_html_links_are_escaped():
    out = links.html_links({"a<b": "/x?y=1&z=2"}, "note")
    assert "a&lt;b" in out and "/x?y=1&amp;z=2" in out and "note" in out


@pytest.mark.live
def test_a_local_port_opens_through_the_server_proxy(tmp_path, monkeypatch):
    site = tmp_path / "site"
    site.mkdir()
    (site / "index.html").write_text("served on loopback")
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(site))
    backend = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=backend.serve_forever, daemon=True).start()
    root = tmp_path / "root"
    root.mkdir()
    try:
        with jupyter_lab(root) as (base, token):
            monkeypatch.setenv(links.PREFIX_ENV, f"{base}/proxy")
            url = links.browser_url(backend.server_port, "/index.html")
            assert url == f"{base}/proxy/{backend.server_port}/index.html"
            page = requests.get(url, headers={"Authorization": f"token {token}"}, timeout=30)
            assert page.status_code == 200 and page.text == "served on loopback"
            # Only someone logged into Jupyter gets through.
            anonymous = requests.get(url, timeout=30, allow_redirects=False)
            assert anonymous.status_code in (302, 403), anonymous.status_code
    finally:
        backend.shutdown()
        backend.server_close()
