"""Which graded cells the grader can run again outside the learner's kernel."""

import pytest

from servelab.course import layout
from servelab.grading import _crosscheck as crosscheck
from servelab.grading import _labs as labs


def test_names_read_through_globals_keep_a_cell_in_the_kernel():
    names, why = crosscheck.plan('for n in ("A", "B"):\n    assert globals()[n] in LAYERS\n')
    assert names == [] and "globals()" in why


def test_names_the_cell_spells_out_are_fetched_as_data():
    names, why = crosscheck.plan('assert (A, B) == ("x", "y") and URL in URLS\n')
    assert (names, why) == (["A", "B", "URL", "URLS"], "")


@pytest.mark.parametrize("lab", labs.lab_names())
def test_no_graded_cell_looks_names_up_dynamically(lab):
    # Such a cell cannot be cross-checked: the outside run would lack the names it reads.
    notebook = layout().grading / "source" / lab / f"{lab}.ipynb"
    dynamic = [grade_id for grade_id, _, source in labs.graded_cells(notebook)
               if "looks names up" in crosscheck.plan(source)[1]]
    assert dynamic == []


def test_a_cell_that_reached_the_service_earns_nothing_once_its_gcs_is_gone(local_ray):
    # What a submission that kills its own Ray leaves: replicas may answer for a few
    # seconds more, but the cluster is going down.
    ends = crosscheck.Endpoints(serve_port=local_ray.ports.serve, dashboard_port=local_ray.ports.dashboard,
                                scratch=str(local_ray.dir), metrics_port=local_ray.ports.metrics)
    reads_url, data = 'assert URL.startswith("http")\n', {"URL": local_ray.serve_url + "/"}
    plain = "assert 6 * 7 == 42\n"
    assert crosscheck.run_outside(reads_url, data, ends) == ""
    # Lab 2 reads Serve's request counters from outside too: the grader's own metrics port.
    reads_metrics = "assert requests.get(cluster.metrics_url, timeout=10).status_code == 200\n"
    assert crosscheck.plan(reads_metrics) == ([], "")
    assert crosscheck.run_outside(reads_metrics, {}, ends) == ""

    gcs = next(p for p in local_ray.processes() if p.name().startswith("gcs_server"))
    gcs.kill()
    gcs.wait(10)
    problem = crosscheck.run_outside(reads_url, data, ends)
    assert problem.startswith("[grader] your Ray cluster has no running gcs_server"), problem
    # A cell that never touches the service does not need a cluster.
    assert crosscheck.run_outside(plain, {}, ends) == ""


def test_a_process_missed_once_in_the_table_costs_nothing(monkeypatch):
    # Under load a read of the process table can miss a live raylet for a moment; the grader
    # looks again before it zeroes a cell, and still zeroes one whose cluster stays gone.
    class Named:
        def __init__(self, name):
            self._name = name

        def name(self):
            return self._name

    monkeypatch.setattr(crosscheck.time, "sleep", lambda s: None)
    looks = iter([[Named("gcs_server")], [Named("gcs_server"), Named("raylet")]])
    monkeypatch.setattr(crosscheck.processes, "processes_under", lambda root: next(looks))
    ends = crosscheck.Endpoints(serve_port=1, dashboard_port=2, scratch="/nowhere", metrics_port=3)
    assert crosscheck.ray_problem(ends) == ""
    monkeypatch.setattr(crosscheck.processes, "processes_under", lambda root: [Named("gcs_server")])
    assert "no running raylet" in crosscheck.ray_problem(ends)


def test_a_failed_cross_check_zeroes_a_cell_that_ended_in_a_value():
    # nbgrader reads the first error or execute_result (utils.determine_grade): a partial score,
    # or any value a kernel made a cell end with, must not be read before the grader's error.
    import nbformat
    from nbgrader.utils import determine_grade

    cell = nbformat.v4.new_code_cell("checks.credit(...)", metadata={"nbgrader": {
        "grade": True, "solution": False, "points": 4, "grade_id": "test_x"}})
    cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text="earned 2 point(s): up\n"),
                    nbformat.v4.new_output("execute_result", data={"text/plain": "2"}, execution_count=1)]
    assert determine_grade(cell) == (2, 4)
    crosscheck.CrossCheckedExecute()._fail(cell, "failed outside the kernel")
    assert determine_grade(cell) == (0, 4)
    assert [o.output_type for o in cell.outputs] == ["error", "stream"]
