"""Hostile submissions through `servelab grade`: each must cost only its own points,
earn nothing it did not earn, leave the gradebook and course intact, and leave nothing
running. Ten quiz submissions make one mixed batch (no cluster); four lab 1
submissions attack the live-endpoint tests."""

import os
import shutil
import time
from pathlib import Path

import nbformat
import psutil
import pytest
from submissions import quiz_answers, submit, why_failed

from servelab.course import layout
from servelab.grading import _autograde as autograde
from servelab.grading import _course as grading
from servelab.grading import _sandbox as sandbox
from servelab.grading._labs import scratch_course

pytestmark = [pytest.mark.live,
              pytest.mark.skipif(bool(sandbox.unavailable()), reason=sandbox.unavailable() or "ok")]

QUIZ = "quiz-scenarios"
LAB1 = "lab1-serve-basics"
MARK = "servelab-adversary"  # in the command line of every process a submission leaves behind


def quiz_submission(course: Path, answers: dict[str, str], prelude: str = "",
                    postlude: str = "") -> nbformat.NotebookNode:
    """The student notebook with answers filled in; `prelude` runs first in the first answer
    cell, `postlude` last in the last one."""
    nb = grading.fill(course / "release" / QUIZ / f"{QUIZ}.ipynb", answers)
    cells = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("solution")]
    cells[0].source = prelude + "\n" + cells[0].source
    cells[-1].source = cells[-1].source + "\n" + postlude
    return nb


def leftovers() -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        try:
            if MARK in " ".join(proc.info["cmdline"] or []):
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return found


# What each hostile quiz submission does first, in its first answer cell.
# Answers wrongly, then copies the right answers out of any solution or gradebook it can read.
READ_SECRETS = f"""
import glob, os, re
sources = glob.glob(os.path.join({str(layout().grading)!r}, "source", "{QUIZ}", "*.ipynb"))
sources += glob.glob(os.path.join(os.environ["COURSE"], "source", "{QUIZ}", "*.ipynb"))
sources += glob.glob(os.path.join(os.environ["COURSE"], "gradebook.db"))
for path in sources:
    text = open(path, errors="replace").read()
    for name, letter in re.findall(r'(answer_\\w+)(?: ==? |, )\\\\?"(\\w)', text):
        globals()[name] = letter
"""
WRITE_OUTSIDE = """
import os, pathlib
for target in [os.path.join(os.environ["COURSE"], "gradebook.db"), os.environ["REPO_FILE"],
               "/tmp/servelab-adversary-was-here"]:
    try:
        pathlib.Path(target).write_text("overwritten by a submission")
    except OSError:
        pass
"""
BACKGROUND = f"""
import subprocess, sys
for _ in range(2):
    subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3600)  # {MARK}"],
                     start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
subprocess.Popen(["sh", "-c", "nohup sleep 3600 {MARK} >/dev/null 2>&1 &"])
"""
# Every later cell holding an assert runs as an empty cell: no error, so nbgrader alone
# would give its points.
SWALLOW_ASSERTS = """
get_ipython().input_transformers_cleanup.append(
    lambda lines: [] if any("assert" in line for line in lines) else lines)
"""


@pytest.fixture(scope="module")
def quiz_batch():
    course = scratch_course()
    grading.nbgrader(["generate_assignment", QUIZ], cwd=course)
    repo_file = layout().grading / "nbgrader_config.py"
    before = repo_file.read_bytes()
    os.environ["COURSE"], os.environ["REPO_FILE"] = str(course), str(repo_file)
    batch = {
        "full": (quiz_submission(course, quiz_answers(10)), 10),
        "partial": (quiz_submission(course, quiz_answers(6)), 6),
        "corrupt": (None, None),
        "loops": (quiz_submission(course, quiz_answers(10), "while True:\n    pass\n"), 0),
        "exits": (quiz_submission(course, quiz_answers(10), "import os\nos._exit(3)\n"), 0),
        "reads": (quiz_submission(course, quiz_answers(0), postlude=READ_SECRETS), 0),
        "writes": (quiz_submission(course, quiz_answers(0), WRITE_OUTSIDE), 0),
        "floods": (quiz_submission(course, quiz_answers(10), "for _ in range(100):\n    print('x' * 1_000_000)\n"), 10),
        "daemons": (quiz_submission(course, quiz_answers(10), BACKGROUND), 10),
        "swallows": (quiz_submission(course, quiz_answers(0), SWALLOW_ASSERTS), 0),
    }
    for student, (nb, _) in batch.items():
        submit(course, QUIZ, student, nb, raw="{ not a notebook" if nb is None else None)
    try:
        start = time.monotonic()
        results = {r.student: r for r in autograde.grade(course, QUIZ, workers=2, limit_s=60, show=False)}
        yield course, batch, results, time.monotonic() - start, before, repo_file
    finally:
        del os.environ["COURSE"], os.environ["REPO_FILE"]
        for proc in leftovers():
            proc.kill()
        Path("/tmp/servelab-adversary-was-here").unlink(missing_ok=True)
        if repo_file.read_bytes() != before:
            repo_file.write_bytes(before)
        shutil.rmtree(course, ignore_errors=True)


def test_every_submission_gets_its_expected_score(quiz_batch):
    _, batch, results, _, _, _ = quiz_batch
    got = {s: results[s].score for s in batch}
    assert got == {s: want for s, (_, want) in batch.items()}, {s: (r.score, r.error) for s, r in results.items()}


def test_the_batch_finishes_within_its_limits(quiz_batch):
    _, _, results, seconds, _, _ = quiz_batch
    assert "limit" in results["loops"].error
    assert all(r.seconds < 90 for r in results.values()), {s: r.seconds for s, r in results.items()}


def test_nothing_outside_a_submission_changed(quiz_batch):
    course, _, results, _, before, repo_file = quiz_batch
    assert repo_file.read_bytes() == before
    assert not Path("/tmp/servelab-adversary-was-here").exists()
    from nbgrader.api import Gradebook
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:   # still a gradebook, scores in it
        assert gb.find_submission(QUIZ, "full").score == 10


def test_a_swallowed_assertion_is_caught_outside_the_kernel(quiz_batch):
    course, _, results, _, _, _ = quiz_batch
    assert len(results["swallows"].failed) == 10
    feedback = (course / "autograded" / "swallows" / QUIZ / f"{QUIZ}.ipynb").read_text()
    assert "CrossCheckFailed" in feedback


def test_no_process_of_any_submission_survives(quiz_batch):
    assert not leftovers()


# -- live endpoints: lab 1 -----------------------------------------------------------

# Deploys a Normalizer that neither normalizes nor validates, then makes every check in
# the kernel see the right answers.
SPOOF_DEPLOY = '''
import unicodedata, requests
from servelab.grading import checks

@serve.deployment(num_replicas=2)
class Normalizer:
    def __init__(self):
        self.replica = serve.get_replica_context().replica_id.unique_id
    async def __call__(self, request):
        body = await request.json()
        return {"normalized": body.get("text"), "replica": self.replica}

serve.run(Normalizer.bind(), name="normalizer", route_prefix="/normalize")

class Fake:
    def __init__(self, status, body):
        self.status_code, self._body, self.text = status, body, str(body)
    def json(self):
        return self._body

real_post = requests.post
def fake_post(url, payload=None, *, data=None, timeout=10, **kw):
    reply = real_post(url, json={"text": "x"}, timeout=timeout)
    text = payload.get("text") if isinstance(payload, dict) else None
    if not isinstance(text, str):
        return Fake(400, {"error": "spoofed"})
    return Fake(200, {"normalized": " ".join(unicodedata.normalize("NFKC", text).lower().split()),
                      "replica": reply.json()["replica"]})
checks.post = fake_post
requests.post = lambda url, json=None, **kw: fake_post(url, json, **kw)
'''
KILL_OWN_RAY = '''
import psutil
for proc in psutil.process_iter(["name", "cmdline"]):
    if any(k in " ".join(proc.info["cmdline"] or []) for k in ("gcs_server", "raylet")):
        proc.kill()
'''
# Takes 8000 and 8265 before its cluster starts, answering like a perfect Normalizer.
SQUAT = f'''
import http.server, json, threading, unicodedata
class Perfect(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        out = json.dumps({{"normalized": " ".join(unicodedata.normalize("NFKC", body["text"]).lower().split()),
                          "replica": "{MARK}"}}).encode()
        self.send_response(200); self.end_headers(); self.wfile.write(out)
squatters = []
for port in (8000, 8265):
    try:
        squatters.append(http.server.ThreadingHTTPServer(("127.0.0.1", port), Perfect))
        threading.Thread(target=squatters[-1].serve_forever, daemon=True).start()
    except OSError:
        pass
'''


@pytest.fixture(scope="module")
def lab1_batch():
    course = scratch_course()
    grading.nbgrader(["generate_assignment", LAB1], cwd=course)
    release = course / "release" / LAB1 / f"{LAB1}.ipynb"
    solution = grading.solution_answers(LAB1)
    batch = {
        "honest": (grading.fill(release, solution), 10),
        # Earns only what its real service does: 2 RUNNING replicas that say who answered.
        "spoofs": (grading.fill(release, {**solution, "deploy": SPOOF_DEPLOY}), 4),
        "kills": (grading.fill(release, {**solution, "deploy": solution["deploy"] + KILL_OWN_RAY}), 0),
        "squats": (grading.fill(release, {**solution, "normalizer": SQUAT + solution["normalizer"]}), 10),
    }
    for student, (nb, _) in batch.items():
        submit(course, LAB1, student, nb)
    try:
        results = {r.student: r for r in autograde.grade(course, LAB1, workers=2, limit_s=400, show=False)}
        yield course, batch, results
    finally:
        for proc in leftovers():
            proc.kill()
        shutil.rmtree(course, ignore_errors=True)


def test_live_attacks_earn_only_what_the_service_does(lab1_batch):
    course, batch, results = lab1_batch
    got = {s: results[s].score for s in batch}
    assert got == {s: want for s, (_, want) in batch.items()}, {
        s: (r.score, r.failed, r.error, why_failed(course, LAB1, s)) for s, r in results.items()}


def test_spoofed_cells_say_why_they_lost_their_points(lab1_batch):
    course, _, results = lab1_batch
    assert set(results["spoofs"].failed) == {"test_normalize_basic", "test_normalize_hidden", "test_bad_requests"}
    graded = (course / "autograded" / "spoofs" / LAB1 / f"{LAB1}.ipynb").read_text()
    assert "passed inside your kernel but failed when the grader ran it" in graded


def test_no_process_of_a_live_submission_survives(lab1_batch):
    assert not leftovers()
