"""Load, validate and lint KubeRay manifests (RayCluster and RayService, ray.io/v1).

`validate_file` returns findings, each with a severity, the field path and a
fix. Errors mean the resource will not work as written; warnings mean it will
run but probably not as meant. Fields servelab does not model are left alone:
a well-formed resource that uses them gets no errors.
"""

from __future__ import annotations

import re
import sys
from importlib import metadata
from pathlib import Path

import yaml

from servelab.manifests import placement, serve_lint
from servelab.manifests._findings import Finding

RAY_KINDS = ("RayCluster", "RayService", "RayJob")
UPGRADE_TYPES = ("NewCluster", "NewClusterWithIncrementalUpgrade", "None")
DEPRECATED = {
    "serviceUnhealthySecondThreshold": "KubeRay no longer uses it; Serve's own health checks decide",
    "deploymentUnhealthySecondThreshold": "KubeRay no longer uses it; Serve's own health checks decide",
}
IMAGE = re.compile(r"^(?:[\w.-]+/)?rayproject/(ray(?:-ml)?):(\S+)$")
# The Ray release an image tag names: "2.60.0-py311-gpu", "2.46.0.0e19ea-py39" (a commit
# build) and "2.49.2.deprecated-py311-gpu" (the last ray-ml tags) all start with it.
TAG_VERSION = re.compile(r"^(\d+\.\d+\.\d+)(?!\d)")
# Where a stock rayproject/ray image finds an application's top-level module: Ray itself and
# the Python standard library. An import_path names an application object, and the only
# ones such an image holds are Ray's own builders (KubeRay's LLM samples use
# ray.serve.llm:build_openai_app). Everything else must come with a custom image or runtime_env.
# (The standard library's names are this Python's; they barely differ between 3.10 and 3.12.)
STOCK_IMAGE_MODULES = frozenset({"ray"}) | sys.stdlib_module_names
# The application runtime_env fields that bring code or packages onto every node.
CODE_FIELDS = ("working_dir", "py_modules", "pip", "uv", "conda")


def load(text: str, name: str = "<text>") -> tuple[list[dict], list[Finding]]:
    try:
        docs = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f"line {mark.line + 1}" if mark else "<yaml>"
        return [], [Finding("error", line, f"not valid YAML: {getattr(exc, 'problem', exc)}",
                            "check indentation and quoting", name)]
    bad = [i for i, d in enumerate(docs) if not isinstance(d, dict)]
    return ([d for d in docs if isinstance(d, dict)],
            [Finding("error", f"document {i + 1}", "not a mapping", "a manifest is a YAML mapping with apiVersion and kind", name)
             for i in bad])


def validate_file(path: str | Path) -> list[Finding]:
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        return [Finding("error", "<file>", f"cannot read: {exc.strerror}", "check the path", str(path))]
    return validate_text(text, str(path))


def validate_text(text: str, name: str = "<text>") -> list[Finding]:
    docs, findings = load(text, name)
    for doc in docs:
        findings += [Finding(f.severity, f.path, f.message, f.fix, name) for f in validate(doc)]
    return findings


def validate(doc: dict) -> list[Finding]:
    kind, api = doc.get("kind"), doc.get("apiVersion")
    if kind not in RAY_KINDS:
        return []  # not ours to judge (a Namespace, a Service, ...)
    out = []
    if api != "ray.io/v1":
        out.append(Finding("error", "apiVersion", f"'{api}' is not served by KubeRay 1.x for {kind}",
                           "use apiVersion: ray.io/v1"))
    spec = doc.get("spec")
    if not isinstance(spec, dict):
        return out + [Finding("error", "spec", "missing or not a mapping", f"a {kind} needs a spec")]
    if kind == "RayCluster":
        out += _cluster(spec, "spec")
    elif kind == "RayService":
        out += _service(spec)
    else:
        out += _job(spec)
    return out


# -- RayCluster structure ----------------------------------------------------
def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _containers(group: dict, path: str) -> tuple[list, list[Finding]]:
    template = group.get("template")
    if not isinstance(template, dict):
        return [], [Finding("error", f"{path}.template", "missing", "every group needs a pod template with a Ray container")]
    containers = (template.get("spec") or {}).get("containers")
    if not isinstance(containers, list) or not containers:
        return [], [Finding("error", f"{path}.template.spec.containers", "missing or empty",
                            "list the Ray container (name and image)")]
    out = []
    for i, c in enumerate(containers):
        cpath = f"{path}.template.spec.containers[{i}]"
        if not isinstance(c, dict) or not c.get("image"):
            out.append(Finding("error", f"{cpath}.image", "missing", "give the container an image, e.g. rayproject/ray:2.60.0"))
            continue
        if not (c.get("resources") or {}).get("limits"):
            out.append(Finding("warning", f"{cpath}.resources.limits", "no resource limits",
                               "set cpu and memory limits: KubeRay derives Ray's num-cpus and memory from them"))
    return containers, out


def _group(group: dict, path: str, worker: bool) -> list[Finding]:
    out = []
    params = group.get("rayStartParams")
    if params is not None and not isinstance(params, dict):
        out.append(Finding("error", f"{path}.rayStartParams", "not a mapping", "write rayStartParams as key: \"value\" pairs"))
    for key, value in (params or {}).items() if isinstance(params, dict) else ():
        if not isinstance(value, str):
            out.append(Finding("error", f"{path}.rayStartParams.{key}", f"value {value!r} is not a string",
                               f"quote it: {key}: \"{value}\" (KubeRay's CRD only takes strings)"))
    _, found = _containers(group, path)
    out += found
    if worker:
        if not group.get("groupName"):
            out.append(Finding("error", f"{path}.groupName", "missing", "name the worker group, e.g. cpu-workers"))
        counts = {k: group.get(k) for k in ("replicas", "minReplicas", "maxReplicas")}
        for key, value in counts.items():
            if value is not None and (not _is_int(value) or value < 0):
                out.append(Finding("error", f"{path}.{key}", f"{value!r} is not a non-negative integer", "use a whole number"))
        lo, hi, n = counts["minReplicas"], counts["maxReplicas"], counts["replicas"]
        if _is_int(lo) and _is_int(hi) and lo > hi:
            out.append(Finding("error", f"{path}.minReplicas", f"minReplicas {lo} > maxReplicas {hi}",
                               "make minReplicas <= maxReplicas"))
        elif _is_int(n) and ((_is_int(lo) and n < lo) or (_is_int(hi) and n > hi)):
            out.append(Finding("warning", f"{path}.replicas", f"replicas {n} is outside [{lo}, {hi}]",
                               "KubeRay clamps it to the bounds; write a value inside them"))
    return out


def _cluster(spec: dict, path: str) -> list[Finding]:
    out = []
    head = spec.get("headGroupSpec")
    if not isinstance(head, dict):
        return [Finding("error", f"{path}.headGroupSpec", "missing", "every Ray cluster needs a head group with a pod template")]
    out += _group(head, f"{path}.headGroupSpec", worker=False)
    workers = spec.get("workerGroupSpecs") or []
    if not isinstance(workers, list):
        out.append(Finding("error", f"{path}.workerGroupSpecs", "not a list", "write worker groups as a list of mappings"))
        workers = []
    names = {}
    for i, group in enumerate(workers):
        gpath = f"{path}.workerGroupSpecs[{i}]"
        if not isinstance(group, dict):
            out.append(Finding("error", gpath, "not a mapping", "each worker group is a mapping"))
            continue
        out += _group(group, gpath, worker=True)
        name = group.get("groupName")
        if name in names:
            out.append(Finding("error", f"{gpath}.groupName", f"'{name}' is also workerGroupSpecs[{names[name]}]",
                               "give every worker group its own name"))
        names.setdefault(name, i)
    auto = spec.get("enableInTreeAutoscaling")
    if auto is not None and not isinstance(auto, bool):
        out.append(Finding("error", f"{path}.enableInTreeAutoscaling", f"{auto!r} is not true or false",
                           "write true or false, unquoted"))
    if head.get("serviceType") in ("LoadBalancer", "NodePort"):
        out.append(Finding("warning", f"{path}.headGroupSpec.serviceType",
                           f"{head['serviceType']} exposes the dashboard (which can run any code) beyond the cluster",
                           "keep ClusterIP and reach the dashboard with kubectl port-forward"))
    out += _versions(spec, path)
    return out


def _groups(spec: dict, path: str) -> list[tuple[str, dict]]:
    """(field path, group) for the head and every worker group that is a mapping."""
    groups = [(f"{path}.headGroupSpec", spec.get("headGroupSpec") or {})]
    groups += [(f"{path}.workerGroupSpecs[{i}]", g)
               for i, g in enumerate(spec.get("workerGroupSpecs") or []) if isinstance(g, dict)]
    return groups


def _pod_containers(group: dict) -> list:
    containers = ((group.get("template") or {}).get("spec") or {}).get("containers")
    return containers if isinstance(containers, list) else []


def _ray_ml(tag: str, ipath: str) -> Finding:
    """A rayproject/ray-ml image: a warning, and the rayproject/ray tag to use instead.

    ray-ml was deprecated from Ray 2.31 (tags got a ".deprecated" suffix, ray-project/ray#46378);
    the last images are Ray 2.49.x and none is published for Ray 2.50 or later
    (ray-project/ray#57070 "stop publishing ray-ml images", merged 2025-10-01). Older tags
    are being deleted from Docker Hub too (ray-project/kuberay#5194). A warning, not an
    error: the validator cannot see which tags a registry still serves.
    """
    version = TAG_VERSION.match(tag)
    python = re.search(r"-py\d+", tag)
    # A ray-ml tag without a platform meant the GPU image; rayproject/ray's means CPU.
    platform = re.search(r"-(?:cpu|gpu|cu\d+)\b", tag)
    instead = "rayproject/ray:" + (version.group(1) if version else "<version>")
    instead += (python.group(0) if python else "") + (platform.group(0) if platform else "-gpu")
    return Finding("warning", ipath,
                   "rayproject/ray-ml images are deprecated and no longer published: the last ones are "
                   "Ray 2.49.x, there are none for Ray 2.50 or later, and older tags are being removed",
                   f"use {instead} (a -gpu/-cuXXX tag on GPU nodes) and bring the ML packages you need: "
                   "build an image FROM it that pip-installs them, or list them in the application's "
                   "runtime_env pip")


def _versions(spec: dict, path: str) -> list[Finding]:
    out = []
    version = spec.get("rayVersion")
    if version is not None and not isinstance(version, str):
        out.append(Finding("error", f"{path}.rayVersion", f"{version!r} is not a string", f'quote it: rayVersion: "{version}"'))
        version = str(version)
    for gpath, group in _groups(spec, path):
        for i, c in enumerate(_pod_containers(group)):
            match = IMAGE.match(str((c or {}).get("image", "")))
            if not match:
                continue
            ipath = f"{gpath}.template.spec.containers[{i}].image"
            repo, tag = match.groups()
            if repo == "ray-ml":
                out.append(_ray_ml(tag, ipath))
            tag_version = TAG_VERSION.match(tag)
            image_version = tag_version.group(1) if tag_version else None
            if version and image_version and image_version != version:
                out.append(Finding("error", ipath, f"image is Ray {image_version} but rayVersion is {version}",
                                   "use the same Ray release in rayVersion and every image tag"))
    try:
        installed = metadata.version("ray")
    except metadata.PackageNotFoundError:
        installed = None
    if version and installed and version != installed:
        out.append(Finding("warning", f"{path}.rayVersion", f"rayVersion {version} but this environment runs Ray {installed}",
                           f"the course is pinned to Ray {installed}; use rayVersion \"{installed}\" and matching images"))
    return out


# -- RayService ----------------------------------------------------------------
def _service(spec: dict) -> list[Finding]:
    out = []
    for key, why in DEPRECATED.items():
        if key in spec:
            out.append(Finding("warning", f"spec.{key}", f"deprecated: {why}", "remove it"))
    strategy = (spec.get("upgradeStrategy") or {}).get("type") if isinstance(spec.get("upgradeStrategy"), dict) else None
    if strategy is not None and strategy not in UPGRADE_TYPES:
        out.append(Finding("error", "spec.upgradeStrategy.type", f"'{strategy}' is not a KubeRay upgrade strategy",
                           f"use one of {', '.join(UPGRADE_TYPES)}"))
    cluster = spec.get("rayClusterConfig")
    if not isinstance(cluster, dict):
        out.append(Finding("error", "spec.rayClusterConfig", "missing", "a RayService needs the cluster to run on"))
    else:
        out += _cluster(cluster, "spec.rayClusterConfig")
    if "serveConfigV2" not in spec:
        out.append(Finding("error", "spec.serveConfigV2", "missing", "give the Serve applications as a YAML string"))
        return out
    config, found = serve_lint.check(spec["serveConfigV2"])
    out += found
    if config is not None and isinstance(cluster, dict) and isinstance(cluster.get("headGroupSpec"), dict):
        out += _scheduling(config, cluster)
        out += _code_not_in_image(config, cluster)
    return out


SUBMISSION_MODES = ("K8sJobMode", "HTTPMode", "InteractiveMode", "SidecarMode")


def _job(spec: dict) -> list[Finding]:
    """What KubeRay's ValidateRayJobSpec (controllers/ray/utils/validation.go, v1.7.0) refuses,
    plus the cluster it would create checked as any RayCluster. An unknown submissionMode is a
    warning: KubeRay accepts it (no enum in the CRD) and never submits the job."""
    out = []
    mode = spec.get("submissionMode", "K8sJobMode")
    if mode not in SUBMISSION_MODES:  # no CRD enum: KubeRay takes it, and then submits nothing
        out.append(Finding("warning", "spec.submissionMode", f"'{mode}' is not a KubeRay submission mode",
                           f"use one of {', '.join(SUBMISSION_MODES)} (or leave it out: K8sJobMode)"))
    selector = spec.get("clusterSelector")
    backoff = spec.get("backoffLimit")
    if selector:
        if not (selector or {}).get("ray.io/cluster"):
            out.append(Finding("error", "spec.clusterSelector", "names no cluster (ray.io/cluster is empty or missing)",
                               "set ray.io/cluster: <name of a running RayCluster>"))
        if spec.get("suspend"):
            out.append(Finding("error", "spec.suspend", "a RayJob on an existing cluster (clusterSelector) cannot be suspended",
                               "drop suspend, or let the job create its cluster with rayClusterSpec"))
        if mode == "SidecarMode":
            out.append(Finding("error", "spec.submissionMode", "SidecarMode cannot use clusterSelector",
                               "use K8sJobMode or HTTPMode with an existing cluster"))
    if _is_int(backoff) and backoff > 0 and (selector or mode == "InteractiveMode"):
        out.append(Finding("error", "spec.backoffLimit",
                           "retries need a cluster the job creates (not clusterSelector, not InteractiveMode)",
                           "drop backoffLimit, or give rayClusterSpec"))
    if mode == "SidecarMode":
        for key in ("submitterPodTemplate", "submitterConfig"):
            if spec.get(key) is not None:
                out.append(Finding("error", f"spec.{key}", "SidecarMode runs the submitter beside the head and takes no "
                                                           f"{key}", f"drop {key}, or use K8sJobMode"))
    cluster = spec.get("rayClusterSpec")
    if cluster is None and not selector:
        out.append(Finding("error", "spec.rayClusterSpec", "missing, and no clusterSelector either",
                           "give the cluster to create for the job, or clusterSelector naming a running one"))
    elif isinstance(cluster, dict):
        out += _cluster(cluster, "spec.rayClusterSpec")
    if spec.get("suspend") and not spec.get("shutdownAfterJobFinishes"):
        out.append(Finding("error", "spec.suspend", "a RayJob may be suspended only if shutdownAfterJobFinishes is true",
                           "set shutdownAfterJobFinishes: true, or drop suspend"))
    for key, least, rule in (("ttlSecondsAfterFinished", 0, "zero or more"), ("backoffLimit", 0, "zero or more"),
                             ("activeDeadlineSeconds", 1, "a positive number of seconds"),
                             ("preRunningDeadlineSeconds", 1, "a positive number of seconds")):
        value = spec.get(key)
        if value is not None and (not _is_int(value) or value < least):
            out.append(Finding("error", f"spec.{key}", f"{value!r} is not {rule}", f"write {rule}, unquoted"))
    if spec.get("ttlSecondsAfterFinished") and not spec.get("shutdownAfterJobFinishes"):
        out.append(Finding("error", "spec.ttlSecondsAfterFinished",
                           "KubeRay refuses a TTL when shutdownAfterJobFinishes is false (the cluster is kept)",
                           "set shutdownAfterJobFinishes: true for the cluster to go this many seconds after the job"))
    if not spec.get("entrypoint") and mode != "InteractiveMode":
        # KubeRay accepts it; its submitter would then submit nothing that runs.
        out.append(Finding("warning", "spec.entrypoint", "missing: the job would run nothing",
                           "give the command the head runs, e.g. python my_script.py"))
    return out


def _stock_ray_containers(cluster: dict) -> list[tuple[str, str]]:
    """(field path, image) of each group whose Ray container runs a stock rayproject/ray image.

    KubeRay runs Ray in a pod's first container. A container that sets PYTHONPATH is left
    out: it may point into a mounted volume, which the validator cannot see into, just as
    it cannot see into a custom image.
    """
    out = []
    for gpath, group in _groups(cluster, "spec.rayClusterConfig"):
        containers = _pod_containers(group)
        ray = containers[0] if containers and isinstance(containers[0], dict) else {}
        match = IMAGE.match(str(ray.get("image", "")))
        env = {e.get("name") for e in ray.get("env") or [] if isinstance(e, dict)}
        if match and match.group(1) == "ray" and "PYTHONPATH" not in env:
            out.append((f"{gpath}.template.spec.containers[0].image", ray["image"]))
    return out


def _code_not_in_image(config: dict, cluster: dict) -> list[Finding]:
    """Applications whose code is neither in the image nor brought by their runtime_env."""
    stock = _stock_ray_containers(cluster)
    if not stock:
        return []  # custom images: the validator cannot see what code they hold
    ipath, image = stock[0]
    others = f"; {len(stock) - 1} more group(s) run a stock image too" if len(stock) > 1 else ""
    out = []
    for i, app in enumerate(config.get("applications") or []):
        if not isinstance(app, dict):
            continue
        imp = app.get("import_path")
        if not isinstance(imp, str) or not serve_lint.IMPORT_PATH.match(imp):
            continue  # serve_lint reports malformed import paths
        module = serve_lint.import_module_name(imp).split(".")[0]
        env = app.get("runtime_env") if isinstance(app.get("runtime_env"), dict) else {}
        if module in STOCK_IMAGE_MODULES or any(env.get(key) for key in CODE_FIELDS):
            continue
        out.append(Finding(
            "warning", f"spec.serveConfigV2.applications[{i}].import_path",
            f"module '{module}' is in neither the stock image {image} ({ipath}{others}) nor the "
            f"application's runtime_env: on a real cluster the application fails with "
            f"ModuleNotFoundError: No module named '{module}'",
            "build an image that contains the code (as docker/rag-app.Dockerfile does: FROM rayproject/ray, "
            "COPY the package, set PYTHONPATH) and run it in the head and every worker group, or bring the "
            "code with the application's runtime_env: working_dir (a zip URL of the code) or py_modules"))
    return out


def _scheduling(config: dict, cluster: dict) -> list[Finding]:
    try:
        shapes = placement.node_shapes(cluster)
    except ValueError as exc:
        return [Finding("error", "spec.rayClusterConfig", str(exc), "use Kubernetes quantities such as 500m, 2, 4Gi")]
    out, demands, paths = [], [], {}
    biggest_cpu, biggest_gpu = placement.largest(shapes)
    for i, j, dep in serve_lint.deployments(config):
        path = f"spec.serveConfigV2.applications[{i}].deployments[{j}]"
        opts = dep.get("ray_actor_options") if isinstance(dep.get("ray_actor_options"), dict) else {}
        cpus, gpus = opts.get("num_cpus", 1), opts.get("num_gpus", 0)
        if not all(isinstance(v, (int, float)) for v in (cpus, gpus)):
            continue  # the schema pass reports non-numbers
        auto = dep.get("autoscaling_config") if isinstance(dep.get("autoscaling_config"), dict) else None
        replicas = auto.get("max_replicas", 1) if auto else dep.get("num_replicas", 1)
        if not _is_int(replicas):
            continue
        name = f"{i}:{dep.get('name')}"
        paths[name] = path
        if cpus > biggest_cpu + 1e-9 or gpus > biggest_gpu + 1e-9:
            out.append(Finding("error", f"{path}.ray_actor_options",
                               f"each replica of {dep.get('name')} needs {cpus:g} CPU and {gpus:g} GPU, but the largest "
                               f"node offers {biggest_cpu:g} CPU and {biggest_gpu:g} GPU: it can never be placed",
                               "ask for less per replica, or add a worker group whose pods offer that much"))
            continue
        demands.append(placement.Demand(name, float(cpus), float(gpus), replicas))
        share = placement.gpus_per_device(gpus)
        if share and 1 / gpus - share > 1e-9:
            out.append(Finding("warning", f"{path}.ray_actor_options.num_gpus",
                               f"{gpus:g} GPU per replica fits {share} replicas per GPU and wastes the rest",
                               "use a fraction that divides 1 (0.5, 0.25, 0.2, ...)"))
    for name, count in placement.unplaceable(shapes, demands).items():
        out.append(Finding("error", f"{paths[name]}",
                           f"{count} replica(s) of {name.split(':', 1)[1]} cannot be placed even with every worker "
                           "group at maxReplicas", "raise the groups' maxReplicas or lower replicas / per-replica resources"))
    head = shapes[0]
    if head.cpus > 0 and any(d.gpus == 0 for d in demands):
        out.append(Finding("warning", "spec.rayClusterConfig.headGroupSpec.rayStartParams.num-cpus",
                           f"the head offers {head.cpus:g} CPUs, so CPU-only replicas may be scheduled on the head",
                           'set num-cpus: "0" on the head to keep model work on worker pods'))
    return out
