"""JupyterLab in a real headless browser: Debian's chromium driven by Playwright (never a
browser Playwright downloads). The start page runs through the UI without errors; a student
lab shows nbgrader's Validate button. Screenshots are kept in the test's tmp_path."""

import shutil
from pathlib import Path

import pytest
import requests
from lab_server import jupyter_lab

pytestmark = pytest.mark.live
REPO = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
         "--disable-extensions", "--no-first-run", "--mute-audio"]
LAB8 = "labs/lab8-production-plan/lab8-production-plan.ipynb"


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    """A copy of the start page and a student lab: the browser's autosave writes there, not in git."""
    root = tmp_path_factory.mktemp("browser") / "course"
    (root / "notebooks").mkdir(parents=True)
    shutil.copy(REPO / "notebooks" / "00-start-here.ipynb", root / "notebooks")
    shutil.copytree(REPO / "labs" / "lab8-production-plan", root / "labs" / "lab8-production-plan")
    # Render every cell, not only those in view (JupyterLab 4 virtualizes long notebooks).
    settings = root.parent / "settings" / "@jupyterlab" / "notebook-extension"
    settings.mkdir(parents=True)
    (settings / "tracker.jupyterlab-settings").write_text('{"windowingMode": "none"}')
    # As `make lab` serves it: the learner's Jupyter configuration (jupyter/learner).
    with jupyter_lab(root, env={"SERVELAB_TARGET": "local",
                                "JUPYTER_CONFIG_PATH": str(REPO / "jupyter" / "learner")}) as server:
        yield root, server


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM:
        pytest.skip("no chromium: `make system` installs Debian's package when run as root")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        yield chromium
        chromium.close()


def open_notebook(browser, server, path: str):
    base, token = server
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(120_000)
    page.goto(f"{base}/lab/tree/{path}?token={token}")
    page.locator(".jp-NotebookPanel .jp-Cell").first.wait_for()
    # The status bar says "Idle" only once the kernel is connected; Run All before that does nothing.
    page.locator(".jp-StatusBar-Widget", has_text="| Idle").first.wait_for()
    return page


def menu(page, *labels: str) -> None:
    page.locator(".lm-MenuBar-itemLabel", has_text=labels[0]).first.click()
    for label in labels[1:]:
        page.locator(".lm-Menu-itemLabel", has_text=label).first.click()


def test_the_start_page_runs_all_its_cells_in_the_browser(browser, course, tmp_path):
    root, server = course
    page = open_notebook(browser, server, "notebooks/00-start-here.ipynb")
    menu(page, "Run", "Run All Cells")
    prompts = page.locator(".jp-NotebookPanel .jp-CodeCell .jp-InputPrompt")
    try:
        page.wait_for_function(
            """() => [...document.querySelectorAll('.jp-NotebookPanel .jp-CodeCell .jp-InputPrompt')]
                    .every(p => /\\[\\d+\\]/.test(p.textContent))""", timeout=180_000, polling=500)
    finally:
        page.screenshot(path=str(tmp_path / "start-here.png"), full_page=True)
    assert prompts.count() >= 2
    errors = page.locator('.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]')
    texts = [errors.nth(i).inner_text() for i in range(errors.count())]
    assert not [t for t in texts if "Traceback" in t or "Error" in t], texts
    assert page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.error']").count() == 0
    outputs = page.locator(".jp-NotebookPanel .jp-OutputArea-output").all_inner_texts()
    report = "\n".join(outputs)
    assert "ray" in report and "matches the course" in report, report[:2000]
    # The live dashboard rendered as a widget and showed the deployed app running.
    dashboard = page.locator(".servelab-dashboard")
    assert dashboard.count() == 1 and dashboard.is_visible()
    assert "Hello" in dashboard.inner_text() and "RUNNING" in dashboard.inner_text(), dashboard.inner_text()
    assert "stopped after" in dashboard.inner_text()
    # Waits show progress bars, finished green.
    bars = page.locator(".servelab-progress .progress-bar-success, .servelab-progress .jp-ProgressBar-success, "
                        ".servelab-progress .widget-progress")
    assert page.locator(".servelab-progress").count() >= 2
    assert "ok (" in page.locator(".servelab-progress").first.inner_text()
    assert bars.count() >= 2
    page.screenshot(path=str(tmp_path / "start-here.png"), full_page=True)
    assert (tmp_path / "start-here.png").stat().st_size > 10_000
    page.close()


def test_a_student_lab_offers_nbgraders_validate_button(browser, course, tmp_path):
    root, server = course
    page = open_notebook(browser, server, LAB8)
    validate = page.get_by_role("button", name="Validate")
    validate.first.wait_for()
    page.screenshot(path=str(tmp_path / "lab8.png"))
    validate.first.click()
    # nbgrader runs the notebook and reports; the untouched lab fails its tests.
    dialog = page.locator(".jp-Dialog")
    dialog.first.wait_for(timeout=180_000)
    assert "Validation Results" in dialog.first.inner_text() or "failed" in dialog.first.inner_text().lower()
    page.screenshot(path=str(tmp_path / "lab8-validated.png"))
    page.close()


def test_a_learners_jupyterlab_offers_learner_tools_only(browser, course, tmp_path):
    root, (base, token) = course
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(120_000)
    page.goto(f"{base}/lab/tree/{LAB8}?token={token}")
    page.get_by_role("button", name="Validate").first.wait_for()
    page.locator(".lm-MenuBar-itemLabel", has_text="Nbgrader").first.click()
    items = page.locator(".lm-Menu-itemLabel").all_inner_texts()
    page.screenshot(path=str(tmp_path / "nbgrader-menu.png"))
    assert "Assignment List" in items, items
    assert "Formgrader" not in items and "Course List" not in items, items
    page.keyboard.press("Escape")
    assert page.locator(".lm-TabBar-tab", has_text="Create Assignment").count() == 0  # no instructor sidebar
    # the news pop-up's plugin is off in the page's own configuration (it would ask after a while)
    disabled = page.evaluate("JSON.parse(document.getElementById('jupyter-config-data').textContent)"
                             ".disabledExtensions")
    assert "@jupyterlab/apputils-extension:announcements" in disabled, disabled
    page.close()
    # nor can the server be asked for them
    assert requests.get(f"{base}/formgrader", params={"token": token}, timeout=30).status_code == 404
    # while the learner's assignment list answers (400 without its course_id: the handler is there)
    assert requests.get(f"{base}/assignments", params={"token": token}, timeout=30).status_code == 400
