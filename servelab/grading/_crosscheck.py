"""Graded test cells checked again from outside the learner's kernel.

A submission owns its kernel: it can replace `requests.post` or servelab's check
helpers, or tell IPython to swallow AssertionError, so that a failing test shows
no error. nbgrader scores a cell by the errors in its output, so that would earn
points. `servelab grade` therefore executes with CrossCheckedExecute: after a graded
test cell passes in the kernel, the grader runs the same instructor-written cell
again in its own process, against the learner's live service, with

- fresh imports of the modules the cell uses (checks, requests, yaml, ...);
- `cluster` replaced by a TrustedCluster on the ports the grader assigned;
- every other name the cell reads fetched from the kernel as plain data (a
  Python literal): only values cross the boundary, never code. URLs among them
  must point at the assigned Serve port.

A cell that reached the live service (it reads `cluster` or a URL) passes outside
only if the submission's GCS and a raylet are still running afterwards: a submission
that kills its own Ray leaves a proxy and replicas that answer for a moment longer, and
answers from a cluster that is going down earn nothing.

If the outside run fails, the cell gets an error output and no points. A kernel
that dies (`os._exit`, killed by a limit) ends its own run the same way: the cell it
died in and every cell after it get an error, so nothing unexecuted earns points. Cells that
need the learner's own objects (a class they wrote, a live handle) or that inject
faults or load (running them twice would change the experiment) stay in-kernel
checks; `plan()` says which and why.
"""

from __future__ import annotations

import ast
import asyncio
import builtins
import contextlib
import importlib
import io
import json
import os
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import psutil
from nbclient.exceptions import DeadKernelError
from nbformat import NotebookNode
from nbgrader.preprocessors import Execute

from servelab.cluster import _processes as processes

ENV = "SERVELAB_CROSSCHECK"  # JSON of Endpoints, set by the grader for nbgrader
TIMEOUT_S = 180

# Names a test cell may read that the grader imports itself.
TRUSTED_MODULES = {
    "checks": "servelab.grading.checks", "manifests": "servelab.manifests",
    "placement": "servelab.manifests.placement", "serve_lint": "servelab.manifests.serve_lint",
    "production_plan": "servelab.course.production_plan",
    "requests": "requests", "yaml": "yaml", "json": "json", "time": "time",
}
# Cells using these are left in the kernel: they need the learner's live objects or
# change what they measure (faults injected twice, load generated twice).
IN_KERNEL_ONLY = {"faults", "load", "recovery", "local", "serve", "ray"}
# Builtins that read names the grader cannot see in the cell's text.
DYNAMIC_LOOKUPS = {"globals", "locals", "vars", "eval", "exec"}
CLUSTER_ATTRS = {"serve_api", "serve_url", "dashboard_url", "metrics_url"}
RAY_CORE = ("gcs_server", "raylet")  # what a live cluster runs, whatever its profile
RAY_CORE_LOOKS = 3


@dataclass
class Endpoints:
    serve_port: int
    dashboard_port: int
    scratch: str  # where the kernel's clusters keep their dirs (their token files)
    metrics_port: int | None = None  # the head's metrics endpoint (Ray's Prometheus exporter)


class TrustedCluster:
    """What a test cell needs of `cluster`, built from the grader's own port numbers."""

    def __init__(self, ends: Endpoints):
        self.serve_url = f"http://127.0.0.1:{ends.serve_port}"
        self.dashboard_url = f"http://127.0.0.1:{ends.dashboard_port}"
        self.metrics_url = f"http://127.0.0.1:{ends.metrics_port}/metrics" if ends.metrics_port else None
        self._scratch = Path(ends.scratch)

    @property
    def serve_api(self):
        from servelab.clients._serve import ServeAPI, ServeAPIError

        # Each cluster writes its own token; the one the dashboard accepts is the right one.
        tokens = sorted(self._scratch.rglob("auth_token"), key=lambda p: p.stat().st_mtime, reverse=True)
        for token in tokens:
            api = ServeAPI(self.dashboard_url, token=token.read_text().strip())
            try:
                api.details()
                return api
            except ServeAPIError as exc:
                if "token" not in str(exc):
                    return api  # a real failure: let the test report it
        return ServeAPI(self.dashboard_url)


def free_names(source: str) -> set[str]:
    """Names a cell reads but neither defines nor gets from builtins."""
    tree = ast.parse(source)
    stored, loaded = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            (loaded if isinstance(node.ctx, ast.Load) else stored).add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            stored.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            stored.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, ast.arg):
            stored.add(node.arg)
    return loaded - stored - set(dir(builtins))


def _cluster_attrs(source: str) -> set[str]:
    return {node.attr for node in ast.walk(ast.parse(source))
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "cluster"}


def _objects(source: str) -> set[str]:
    """Names the cell calls or reads attributes of: objects, not data."""
    out = set()
    for node in ast.walk(ast.parse(source)):
        target = node.func if isinstance(node, ast.Call) else node.value if isinstance(node, ast.Attribute) else None
        if isinstance(target, ast.Name):
            out.add(target.id)
    return out


def plan(source: str) -> tuple[list[str], str]:
    """(names to fetch from the kernel, "") for a cell that can be re-run outside,
    or ([], why not) for one that stays an in-kernel check."""
    try:
        names = free_names(source)
    except SyntaxError as exc:
        return [], f"does not parse: {exc}"
    kernel_only = sorted(names & IN_KERNEL_ONLY)
    if kernel_only:
        return [], f"uses {', '.join(kernel_only)}"
    dynamic = sorted({node.id for node in ast.walk(ast.parse(source))
                      if isinstance(node, ast.Name) and node.id in DYNAMIC_LOOKUPS})
    if dynamic:
        return [], f"looks names up with {', '.join(d + '()' for d in dynamic)}"
    odd = _cluster_attrs(source) - CLUSTER_ATTRS if "cluster" in names else set()
    if odd:
        return [], f"uses cluster.{', cluster.'.join(sorted(odd))}"
    data = names - set(TRUSTED_MODULES) - {"cluster"}
    objects = sorted(data & _objects(source))
    if objects:
        return [], f"calls or reads attributes of the learner's {', '.join(objects)}"
    # Everything else the cell reads is data, and must arrive as a Python literal.
    return sorted(data), ""


def _urls(value):
    """Every URL among a value fetched from the kernel (nested in dicts, lists, ...)."""
    if isinstance(value, str):
        if value.startswith(("http://", "https://")):
            yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _urls(v)
    elif isinstance(value, (list, tuple, set)):
        for v in value:
            yield from _urls(v)


def _check_urls(value, ends: Endpoints, name: str) -> None:
    """A URL the learner's kernel hands over must lead to the cluster the grader started."""
    allowed = {f"127.0.0.1:{ends.serve_port}", f"localhost:{ends.serve_port}",
               f"127.0.0.1:{ends.dashboard_port}", f"localhost:{ends.dashboard_port}"}
    for url in _urls(value):
        if urlsplit(url).netloc not in allowed:
            raise AssertionError(f"[grader] {name} = {url!r} is not the Serve endpoint of the cluster "
                                 f"the grader started (port {ends.serve_port})")


def ray_problem(ends: Endpoints) -> str:
    """"" if the submission's Ray still runs its GCS and a raylet, else what is gone.
    Read from the process table, outside the kernel, so it works whichever dashboard
    modules a profile loads."""
    # A process table read while the machine is busy can miss a process (one that is between
    # states, or whose /proc entry cannot be read for a moment): look again before a learner
    # loses points. A cluster that is going down stays gone.
    for attempt in range(RAY_CORE_LOOKS):
        names = set()
        for proc in processes.processes_under(ends.scratch):
            with contextlib.suppress(psutil.Error):
                names.add(proc.name())
        gone = [name for name in RAY_CORE if name not in names]
        if not gone:
            return ""
        if attempt + 1 < RAY_CORE_LOOKS:
            time.sleep(0.5)
    return (f"[grader] your Ray cluster has no running {' or '.join(gone)} after this cell: "
            "answers from a cluster that is going down earn no points")


def run_outside(source: str, data: dict, ends: Endpoints) -> str:
    """Run a test cell in this process; "" if it passed, else the reason it failed."""
    namespace = {"__name__": "__crosscheck__", "cluster": TrustedCluster(ends)}
    for name, module in TRUSTED_MODULES.items():
        namespace[name] = importlib.import_module(module)
    try:
        for name, value in data.items():
            _check_urls(value, ends, name)
        namespace.update(data)
        with contextlib.redirect_stdout(io.StringIO()):
            exec(compile(source, "<graded test cell>", "exec"), namespace)
    except Exception as exc:  # the cell's own failure, whatever its type
        last = traceback.format_exception_only(type(exc), exc)[-1].strip()
        return last[:1500]
    if "cluster" in free_names(source) or any(_urls(data)):
        return ray_problem(ends)
    return ""


def _literal(reply_value: dict, workdir: Path) -> object:
    """The value of a `repr(name)` user expression: a Python literal, or a path inside the
    learner's own folder (read by the instructor's test code, never run)."""
    if reply_value.get("status") != "ok":
        raise ValueError(reply_value.get("evalue") or "not defined in the kernel")
    text = ast.literal_eval(reply_value["data"]["text/plain"])  # the repr string itself
    node = ast.parse(text, mode="eval").body
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("PosixPath", "Path")
            and not node.keywords and len(node.args) == 1 and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)):
        path = (workdir / node.args[0].value).resolve()
        if not path.is_relative_to(workdir.resolve()):
            raise ValueError(f"{path} is outside the submission's folder")
        return path
    return ast.literal_eval(text)


TIMINGS_ENV = "SERVELAB_GRADE_TIMINGS"  # a file to append where a grading's time goes (bench/)


class _Timings:
    """Where one execution's time goes, appended as JSON lines to $SERVELAB_GRADE_TIMINGS when
    it is set (bench/grading_breakdown.py reads them); nothing is written otherwise."""

    def __init__(self):
        self.path = os.environ.get(TIMINGS_ENV)
        self.mark = time.monotonic()

    def add(self, what: str, seconds: float, **detail) -> None:
        if self.path:
            with open(self.path, "a") as f:
                f.write(json.dumps({"what": what, "seconds": round(seconds, 3), **detail}) + "\n")

    def lap(self, what: str, **detail) -> None:
        now = time.monotonic()
        self.add(what, now - self.mark, **detail)
        self.mark = now


class CrossCheckedExecute(Execute):
    """nbgrader's Execute, plus a second run of each passing graded test cell outside the
    kernel, and a graded zero rather than a crash when the kernel dies."""

    _dead = ""

    def preprocess(self, nb, resources=None, km=None):
        self._dead = ""
        self._timings = _Timings()
        try:
            return super().preprocess(nb, resources, km)
        finally:
            self._timings.lap("kernel shutdown")  # after the last cell, until the kernel is gone

    def preprocess_cell(self, cell, resources, index):
        if index == 0:
            self._timings.lap("kernel start")
        try:
            return self._preprocess_cell(cell, resources, index)
        finally:
            if cell.cell_type == "code":
                meta = cell.metadata.get("nbgrader", {})
                self._timings.lap("cell", index=index, grade_id=meta.get("grade_id", ""),
                                  graded=bool(meta.get("grade") and not meta.get("solution")),
                                  first_line=cell.source.strip().splitlines()[0][:80] if cell.source.strip() else "")

    def _preprocess_cell(self, cell, resources, index):
        if self._dead:
            if cell.cell_type == "code":
                self._fail(cell, f"not run: the kernel died earlier ({self._dead})")
            return cell, resources
        try:
            return super().preprocess_cell(cell, resources, index)
        except DeadKernelError as exc:
            self._dead = f"in cell {index + 1}: {exc}"
            self._fail(cell, f"the kernel died while running this cell ({exc}): it exited, crashed "
                             "or went over its CPU or memory limit")
            return cell, resources

    def on_cell_executed(self, **kwargs):
        super().on_cell_executed(**kwargs)
        cell, reply = kwargs["cell"], kwargs["execute_reply"]
        meta = cell.metadata.get("nbgrader", {})
        if not (meta.get("grade") and not meta.get("solution") and cell.cell_type == "code"):
            return None
        if reply is None or reply["content"].get("status") != "ok" or any(
                o.output_type == "error" for o in cell.outputs):
            return None  # failed in the kernel already: no points to protect
        return self._cross_check(cell, meta.get("grade_id", "?"))

    async def _cross_check(self, cell: NotebookNode, grade_id: str) -> None:
        ends = Endpoints(**json.loads(os.environ[ENV]))
        names, why_not = plan(cell.source)
        if why_not:
            self.log.info("cross-check: %s stays an in-kernel check (%s)", grade_id, why_not)
            return
        try:
            data = await self._fetch(names)
        except ValueError as exc:
            return self._fail(cell, f"the grader could not read the kernel's values: {exc}")
        started = time.monotonic()
        problem = await asyncio.wait_for(asyncio.to_thread(run_outside, cell.source, data, ends), TIMEOUT_S)
        self._timings.add("cross-check", time.monotonic() - started, grade_id=grade_id)
        if problem:
            self._fail(cell, f"it passed inside your kernel but failed when the grader ran it "
                             f"against your live service from outside: {problem}")
        else:
            self.log.info("cross-check: %s passed outside the kernel too", grade_id)

    async def _fetch(self, names: list[str]) -> dict:
        if not names:
            return {}
        msg_id = self.kc.execute("", silent=True, store_history=False,
                                 user_expressions={n: f"repr({n})" for n in names})
        reply = await self.async_wait_for_reply(msg_id)
        if reply is None:
            raise ValueError("no reply")
        values = reply["content"].get("user_expressions", {})
        workdir = Path(self.resources.get("metadata", {}).get("path") or ".")
        out = {}
        for name in names:
            try:
                out[name] = _literal(values.get(name, {}), workdir)
            except (ValueError, SyntaxError, KeyError, TypeError) as exc:
                raise ValueError(f"{name}: {exc}") from None
        return out

    def _fail(self, cell: NotebookNode, message: str) -> None:
        self.log.warning("graded zero: %s", message)
        # nbgrader scores a cell by the first error or execute_result among its outputs
        # (utils.determine_grade): a value the kernel left would be read before this error.
        cell.outputs = [o for o in cell.outputs if o.get("output_type") != "execute_result"]
        cell.outputs.insert(0, NotebookNode(output_type="error", ename="CrossCheckFailed", evalue=message,
                                            traceback=[f"CrossCheckFailed: {message}"]))
