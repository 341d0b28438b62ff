"""Helpers that graded test cells and learners' own checks call.

They fail with an AssertionError whose message names the layer to look at,
so a failing test tells the learner where to start debugging.
"""

from __future__ import annotations

import time

import requests

from servelab.clients._serve import Replica, ServeAPIError


def post(url: str, payload=None, *, data: bytes | None = None, timeout: float = 10) -> requests.Response:
    """POST JSON (or raw bytes) to a Serve route; a dead endpoint is a clear failure."""
    try:
        if data is not None:
            return requests.post(url, data=data, timeout=timeout,
                                 headers={"Content-Type": "application/json"})
        return requests.post(url, json=payload, timeout=timeout)
    except requests.ConnectionError:
        raise AssertionError(f"[Serve] nothing answers at {url}: is the cluster running?") from None
    except requests.Timeout:
        raise AssertionError(f"[application code] {url} did not answer within {timeout}s") from None


def running_replicas(cluster, app: str, deployment: str, timeout: float = 60) -> list[Replica]:
    """RUNNING replicas of a deployment, read from Serve's REST API.

    Replicas start and stop asynchronously, so this waits (up to `timeout`)
    until the number RUNNING equals Serve's own target for the deployment,
    then returns them; the caller compares that with what the lab asked for.
    """
    api = cluster.serve_api
    deadline = time.monotonic() + timeout
    while True:
        try:
            target = api.deployment(app, deployment).get("target_num_replicas")
            replicas = api.replicas(app, deployment)
        except ServeAPIError as exc:
            raise AssertionError(str(exc)) from None
        if len(replicas) == target or time.monotonic() > deadline:
            return replicas
        time.sleep(0.5)


def credit(*parts: tuple[float, bool, str]) -> float | None:
    """Partial credit for a test cell made of parts, each (points, passed, what was observed).

    The cell's last line must be this call: nbgrader scores a test cell that ends in a number
    with that number (nbgrader/utils.py, determine_grade). Every part passed: None, so the
    cell earns all its points. No part passed: an AssertionError with each part's message.
    Otherwise it prints each part, earned or missed, for the feedback, and returns the points
    earned.
    """
    earned = sum(points for points, passed, _ in parts if passed)
    missed = [f"{why} (-{points:g})" for points, passed, why in parts if not passed]
    if not missed:
        return None
    if not earned:
        raise AssertionError("; ".join(missed))
    for points, passed, why in parts:
        print(f"{'earned' if passed else 'missed'} {points:g} point(s): {why}")
    return earned


def graded_choice(answer, right: str, why: dict[str, str]) -> None:
    """A graded multiple-choice answer (the scenario quiz's hidden tests, so the right letter
    and the explanations exist only on the grader's side). Prints why each option is right or
    wrong, for the feedback, then fails unless `answer` is `right`."""
    for letter, reason in why.items():
        mark = "right" if letter == right else "not this one"
        yours = "  <- your answer" if letter == answer else ""
        print(f"{letter}) {mark}: {reason}{yours}")
    assert answer == right, f"[your answer] {answer!r} is not the best option: the reasons for each are above"


# -- alerts, evaluated by the Prometheus beside the learner's cluster ---------------------------
# Serve's controller sets a replica's `ray_serve_deployment_replica_healthy` to 0 when it fails
# its checks or dies; Ray exports every 10 s and Prometheus scrapes every 5 s, so the 0 reaches
# Prometheus up to 15 s after Serve acted, and stays about 20 s after the replica is replaced.
STEADY_S = 25  # replicas unchanged this long: any 0 from the last change has reached Prometheus


def alert_rule(cluster, name: str, wait_s: float = 30) -> dict:
    """The alerting rule `name` as the cluster's Prometheus loaded it (`health`, `duration` in s...),
    once Prometheus has evaluated it (a rule just loaded has health "unknown")."""
    deadline = time.monotonic() + wait_s
    while True:
        found = [rule for group in cluster.prometheus.rules() for rule in group["rules"]
                 if rule.get("type") == "alerting" and rule.get("name") == name]
        if not found:
            raise AssertionError(f"[your alert] Prometheus has no alerting rule named {name!r}: check `alert:` in "
                                 "your rules and run the cell that loads them")
        if found[0].get("health") != "unknown" or time.monotonic() > deadline:
            return found[0]
        time.sleep(1)


def alert_stays_silent(cluster, name: str, app: str, deployment: str, *, seconds: float = 20,
                       settle_s: float = 120) -> None:
    """With every replica of `app`/`deployment` healthy, the alert is inactive for `seconds` in a
    row. First the traces of earlier faults clear (up to `settle_s`): Serve's replicas unchanged
    for STEADY_S, no replica's health at 0 in Prometheus, and the alert inactive."""
    prom = cluster.prometheus
    alert_rule(cluster, name)  # an alert that does not exist is silent too, and earns nothing for it
    unhealthy = f'count(ray_serve_deployment_replica_healthy{{application="{app}", deployment="{deployment}"}} == 0)'
    deadline = time.monotonic() + settle_s
    replicas, since = None, time.monotonic()
    while True:
        current = {r.replica_id for r in cluster.serve_api.replicas(app, deployment)}
        if current != replicas:
            replicas, since = current, time.monotonic()
        zeros = prom.value(unhealthy, default=0.0)
        state = prom.alert_state(name)
        if time.monotonic() - since >= STEADY_S and not zeros and state == "inactive":
            break
        if time.monotonic() > deadline:
            if zeros or time.monotonic() - since < STEADY_S:
                raise AssertionError(f"[Serve] {app}/{deployment} never stayed healthy for {STEADY_S} s: "
                                     "its replicas kept failing or being replaced, so silence could not be checked")
            raise AssertionError(f"[your alert] {name} is {state} with every replica healthy: its expression holds "
                                 "without a fault, so it would page all the time")
        time.sleep(2)
    quiet_from = time.monotonic()
    while time.monotonic() - quiet_from < seconds:
        if (state := prom.alert_state(name)) != "inactive":
            raise AssertionError(f"[your alert] {name} went {state} with no fault injected: it must stay silent "
                                 "while every replica is healthy")
        time.sleep(2)


def alert_fires(cluster, inject, name: str, *, within_s: float = 60) -> float:
    """Inject a fault (`inject()`), then wait for the alert to fire; returns the seconds it took."""
    prom = cluster.prometheus
    alert_rule(cluster, name)
    inject()
    start = time.monotonic()
    seen = "inactive"
    while time.monotonic() - start < within_s:
        state = prom.alert_state(name)
        if state == "firing":
            return time.monotonic() - start
        seen = state if state != "inactive" else seen
        time.sleep(2)
    raise AssertionError(f"[your alert] {name} did not fire within {within_s:g} s of the fault (it was at most "
                         f"{seen}): does its expression select the replicas' health, and is its `for:` short "
                         "enough for a series that says 0 for about 20 s?")


# -- queries the learner writes, evaluated by the same Prometheus ------------------------------
def _rows_for(rows: list[dict], application: str, deployment: str) -> list[dict]:
    """The rows of one deployment: `deployment` must match, `application` too where the query kept it."""
    mine = [r for r in rows if r["metric"].get("deployment") == deployment
            and r["metric"].get("application", application) == application]
    if len(mine) > 1:
        raise AssertionError(f"[your query] {len(mine)} series for {application}/{deployment}, not one: aggregate "
                             f"them, e.g. `sum by (deployment) (...)` (labels seen: {mine[0]['metric']})")
    return mine


def _promql(fn, query: str):
    """fn(query), with Prometheus refusing the learner's query as a failed check that says why."""
    from servelab.clients.prometheus import PrometheusError

    try:
        return fn(query)
    except PrometheusError as exc:
        raise AssertionError(f"[your query] Prometheus refused {query!r}: {exc}") from None


def query_value(cluster, query: str, application: str, deployment: str, *, expect: float | None = None,
                wait_s: float = 60) -> float:
    """The value the learner's query gives now for one deployment (its series labelled
    `deployment`, and `application` if the query kept that label). With `expect`, waits up to
    `wait_s` for that value: Prometheus sees a change up to 15 s after Serve made it."""
    deadline = time.monotonic() + wait_s
    while True:
        rows = _promql(cluster.prometheus.query, query)
        mine = _rows_for(rows, application, deployment)
        if not mine:
            seen = sorted({str(r["metric"]) for r in rows})[:3]
            raise AssertionError(f"[your query] no series labelled deployment={deployment!r} (it gave {len(rows)}: "
                                 f"{', '.join(seen) or 'none'}): keep the label with `by (deployment)`")
        value = mine[0]["value"]
        if expect is None or value == expect:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"[your query] it gives {value:g} for {application}/{deployment}, where "
                                 f"{expect:g} is expected (checked for {wait_s:g} s)")
        time.sleep(2)


def query_tracks(cluster, query: str, reference: str, *, application: str, deployment: str,
                 evidence: str, provoke, what: str, minutes: float = 5, rel_tol: float = 1e-6) -> None:
    """The learner's query agrees with `reference` for one deployment at every 5 s step of the
    last `minutes` (a range query, so both are evaluated by Prometheus on the same samples), and
    that window holds the situation that tells a right query from a plausible wrong one: at
    least one step where `evidence` is above 0. If none does yet, `provoke()` makes one (a fault,
    some load) and the check waits for it to reach Prometheus. Returns None: a test cell that
    ends in a number is scored with that number (nbgrader's partial credit)."""
    prom = cluster.prometheus
    deadline = time.monotonic() + 90
    while True:
        end = time.time()
        if any(v > 0 for s in prom.series(evidence, minutes=minutes, end=end) for v in s["v"]):
            break
        if provoke is not None:
            provoke()
            provoke = None
        elif time.monotonic() > deadline:
            raise AssertionError(f"[Serve] {what} never showed in Prometheus, so your query could not be checked")
        time.sleep(3)

    def by_time(promql: str) -> dict[float, float]:
        rows = _rows_for(_promql(lambda q: prom.series(q, minutes=minutes, end=end), promql),
                         application, deployment)
        return dict(zip(rows[0]["t"], rows[0]["v"])) if rows else {}

    theirs, expected = by_time(query), by_time(reference)
    if not theirs:
        raise AssertionError(f"[your query] no series labelled deployment={deployment!r} in the last {minutes:g} "
                             "minutes: keep the label with `by (deployment)`")
    steps = sorted(set(theirs) | set(expected))
    for t in steps:
        want, got = expected.get(t, 0.0), theirs.get(t, 0.0)
        if want != want and got != got:  # NaN both (no requests in that window): nothing to compare
            continue
        if not abs(got - want) <= rel_tol * max(1.0, abs(want)):
            raise AssertionError(f"[your query] at {time.strftime('%H:%M:%S', time.localtime(t))} ({what} in the "
                                 f"window) it gave {got:.4g} for {deployment}, where {want:.4g} was expected")
