"""`servelab` command line: clusters on either target, KubeRay install, validation, student labs, grading."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from pathlib import Path

from servelab import targets
from servelab.clients._serve import ServeAPIError, count_running
from servelab.cluster import _envcheck as envcheck
from servelab.cluster._localray import LocalRay
from servelab.course.layout import layout
from servelab.errors import ServelabError
from servelab.grading import _labs as labs
from servelab.targets import Target
from servelab.targets._kubernetes import KUBERAY_VERSION


def _select(name: str | None) -> list[LocalRay]:
    clusters = LocalRay.find()
    if name:
        clusters = [c for c in clusters if c.name == name]
    return clusters


def _kubernetes(args):
    from servelab.targets._kubernetes import KubernetesTarget

    return KubernetesTarget(namespace=args.namespace)


def _print_report(report: dict) -> None:
    from servelab.targets._vocabulary import ready_condition

    ready = ready_condition(report)
    print(f"  Ready={ready['status']} ({ready['reason']}){': ' + ready['message'] if ready.get('message') else ''}")
    if report.get("layer"):
        print(f"  look at the {report['layer']} layer first")
    for key in ("activeServiceStatus", "pendingServiceStatus"):
        part = report.get(key) or {}
        if part.get("rayClusterName"):
            print(f"  {key[:-len('ServiceStatus')]} cluster: {part['rayClusterName']}")
    from servelab.targets._local_status import applications

    for app_name, app in applications(report).items():
        print(f"  app {app_name} [{app.get('status')}]")
        for dep_name, dep in (app.get("serveDeploymentStatuses") or {}).items():
            print(f"    {dep_name} [{dep.get('status')}] {dep.get('message') or ''}".rstrip())
    if report.get("nodes"):
        print(f"  Ray nodes by group: {report['nodes']}")
    for dep, where in (report.get("placement") or {}).items():
        print(f"    {dep} replicas by group: {where or 'none running'}")


def _target(args) -> Target:
    """The target --target names (default: $SERVELAB_TARGET, else local), set up from the flags."""
    # A CLI cluster outlives this command, so it must not die with it; --namespace and --kind
    # mean something to the kubernetes target only (get_target gives each target its options).
    return targets.get_target(args.target, namespace=args.namespace, kind=args.kind, die_with_owner=False)


class _View:
    """What a command acts on and prints about it; the operations themselves are the Target's.

    The wording differs by target (the output and exit codes predate the interface); this is
    the Kubernetes target's way, and any Target's: one object, named with --name, reported
    whatever its state; `status` exits 1 unless it is Ready. (`faults` is Kubernetes-only.)"""

    up_waits = True  # --wait: wait for the Ready condition after up

    def __init__(self, target: Target, args):
        self.target, self.args = target, args

    def up_without_manifest(self) -> int:
        target = self.args.target
        raise ServelabError(f"the {target} target needs a manifest: servelab up FILE --target {target}")

    def names(self) -> list[str]:
        """What status and down act on."""
        if not self.args.name:
            raise ServelabError(f"name the RayService or RayCluster: servelab {self.args.command} "
                                f"--target {self.args.target} --name NAME")
        return [self.args.name]

    def show_status(self, name: str) -> bool:
        """Print its status; whether it is well (exit 0)."""
        report = self.target.status(name)
        print(f"{report.get('kind', self.args.kind)} {name}:")
        _print_report(report)
        return report.get("layer") is None

    def said_down(self, name: str, deleted: bool) -> None:
        print(f"{self.args.kind} {name}: {'deleted' if deleted else 'not found'}")

    def faults(self, stack):
        """The fault verbs on the --name object (Kubernetes: pods through its API, the dashboard
        through --dashboard or a port-forward that lasts as long as `stack`)."""
        from servelab.faults import _verbs as fault_lib

        args = self.args
        if not args.name:
            raise ServelabError("name the RayService or RayCluster: servelab fault VERB ... "
                                f"--target {args.target} --name NAME")
        dashboard = args.dashboard
        if not dashboard:
            forward = stack.enter_context(self.target.port_forward(args.name, args.kind))
            dashboard = forward.dashboard_url
        return fault_lib.KubernetesFaults(self.target, args.name, dashboard, kind=args.kind,
                                          namespace=args.namespace)


class _LocalView(_View):
    """The local target's way: clusters are processes on this machine, so commands act on what runs
    (status: every cluster, or the one named; down: --all, or the one named, default 'servelab'),
    a cluster can be bare (`servelab up` without a manifest), and status shows its processes and
    Serve's own listing, and exits 0 while it runs."""

    up_waits = False  # --wait is for the kubernetes target; a local up returns once it deployed

    def up_without_manifest(self) -> int:
        args = self.args
        if args.name in self.target.names():
            print(f"Cluster '{args.name}' is already running (servelab status).")
            return 0
        # A CLI cluster outlives this command, so it must not die with it.
        cluster = LocalRay(args.name, num_cpus=args.cpus, num_gpus=args.gpus, die_with_owner=False)
        cluster.start(timeout=args.timeout)
        print(f"Serve:     {cluster.serve_url}\nDashboard: {cluster.dashboard_url}\n"
              f"Metrics:   {cluster.metrics_url}\nToken:     {cluster.token_file}\n"
              f"Stop it with: servelab down --name {cluster.name}")
        return 0

    def names(self) -> list[str]:
        running = self.target.names()
        if self.args.command == "down":
            return running if self.args.all else [n for n in running if n == (self.args.name or "servelab")]
        return [n for n in running if not self.args.name or n == self.args.name]

    def show_status(self, name: str) -> bool:
        c = self.target.find(name)
        if c is None:  # stopped since it was listed
            return True
        print(f"{c.name}: owner pid {c.owner_pid}, {len(c.processes())} processes\n"
              f"  serve {c.serve_url}  dashboard {c.dashboard_url}")
        if (c.dir / "manifest.json").exists():
            _print_report(self.target.status(c))
        try:
            apps = c.serve_api.applications()
        except ServeAPIError as exc:
            print(f"  {exc}")
            return True
        for app_name, app in apps.items():
            print(f"  app {app_name} [{app.get('status')}] {app.get('route_prefix') or ''}")
            for dep_name, dep in (app.get("deployments") or {}).items():
                running = count_running(dep)
                print(f"    {dep_name} [{dep.get('status')}] {running}/{dep.get('target_num_replicas')} replicas running")
        return True

    def said_down(self, name: str, deleted: bool) -> None:
        pass  # stopping it said so

    def faults(self, stack):
        """The fault verbs on the one local cluster running, or the one --name names."""
        from servelab.faults import _verbs as fault_lib

        return fault_lib.LocalFaults(_local_cluster(self.args.name))


def _view(target: Target, args) -> _View:
    return (_LocalView if isinstance(target, targets.LocalTarget) else _View)(target, args)


def cmd_up(args) -> int:
    target = _target(args)
    view = _view(target, args)
    if not args.manifest:
        return view.up_without_manifest()
    if args.replace and not isinstance(target, targets.LocalTarget):
        raise ServelabError("--replace is for the local target: KubeRay upgrades by upgradeStrategy.type")
    handle = target.up(args.manifest, timeout=args.timeout, **({"upgrade": "replace"} if args.replace else {}))
    if args.wait and view.up_waits:
        _print_report(target.wait_ready(handle, timeout=args.timeout))
    urls = target.endpoints(handle)
    if urls["serve"]:  # local: at once; kubernetes: through `servelab k8s port-forward`
        name = target.name_of(handle)
        print(f"{name} is up: Serve {urls['serve']}, dashboard {urls['dashboard']}\n"
              f"Check it with: servelab status --name {name}")
    return 0


def cmd_status(args) -> int:
    target = _target(args)
    view = _view(target, args)
    names = view.names()
    if not names:
        print("No servelab cluster is running.")
        return 1 if args.name else 0
    well = [view.show_status(name) for name in names]
    return 0 if all(well) else 1


def cmd_down(args) -> int:
    target = _target(args)
    view = _view(target, args)
    names = view.names()
    if not names:
        print("Nothing to stop.")
    for name in names:
        view.said_down(name, target.down(name))
    return 0


def cmd_k8s(args) -> int:
    from servelab.targets import _kubernetes as k8s

    if args.action == "install":
        k8s.install_operator(args.version, args.operator_namespace)
        print(f"KubeRay {args.version} is installed and its operator is available.")
    elif args.action == "check":
        k8s.check_operator(args.operator_namespace, timeout=args.timeout)
        print("KubeRay's CRDs are established and its operator is available.")
    elif args.action == "commands":
        for cmd in k8s.helm_commands(args.version, args.operator_namespace):
            print(" ".join(cmd))
    else:  # port-forward
        if not args.name:
            raise ServelabError("name the RayService or RayCluster: servelab k8s port-forward --name NAME")
        with _kubernetes(args).port_forward(args.name, args.kind) as fwd:
            print(f"Serve:     {fwd.serve_url}\nDashboard: {fwd.dashboard_url}\n(Ctrl-C to stop)", flush=True)
            try:
                signal.pause()
            except KeyboardInterrupt:
                pass
    return 0


def cmd_validate(args) -> int:
    from servelab.manifests import _kuberay as manifests

    errors = 0
    for path in args.files:
        findings = manifests.validate_file(path)
        errors += sum(f.severity == "error" for f in findings)
        for f in findings:
            print(f)
        if not findings:
            print(f"{path}: ok")
    return 1 if errors else 0


def cmd_labs(args) -> int:
    if args.action == "generate":
        written = labs.generate(everything=args.all)
        for path in written:
            print(f"wrote {path.relative_to(layout().root)}")
        if not written:
            print("labs/ is up to date with grading/source (--all regenerates anyway)")
        return 0
    diffs = labs.stale()
    for line in diffs:
        print(line)
    if diffs:
        print("labs/ is out of date: run `make labs` and commit the result.")
    return 1 if diffs else 0


def cmd_check(args) -> int:
    from servelab.grading import selfcheck

    notebook = Path(args.notebook) if args.notebook else layout().labs / args.lab / f"{args.lab}.ipynb"
    if not notebook.exists():
        print(f"error: no notebook {notebook}; pass --notebook with your copy of the lab", file=sys.stderr)
        return 2
    print(f"Running {notebook} in a fresh kernel, top to bottom, as the grader will "
          "(a live lab starts its own cluster: minutes)...", flush=True)
    outcomes = selfcheck.check_notebook(args.lab, notebook, timeout_s=args.timeout)
    print(selfcheck.report(outcomes))
    return 0 if all(o.passed for o in outcomes) else 1


def cmd_grade(args) -> int:
    from servelab.grading import _autograde as autograde

    try:
        results = autograde.grade(Path(args.course), args.lab, force=args.force, limit_s=args.limit,
                                  workers=args.workers, use_sandbox=args.sandbox, ray_address=args.ray)
    except autograde.GradingError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 1 if any(r.score is None for r in results) else 0


def _json_body(text: str | None):
    """The --json request body, parsed (None when not given)."""
    import json

    if text is None:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ServelabError(f"--json is not JSON: {exc}") from None


def cmd_load(args) -> int:
    import json

    from servelab.faults import load

    payload = _json_body(args.json)
    report = load.run(args.url, payload, concurrency=args.concurrency, rate=args.rate,
                      count=args.count, duration_s=args.duration, timeout_s=args.timeout)
    print(json.dumps(report.as_dict(), indent=2) if args.as_json else report.summary())
    if args.plot:
        from servelab.observe._plots import plot_load

        plot_load(report).figure.savefig(args.plot, dpi=100, bbox_inches="tight")
        print(f"wrote {args.plot}")
    return 0 if report.ok else 1


FAULT_ARGS = {"kill-replica": ["APP", "DEPLOYMENT"], "hang-replica": ["APP", "DEPLOYMENT"],
              "fail-health": ["APP", "DEPLOYMENT"], "lose-state": ["APP", "DEPLOYMENT"],
              "kill-node": ["GROUP"], "bad-rollout": ["FILE"],
              "kill-controller": [], "kill-proxy": [], "kill-head": []}


def _local_cluster(name: str | None) -> LocalRay:
    clusters = _select(name)
    if len(clusters) == 1:
        return clusters[0]
    if name and clusters:  # a RayService's clusters during an upgrade: the one behind its serve Service
        return targets.local.find(name) or clusters[0]
    running = ", ".join(c.name for c in LocalRay.find()) or "none"
    raise ServelabError(f"{'no' if not clusters else 'more than one'} local cluster "
                        f"{'named ' + repr(name) if name else 'running'}: pick one with --name (running: {running})",
                        layer="Ray runtime")


def cmd_fault(args) -> int:
    import contextlib
    import json

    wanted = FAULT_ARGS[args.verb]
    if len(args.args) != len(wanted):
        raise ServelabError(f"usage: servelab fault {args.verb} {' '.join(wanted)}".rstrip()
                            + f" (got {len(args.args)} argument(s))")
    kwargs = {"count": args.count} if args.verb == "kill-replica" else {}
    with contextlib.ExitStack() as stack:
        faults = _view(_target(args), args).faults(stack)
        if not args.measure:
            fault = faults.inject(args.verb, *args.args, **kwargs)
            if args.as_json:
                print(json.dumps(fault.as_dict(), indent=2, default=str))
            return 0
        from servelab.faults import recovery

        payload = _json_body(args.json)
        result = recovery.measure(faults, lambda f: f.inject(args.verb, *args.args, **kwargs), args.measure,
                                  payload, concurrency=args.concurrency, max_s=args.max, retries=args.retries)
    print(json.dumps(result.as_dict(), indent=2) if args.as_json else result.summary())
    if args.plot:
        result.plot().figure.savefig(args.plot, dpi=100, bbox_inches="tight")
        print(f"wrote {args.plot}")
    return 0 if result.recovered else 1


def _objects(args):
    """What `get`/`describe`/`logs`/`delete` read: the local target's objects, or the real ones."""
    from servelab.cli import _kubectl as kubectl

    target = _target(args)
    if isinstance(target, targets.LocalTarget):
        return kubectl.LocalObjects(args.name)
    return kubectl.KubernetesObjects(target, args.name)


def _resource(word: str) -> str:
    from servelab.cli._kubectl import RESOURCES

    if word.lower() not in RESOURCES:
        raise ServelabError(f"the server doesn't have a resource type \"{word}\"",
                            hint="servelab get takes pods, services, rayservices or rayclusters")
    return RESOURCES[word.lower()]


def cmd_get(args) -> int:
    from servelab.cli import _kubectl as kubectl

    resource = _resource(args.resource)
    while True:
        objects = _objects(args)
        items = [i for i in objects.list(resource) if kubectl._matches(i["metadata"].get("labels") or {}, args.selector)]
        if args.object:
            items = [kubectl.find(items, args.object, resource)]
        print(kubectl.output(resource, items, args.output), flush=True)
        if not args.watch:
            return 0
        time.sleep(args.interval)
        print()


def _events(objects, obj: dict) -> list[dict]:
    if hasattr(objects, "events"):
        return objects.events(obj["metadata"]["name"])
    return obj.get("events") or []


def _type_and_name(args) -> None:
    """kubectl's TYPE/NAME form (`describe pod/x`, what `get -o name` prints) as TYPE NAME."""
    if args.object is None:
        if "/" not in args.resource:
            raise ServelabError(f"name the {args.resource}: servelab {args.command} {args.resource} NAME")
        args.resource, args.object = args.resource.split("/", 1)


def cmd_describe(args) -> int:
    from servelab.cli import _kubectl as kubectl

    _type_and_name(args)
    resource = _resource(args.resource)
    objects = _objects(args)
    obj = kubectl.find(objects.list(resource), args.object, resource)
    print(kubectl.describe(resource, obj, _events(objects, obj)))
    return 0


def cmd_logs(args) -> int:
    from servelab.cli import _kubectl as kubectl

    objects = _objects(args)
    pod = kubectl.find(objects.list("pod"), args.pod, "pod")
    if isinstance(objects, kubectl.LocalObjects):
        if args.previous:
            raise ServelabError(f'previous terminated container "ray" in pod "{args.pod}" not found',
                                hint="KubeRay re-creates a Ray pod that died instead of restarting its container, "
                                     "so a pod has no previous container; the replacement is a new pod")
        from servelab.targets import _local_objects as local_objects

        cluster = objects.cluster_of(pod)
        files = local_objects.node_log_files(cluster, pod)
        if not files:
            raise ServelabError(f"pod {args.pod} has no Ray node yet, so no logs", layer="Kubernetes")
        for path in files:
            lines = path.read_text(errors="replace").splitlines()
            print(f"==> {path} <==")
            print("\n".join(lines[max(0, len(lines) - args.tail):] if args.tail >= 0 else lines))
        return 0
    text = objects._core().read_namespaced_pod_log(args.pod, objects.target._namespace(), previous=args.previous,
                                                   tail_lines=args.tail if args.tail >= 0 else None)
    print(text)
    return 0


def cmd_delete(args) -> int:
    from servelab.cli import _kubectl as kubectl

    _type_and_name(args)
    if _resource(args.resource) != "pod":
        raise ServelabError("servelab delete takes pods (delete a RayService or RayCluster with servelab down)")
    objects = _objects(args)
    pod = kubectl.find(objects.list("pod"), args.object, "pod")
    if isinstance(objects, kubectl.LocalObjects):
        from servelab.faults._verbs import LocalFaults

        labels = pod["metadata"]["labels"]
        node_id = (pod["metadata"].get("annotations") or {}).get("servelab.io/ray-node-id")
        if labels.get("ray.io/node-type") == "head":
            raise ServelabError("the local target cannot re-create a head pod in place (KubeRay would, and without "
                                "GCS fault tolerance every worker restarts with it)",
                                hint="bring the whole cluster down and up again: servelab down, servelab up FILE")
        if not node_id:
            raise ServelabError(f"pod {args.object} runs no Ray node yet; nothing to delete", layer="Kubernetes")
        cluster = objects.cluster_of(pod)
        node = next(n for n in cluster.nodes() if n["node_id"] == node_id)
        LocalFaults(cluster).kill_node_of(node, show=False)
    else:
        objects._core().delete_namespaced_pod(args.object, objects.target._namespace())
    print(f'pod "{args.object}" deleted')
    return 0


def cmd_env(args) -> int:
    if not args.shell and not args.json:
        envcheck.print_report()
        return 0
    values = _local_cluster(args.name).cli_env()
    if args.json:
        import json

        print(json.dumps(values, indent=2))
    else:
        import shlex

        print("\n".join(f"export {k}={shlex.quote(v)}" for k, v in values.items()))
    return 0


def _target_options(parser, target: bool = True) -> None:
    if target:
        parser.add_argument("--target", choices=["local", "kubernetes"],
                            default=os.environ.get("SERVELAB_TARGET", "local"),
                            help="where the manifest runs (default: $SERVELAB_TARGET or local)")
    parser.add_argument("--namespace", help="kubernetes: namespace for manifests that name none")
    parser.add_argument("--kind", choices=["RayService", "RayCluster"], default="RayService",
                        help="kubernetes: the kind of the named object")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="servelab", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    up = sub.add_parser("up", help="start a local Ray cluster with Serve (127.0.0.1 only), "
                                   "shaped by a RayCluster/RayService manifest if given")
    up.add_argument("manifest", nargs="?", help="a RayCluster or RayService YAML file")
    up.add_argument("--name", default="servelab")
    up.add_argument("--cpus", type=int, default=None, help="logical CPUs (default: max(4, cores))")
    up.add_argument("--gpus", type=int, default=0, help="logical GPUs to advertise")
    up.add_argument("--timeout", type=float, default=300)
    up.add_argument("--wait", action="store_true", help="kubernetes: wait for the Ready condition")
    up.add_argument("--replace", action="store_true",
                    help="local: a rayClusterConfig change stops the cluster and starts the new one (downtime) "
                         "instead of KubeRay's pending cluster (two clusters at once)")
    _target_options(up)
    up.set_defaults(func=cmd_up)

    status = sub.add_parser("status", help="clusters, applications and replicas (RayService vocabulary)")
    status.add_argument("--name")
    _target_options(status)
    status.set_defaults(func=cmd_status)

    down = sub.add_parser("down", help="stop a local cluster by its own pids, or delete the Kubernetes object")
    down.add_argument("--name")
    down.add_argument("--all", action="store_true", help="every local cluster this user started")
    _target_options(down)
    down.set_defaults(func=cmd_down)

    k8s = sub.add_parser("k8s", help="the KubeRay operator on your Kubernetes cluster (helm), port-forward")
    k8s.add_argument("action", choices=["install", "check", "commands", "port-forward"])
    k8s.add_argument("--version", default=KUBERAY_VERSION, help="KubeRay chart version")
    k8s.add_argument("--operator-namespace", default="kuberay-system")
    k8s.add_argument("--name", help="port-forward: the RayService or RayCluster")
    k8s.add_argument("--timeout", type=float, default=300)
    _target_options(k8s, target=False)
    k8s.set_defaults(func=cmd_k8s)

    env = sub.add_parser("env", help="versions, machine size and active target; with --shell, the environment "
                                     "that lets Ray's own CLIs (ray, serve) talk to a local cluster")
    env.add_argument("--shell", action="store_true",
                     help='print `export` lines: eval "$(servelab env --shell --name NAME)"')
    env.add_argument("--json", action="store_true", help="the same variables as JSON")
    env.add_argument("--name", help="the local cluster (default: the only one running)")
    env.set_defaults(func=cmd_env)

    def kubectl_verb(verb: str, help_: str, func, *positionals: tuple[str, dict]) -> argparse.ArgumentParser:
        verb_parser = sub.add_parser(verb, help=help_)
        for name, options in positionals:
            verb_parser.add_argument(name, **options)
        verb_parser.add_argument("--name", help="local: only this cluster")
        _target_options(verb_parser)
        verb_parser.set_defaults(func=func)
        return verb_parser

    object_name = ("object", {"nargs": "?", "help": "NAME (or give TYPE/NAME as one word)"})
    get = kubectl_verb("get", "kubectl get: pods, services, rayservices, rayclusters (either target)", cmd_get,
                       ("resource", {}), ("object", {"nargs": "?", "help": "one object by name"}))
    get.add_argument("-l", "--selector", help="label selector, e.g. ray.io/node-type=worker")
    get.add_argument("-o", "--output", choices=["wide", "json", "yaml", "name"])
    get.add_argument("-w", "--watch", action="store_true", help="print again every --interval seconds (Ctrl-C ends)")
    get.add_argument("--interval", type=float, default=2)
    kubectl_verb("describe", "kubectl describe: pod, rayservice, raycluster, service", cmd_describe,
                 ("resource", {}), object_name)
    logs = kubectl_verb("logs", "kubectl logs: a pod's Ray logs", cmd_logs, ("pod", {}))
    logs.add_argument("-p", "--previous", action="store_true")
    logs.add_argument("--tail", type=int, default=-1)
    kubectl_verb("delete", "kubectl delete pod: a worker pod dies; KubeRay re-creates it", cmd_delete,
                 ("resource", {}), object_name)

    validate = sub.add_parser("validate", help="check KubeRay manifests (exit 1 on errors)")
    validate.add_argument("files", nargs="+")
    validate.set_defaults(func=cmd_validate)

    ld = sub.add_parser("load", help="bounded load on a Serve endpoint on this machine (loopback only)")
    ld.add_argument("url", help="for example http://127.0.0.1:8000/rag/")
    ld.add_argument("--json", help='the request body, e.g. \'{"question": "why pending?"}\' (POST)')
    ld.add_argument("--concurrency", "-c", type=int, default=1, help="clients in flight (default 1)")
    ld.add_argument("--rate", type=float, help="fixed requests per second instead of a closed loop")
    ld.add_argument("--count", "-n", type=int, default=100, help="at most this many requests")
    ld.add_argument("--duration", type=float, default=30, help="at most this many seconds")
    ld.add_argument("--timeout", type=float, default=10, help="per-request timeout in seconds")
    ld.add_argument("--as-json", action="store_true", help="print the summary as JSON")
    ld.add_argument("--plot", help="save a latency/error timeline as this PNG")
    ld.set_defaults(func=cmd_load)

    fault = sub.add_parser(
        "fault", help="inject a fault into a cluster servelab runs (and measure recovery under load)",
        description="Verbs and their arguments: " + "; ".join(
            f"{verb} {' '.join(a)}".strip() for verb, a in FAULT_ARGS.items())
        + ". kill-head is for the Kubernetes target only.")
    fault.add_argument("verb", choices=list(FAULT_ARGS))
    fault.add_argument("args", nargs="*", help="APP DEPLOYMENT, GROUP or FILE, as the verb needs")
    fault.add_argument("--name", help="the local cluster (default: the only one running), "
                                      "or the Kubernetes RayService/RayCluster")
    fault.add_argument("--count", type=int, default=1, help="kill-replica: how many replicas")
    fault.add_argument("--dashboard", help="kubernetes: a dashboard URL you already port-forward "
                                           "(default: servelab starts a port-forward)")
    fault.add_argument("--measure", metavar="URL",
                       help="send bounded load to URL while injecting, and report recovery")
    fault.add_argument("--json", help="--measure: the request body (POST)")
    fault.add_argument("--concurrency", "-c", type=int, default=4, help="--measure: clients in flight")
    fault.add_argument("--max", type=float, default=120, help="--measure: give up after this many seconds")
    fault.add_argument("--retries", type=int, default=0, help="--measure: client retries on 502/503/504")
    fault.add_argument("--as-json", action="store_true", help="print the record or result as JSON")
    fault.add_argument("--plot", help="--measure: save latency, errors and replicas over time as this PNG")
    _target_options(fault)
    fault.set_defaults(func=cmd_fault)

    lab = sub.add_parser("labs", help="student labs generated from grading/source")
    lab.add_argument("action", choices=["generate", "check"])
    lab.add_argument("--all", action="store_true", help="generate: every lab, changed or not")
    lab.set_defaults(func=cmd_labs)

    check = sub.add_parser("check", help="before you submit: run your lab as the grader will and say, "
                                         "for each failing visible test, which layer to look at")
    check.add_argument("lab", help="the lab, e.g. lab2-rag-pipeline")
    check.add_argument("--notebook", help="your notebook (default: labs/LAB/LAB.ipynb)")
    check.add_argument("--timeout", type=float, default=600, help="seconds per cell (default 600)")
    check.set_defaults(func=cmd_check)

    grade = sub.add_parser("grade", help="autograde every submission of a lab in an nbgrader course folder "
                                         "(resumable), with feedback, grades.csv and a summary")
    grade.add_argument("lab", help="the assignment, e.g. lab2-rag-pipeline")
    grade.add_argument("--course", default=".", help="nbgrader course root holding source/ and submitted/ (default: .)")
    grade.add_argument("--force", action="store_true", help="regrade students graded by an earlier run")
    grade.add_argument("--limit", type=float, default=30 * 60, help="wall-clock seconds per submission (default 1800)")
    grade.add_argument("--workers", type=int, default=None,
                       help="submissions graded at once (default: one per core and per 4 GiB free)")
    grade.add_argument("--sandbox", action=argparse.BooleanOptionalAction, default=None,
                       help="run kernels under bwrap (default: when bwrap works here)")
    grade.add_argument("--ray", metavar="ADDRESS", default=None,
                       help="grade on the Ray cluster at ADDRESS (e.g. auto in a RayJob, or 127.0.0.1:PORT after "
                            "`eval \"$(servelab env --shell)\"`): one task per submission, recorded here")
    grade.set_defaults(func=cmd_grade)

    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ServelabError as exc:  # raised on purpose: what went wrong, and its hint; anything else
        print(f"servelab: {exc}", file=sys.stderr)  # is a bug in servelab, and keeps its traceback
        return 1


if __name__ == "__main__":
    sys.exit(main())
