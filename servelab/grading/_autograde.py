"""`servelab grade LAB`: a folder of submissions graded the way an instructor runs nbgrader.

The course folder is an nbgrader course root (nbgrader_config.py, source/<lab>/, and
submitted/<student>/<lab>/ as `nbgrader collect` or an LMS export leaves it). Each student
is autograded by the real nbgrader CLI in a process of its own, with a wall-clock limit, so
one broken or endless submission costs only its own points. Then feedback HTML, grades.csv,
a per-student summary (score, failed test cells, seconds, error) and a per-cell report of
what the class missed (_report.py) are written.

Re-running skips students already in the gradebook unless `force` is given, so an
interrupted batch resumes where it stopped.

Each kernel runs in a bubblewrap sandbox (sandbox.py) on Serve and dashboard ports
the grader picked, and every graded test cell that passes in the kernel is run again
from outside it (crosscheck.py). Several students are graded at once (`workers`), or each as
a Ray task on a cluster (`ray_address`, _raygrade.py).
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import psutil

from servelab.cluster import _processes as processes
from servelab.cluster._ports import held_port
from servelab.course.layout import layout
from servelab.errors import ServelabError
from servelab.grading import _crosscheck as crosscheck
from servelab.grading import _feedback as feedback_config
from servelab.grading import _report as class_report
from servelab.grading import _sandbox as sandbox
from servelab.grading._labs import NBGRADER_CLI, nbgrader, venv_env

DEFAULT_LIMIT_S = 30 * 60
TIMED_OUT = "stopped"


@dataclass
class Graded:
    student: str
    score: float | None = None        # None: nbgrader could not grade it
    max_score: float | None = None
    failed: list[str] = field(default_factory=list)   # test cells short of full points
    manual: list[str] = field(default_factory=list)   # answers awaiting a grader (formgrader)
    seconds: float = 0.0
    error: str = ""
    skipped: bool = False             # graded by an earlier run

    def row(self) -> dict:
        return {"student": self.student, "score": "" if self.score is None else self.score,
                "max_score": "" if self.max_score is None else self.max_score,
                "failed_tests": " ".join(self.failed), "to_grade_by_hand": " ".join(self.manual),
                "seconds": round(self.seconds, 1),
                "error": self.error, "skipped": self.skipped}


class GradingError(ServelabError):
    """The course folder itself is unusable (not one student's problem)."""

    layer = "application code"  # the course's own files and tools, not the serving stack


def submissions(course: Path, lab: str) -> list[str]:
    """Students with a notebook for `lab` under submitted/."""
    root = course / "submitted"
    return sorted(p.name for p in root.iterdir()
                  if (p / lab).is_dir() and any((p / lab).glob("*.ipynb"))) if root.exists() else []


def _check_course(course: Path, lab: str) -> None:
    if not (course / "nbgrader_config.py").exists():
        raise GradingError(f"{course} is not an nbgrader course root (no nbgrader_config.py); "
                           f"pass --course with the folder that holds source/ and submitted/")
    if not (course / "source" / lab).is_dir():
        known = sorted(p.name for p in (course / "source").iterdir()) if (course / "source").exists() else []
        raise GradingError(f"no lab {lab!r} in {course / 'source'} (it has: {', '.join(known) or 'nothing'})")


LEDGER = ".servelab-graded"  # course/LEDGER/<lab>/<student>: graded to the end by servelab grade


def ledger(course: Path, lab: str, student: str) -> Path:
    """The mark servelab grade leaves once a student's grading finished and was recorded. nbgrader
    writes the autograded notebook and the submission row before it runs the kernel, so neither
    says a run that was killed mid-way is done; this mark is written only after it is."""
    return course / LEDGER / lab / student


def mark_graded(course: Path, lab: str, student: str, done: bool) -> None:
    mark = ledger(course, lab, student)
    if done:
        mark.parent.mkdir(parents=True, exist_ok=True)
        mark.touch()
    else:
        mark.unlink(missing_ok=True)


def _graded_already(course: Path, lab: str) -> set[str]:
    from nbgrader.api import Gradebook, MissingEntry

    db = course / "gradebook.db"
    if not db.exists():
        return set()
    done = set()
    with Gradebook(f"sqlite:///{db}") as gb:
        for student in gb.students:
            try:
                gb.find_submission(lab, student.id)
            except MissingEntry:
                continue
            if ledger(course, lab, student.id).exists() and (course / "autograded" / student.id / lab).is_dir():
                done.add(student.id)
    return done


# Labs whose graded checks query the Prometheus beside the learner's cluster. For every other lab
# the grader asks for none (SERVELAB_PROMETHEUS=off): starting and scraping it costs each
# submission CPU on a busy machine and protects nothing (BENCHMARKS.md, grading breakdown).
PROMETHEUS_LABS = frozenset({"lab6-fault-injection"})

METRICS_INTERVAL_ENV, METRICS_INTERVAL_MS = "RAY_metrics_report_interval_ms", 1000  # Ray's system config

# Labs whose graded checks measure time (autoscaling under load, batching speed-up, fault
# recovery): a submission's cluster and its load generator need about two cores to
# themselves, or a neighbour's start-up decides its score.
TIMED_LABS = frozenset({"lab5-autoscaling-batching", "lab6-fault-injection"})


def default_workers(lab: str = "") -> int:
    """Submissions at once: one per core (per two cores for TIMED_LABS), and at most one
    per 4 GiB of available memory."""
    by_memory = psutil.virtual_memory().available // (4 * 1024**3)
    by_cpu = (os.cpu_count() or 1) // (2 if lab in TIMED_LABS else 1)
    return max(1, min(by_cpu, by_memory))


def _solutions_nearby() -> list[Path]:
    """Folders with sources and solutions a graded kernel must not see besides the course:
    those of the course this process works on (if any) and of servelab's own source tree
    (an editable install), wherever grading runs from."""
    import servelab

    roots = {Path(servelab.__file__).resolve().parents[1]}
    try:
        roots.add(layout().root)
    except ServelabError:  # grading a course folder from outside any course: nothing more to hide
        pass
    return sorted(folder for root in roots for folder in (root / "grading", root / "tests") if folder.is_dir())


# A Ray grading task's scratch folders start with this and its pid (_raygrade sweeps dead ones).
RAY_SCRATCH_PREFIX = "slr"


class GradingRun:
    """What one `servelab grade` run sets up around nbgrader: a scratch root (short, for
    Ray's socket paths), the sandboxed kernelspec, nbgrader config selecting it and the
    cross-checking executor, and distinct ports for each submission."""

    def __init__(self, course: Path, use_sandbox: bool = True, memory_bytes: int = 6 * 1024**3,
                 inside_ray: bool = False, lab: str = "", crosscheck: bool = True):
        self.prometheus = lab in PROMETHEUS_LABS or not lab  # no lab named: leave it to the profile
        self.inside_ray = inside_ray  # a task of `grade --ray` (_raygrade.py): leave its cluster behind
        # Named by this process in a Ray task, so a later task can remove it if this one dies.
        prefix = f"{RAY_SCRATCH_PREFIX}{os.getpid()}_g" if inside_ray else "slg"
        self.root = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
        self.sandboxed = use_sandbox
        self.cgroups = sandbox.cgroup_parent(self.root.name) if use_sandbox else ""
        self._settings = dict(hide=[str(course), *map(str, _solutions_nearby())],
                              cpu_s=20 * 60, memory_bytes=memory_bytes, cgroup_parent=self.cgroups)
        self._lock = threading.Lock()
        self._ports: set[int] = set()
        self._count = 0
        # Without cross-check and sandbox nbgrader runs with the course's own config: the lab
        # round trips (grading._course.Course) grade with nbgrader as it comes.
        self.config = self.root / "config" if crosscheck or use_sandbox else None
        if self.config:
            self.config.mkdir()
            (self.config / "nbgrader_config.py").write_text(
                "# Written by servelab grade for this run only.\n"
                "from nbgrader.preprocessors import IgnorePattern, LimitOutput, SaveAutoGrades, "
                "AssignLatePenalties, CheckCellMetadata\n"
                "from nbconvert.preprocessors import ClearMetadataPreprocessor\n"
                "from servelab.grading._crosscheck import CrossCheckedExecute\n"
                "c = get_config()\n"
                "c.Autograde.autograde_preprocessors = [CrossCheckedExecute, IgnorePattern, ClearMetadataPreprocessor,\n"
                "    LimitOutput, SaveAutoGrades, AssignLatePenalties, CheckCellMetadata]\n"
                + (f"c.Execute.kernel_name = {sandbox.KERNEL_NAME!r}\n" if use_sandbox else ""))

    def env(self, student: str) -> tuple[dict, Path]:
        """The environment of one student's nbgrader run, and its scratch folder."""
        with self._lock:
            self._count += 1
            scratch = self.root / f"s{self._count}"
            ports = []
            # Bound seconds later, when the kernel starts its cluster: outside the kernel's
            # ephemeral range, where the other submissions' connections would take them meanwhile.
            for _ in range(3):
                ports.append(held_port(self._ports))
                self._ports.add(ports[-1])
        scratch.mkdir()
        jupyter = scratch / "jupyter"
        if self.sandboxed:
            sandbox.install_kernel(jupyter, sandbox.Settings(scratch=str(scratch), **self._settings))
        ends = crosscheck.Endpoints(serve_port=ports[0], dashboard_port=ports[1], scratch=str(scratch),
                                    metrics_port=ports[2])
        env = venv_env({
            "SERVELAB_SERVE_PORT": str(ports[0]), "SERVELAB_DASHBOARD_PORT": str(ports[1]),
            "SERVELAB_METRICS_PORT": str(ports[2]), "SERVELAB_PORTS": "free",
            "SERVELAB_TMPDIR": str(scratch), crosscheck.ENV: json.dumps(asdict(ends)),
            "JUPYTER_PATH": os.pathsep.join(filter(None, [str(jupyter), os.environ.get("JUPYTER_PATH")])),
            "JUPYTER_CONFIG_PATH": os.pathsep.join(filter(None, [str(self.config or ""),
                                                                 os.environ.get("JUPYTER_CONFIG_PATH")])),
        })
        if self.inside_ray:
            from servelab.grading._raygrade import without_grading_cluster

            # Ray on a grading node records its cluster in /tmp/ray (ray_current_cluster): a
            # kernel whose code calls ray.init() with no address must not find it there.
            env = {**without_grading_cluster(env), "TMPDIR": str(scratch)}
        # Checks that read Serve's counters wait for Ray's next metrics export: every 10 s by
        # default, every second on a graded cluster (a wait, not a safeguard).
        env[METRICS_INTERVAL_ENV] = str(METRICS_INTERVAL_MS)
        if not self.prometheus:
            from servelab.cluster._prometheus import ENV as PROMETHEUS_ENV

            env[PROMETHEUS_ENV] = "off"
        return env, scratch

    def close(self) -> None:
        sandbox.remove_cgroups(self.cgroups)
        shutil.rmtree(self.root, ignore_errors=True)


def _leftovers(scratch: Path) -> list[psutil.Process]:
    """Processes still running out of a submission's scratch folder."""
    found = []
    for proc in psutil.process_iter(["cmdline", "environ"]):
        try:
            info = proc.info
            if str(scratch) in " ".join(info["cmdline"] or []) or \
                    str(scratch) in (info["environ"] or {}).get("SERVELAB_TMPDIR", ""):
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


def _end_leftovers(scratch: Path) -> None:
    """Kill anything of this submission still running, then drop its scratch folder."""
    procs = _leftovers(scratch)
    processes.kill_all(procs)
    processes.wait_gone_pids(procs, timeout=10)
    shutil.rmtree(scratch, ignore_errors=True)


def _autograde_one(course: Path, lab: str, student: str, limit_s: float, force: bool,
                   run: GradingRun) -> tuple[float, str]:
    """Run `nbgrader autograde` for one student in its own process group; (seconds, error)."""
    args = [*NBGRADER_CLI, "autograde", lab, f"--student={student}"]
    if force:
        args.append("--force")
    env, scratch = run.env(student)
    start = time.monotonic()
    # If the grader itself is killed, nbgrader (and through it the kernel and its cluster)
    # goes too: the pool thread that started it lives until the whole batch is done.
    proc = subprocess.Popen(args, cwd=course, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True,
                            preexec_fn=processes.die_with_parent)
    try:
        out, _ = proc.communicate(timeout=limit_s)
    except subprocess.TimeoutExpired:
        # nbgrader's group, and through PR_SET_PDEATHSIG the sandboxed kernel's namespace.
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        _end_leftovers(scratch)
        # Half-written output is not a grade: remove it so that a re-run tries again.
        shutil.rmtree(course / "autograded" / student / lab, ignore_errors=True)
        return time.monotonic() - start, f"{TIMED_OUT} after the {limit_s:.0f} s limit"
    seconds = time.monotonic() - start
    _end_leftovers(scratch)
    if proc.returncode != 0:
        return seconds, error_summary(out)
    return seconds, ""


# An exception line of a traceback ("sqlite3.OperationalError: database is locked").
_EXCEPTION = re.compile(r"^\s*[A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt)\b(:|$)")
# nbgrader's own closing lines, which only point at the traceback above them.
_POINTERS = ("Please see the above traceback", "There was an error processing assignment")


def error_summary(out: str) -> str:
    """One line that says why `nbgrader autograde` failed: the last exception line of its
    output, else its last ERROR line that is not a pointer to the traceback, else its last line."""
    lines = [ln.strip() for ln in out.splitlines() if ln.strip()]
    exceptions = [ln for ln in lines if _EXCEPTION.match(ln)]
    errors = [ln for ln in lines if ("ERROR" in ln or "Error" in ln) and not any(p in ln for p in _POINTERS)]
    best = exceptions or errors or lines or ["nbgrader autograde failed"]
    return best[-1][:300]


def _scores(course: Path, lab: str, graded: dict[str, Graded]) -> None:
    from nbgrader.api import Gradebook, MissingEntry

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        lab_max = gb.find_assignment(lab).max_score
        for student, result in graded.items():
            if result.error.startswith(TIMED_OUT):
                # Its kernel was killed: no cell finished, so no points.
                result.score, result.max_score = 0.0, lab_max
                continue
            try:
                sub = gb.find_submission(lab, student)
            except MissingEntry:
                continue
            if not (course / "autograded" / student / lab).is_dir():
                continue
            result.score, result.max_score = sub.score, sub.max_score
            grades = [g for nb in sub.notebooks for g in nb.grades]
            result.manual = sorted(g.name for g in grades if g.needs_manual_grade)
            result.failed = sorted(g.name for g in grades if not g.needs_manual_grade
                                   and g.max_score and (g.score or 0) < g.max_score)


def _isolation(use_sandbox: bool | None) -> bool:
    """Whether kernels run sandboxed: None means "if bwrap works here"."""
    why_not = sandbox.unavailable() if use_sandbox is not False else "turned off"
    if use_sandbox and why_not:
        raise GradingError(f"the grading sandbox cannot run: {why_not} (or pass --no-sandbox)")
    return not why_not


def grade(course: Path, lab: str, *, force: bool = False, limit_s: float = DEFAULT_LIMIT_S,
          workers: int | None = None, use_sandbox: bool | None = None, ray_address: str | None = None,
          show: bool = True) -> list[Graded]:
    """Autograde every submission of `lab` in `course` (here, or as Ray tasks on the cluster at
    `ray_address`: _raygrade.py); write feedback, grades.csv and summary-<lab>.csv; return one
    Graded per student."""
    course = Path(course).resolve()
    _check_course(course, lab)
    # On Ray each node decides whether it can sandbox (None: if bwrap works there).
    sandboxed = use_sandbox if ray_address else _isolation(use_sandbox)
    workers = workers or default_workers(lab)
    if not (course / "release" / lab).is_dir():
        nbgrader(["generate_assignment", lab], cwd=course)
    students = submissions(course, lab)
    done = set() if force else _graded_already(course, lab)
    results = {s: Graded(s) for s in students}
    todo = []
    for student in students:
        if student in done:
            results[student].skipped = True
            if show:
                print(f"{student}: graded before (use --force to regrade)")
        else:
            todo.append(student)

    def one(student: str) -> None:
        if show:
            print(f"{student}: grading...", flush=True)
        mark_graded(course, lab, student, False)
        results[student].seconds, results[student].error = _autograde_one(course, lab, student, limit_s,
                                                                          force, run)
        mark_graded(course, lab, student, not results[student].error)
        if show:
            print(f"{student}: done in {results[student].seconds:.0f} s", flush=True)

    if ray_address:
        from servelab.grading import _raygrade

        for student, (seconds, error) in _raygrade.run(course, lab, todo, ray_address, limit_s=limit_s,
                                                       use_sandbox=sandboxed, show=show).items():
            results[student].seconds, results[student].error = seconds, error
    else:
        run = GradingRun(course, use_sandbox=sandboxed, lab=lab)
        if show:
            memory = "and a memory cgroup" if run.cgroups else "(no cgroup for a memory limit here)"
            print(f"grading {len(todo)} submission(s) of {lab}, {workers} at a time; kernels "
                  + (f"sandboxed by bwrap {memory}" if sandboxed else "NOT sandboxed"), flush=True)
        try:
            with ThreadPoolExecutor(workers) as pool:
                list(pool.map(one, todo))
        finally:
            run.close()
    _scores(course, lab, results)
    for result in results.values():
        if result.score is None and not result.error:
            result.error = "not graded (see nbgrader's log above)"
    feedback = generate_feedback(course, lab, force)
    if feedback.returncode != 0 and show:
        print("feedback: nbgrader generate_feedback reported errors:\n" + feedback.stdout[-1500:])
    nbgrader(["export", "--to", "grades.csv"], cwd=course, check=False)
    out = list(results.values())
    _write_summary(course / f"summary-{lab}.csv", out)
    report = class_report.write(course, lab)
    if show:
        print(table(out))
        print("\n" + report.read_text())
        print(f"feedback: {course / 'feedback'}   grades: {course / 'grades.csv'}   "
              f"summary: {course / f'summary-{lab}.csv'}   what to re-teach: {report}")
    return out


def generate_feedback(course: Path, lab: str, force: bool = False) -> subprocess.CompletedProcess:
    """nbgrader generate_feedback with the hidden tests left out of the HTML (_feedback.py), for
    a course folder whose nbgrader_config.py does not say so. A config that sets
    GenerateFeedback.preprocessors itself replaces this list: the course's own
    (grading/nbgrader_config.py) keeps HideHiddenTests in it."""
    with tempfile.TemporaryDirectory(prefix="slfb") as config:
        Path(config, "nbgrader_config.py").write_text("c = get_config()\n" + feedback_config.CONFIG)
        path = os.pathsep.join(filter(None, [config, os.environ.get("JUPYTER_CONFIG_PATH")]))
        return nbgrader(["generate_feedback", lab, *(["--force"] if force else [])], cwd=course, check=False,
                        env={"JUPYTER_CONFIG_PATH": path})


def _write_summary(path: Path, results: list[Graded]) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(Graded("x").row()))
        writer.writeheader()
        for r in results:
            writer.writerow(r.row())


def table(results: list[Graded]) -> str:
    """A plain-text summary: one line per student."""
    lines = [f"{'student':16} {'score':>11} {'seconds':>8}  failed tests / error"]
    for r in results:
        score = "—" if r.score is None else f"{r.score:g}/{r.max_score:g}"
        note = r.error or " ".join(r.failed) or "all passed"
        if r.manual and not r.error:
            note += f"; grade by hand: {' '.join(r.manual)}"
        lines.append(f"{r.student:16} {score:>11} {r.seconds:8.1f}  {note}"
                     + ("  (earlier run)" if r.skipped else ""))
    return "\n".join(lines)
