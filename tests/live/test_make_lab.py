"""`make lab` serves JupyterLab on the course's start page (fetched through the URL it prints)."""

import re
import subprocess
import threading
import time
from pathlib import Path

import pytest
import requests
from lab_server import stop_group

from servelab.cluster._ports import free_port

pytestmark = pytest.mark.live
REPO = Path(__file__).resolve().parents[2]


def test_make_lab_serves_the_start_page():
    port = free_port()
    lab = subprocess.Popen(["make", "lab", f"LAB_PORT={port}", "NO_BROWSER=1"], cwd=REPO,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           start_new_session=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(lab.stdout), daemon=True)
    reader.start()
    try:
        url = None
        deadline = time.monotonic() + 300
        while url is None:
            assert lab.poll() is None, "make lab exited:\n" + "".join(lines[-40:])
            assert time.monotonic() < deadline, "no URL printed:\n" + "".join(lines[-40:])
            found = [m for line in list(lines) for m in re.findall(rf"http://127\.0\.0\.1:{port}/\S*token=\w+", line)]
            url = found[0] if found else None
            time.sleep(0.5)
        token = url.split("token=")[1]
        page = requests.get(url, timeout=30)
        assert page.status_code == 200 and "JupyterLab" in page.text
        assert "/lab/tree/notebooks/00-start-here.ipynb" in page.url or "00-start-here" in url
        start = requests.get(f"http://127.0.0.1:{port}/api/contents/notebooks/00-start-here.ipynb",
                             headers={"Authorization": f"token {token}"}, timeout=30)
        assert start.status_code == 200 and start.json()["type"] == "notebook"
    finally:
        stop_group(lab)
