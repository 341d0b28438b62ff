"""Lab 8's scenario and the checks of a production plan written as a Serve config.

The learner plans the course's RAG pipeline for a production cluster: for each stage a
resource shape (CPUs, a GPU fraction, memory) and a scaling rule, written as the
`serveConfigV2` a RayService would carry. The checks here are the reasoning of the
lessons made explicit, so a failing check says which rule, for which field, and why:

- a stage with no GPU code holds no GPU; a stage with no CPU path gets one;
- Ray packs replicas onto a GPU by their fractions, and only GPU memory limits how many
  really fit: a fraction must be memory-safe;
- a replica that needs gigabytes of RAM says so (`memory`), or Ray over-packs a node;
- at max scale the plan meets peak traffic, fits the node groups, and keeps two replicas
  of every stage; the stage whose queue grows (the generator) autoscales on it, with a
  target that lets its batches fill before it scales out.

Several plans pass: these are rules, not an answer key.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from servelab.manifests._findings import Finding
from servelab.manifests.serve_lint import IMPORT_PATH
from servelab.manifests.serve_lint import check as lint

GB = 1 << 30
PEAK_RPS = 12.0
GPU_MEMORY_GB = 24
LAYERS = ("Kubernetes", "KubeRay", "Ray runtime", "Serve", "application code")


@dataclass(frozen=True)
class NodeGroup:
    name: str
    max_nodes: int
    cpus: int
    memory_gb: int
    gpus: int


GROUPS = (NodeGroup("cpu-workers", 4, 8, 32, 0), NodeGroup("gpu-workers", 3, 8, 64, 1))


@dataclass(frozen=True)
class Stage:
    name: str
    does: str
    cpu_ms: float | None      # one request on one CPU; None: no CPU implementation
    gpu_ms: float | None      # one request on a GPU; None: no GPU code at all
    gpu_memory_gb: float      # weights and cache on the GPU
    host_memory_gb: float     # RAM per replica
    batch: int = 1            # requests one call can serve together

    def per_replica_rps(self, on_gpu: bool) -> float:
        ms = self.gpu_ms if on_gpu else self.cpu_ms
        return 1000.0 * self.batch / ms if ms else 0.0


STAGES = (
    Stage("RAGPipeline", "ingress: validates the question, calls the stages in order", 2, None, 0, 0.3),
    Stage("Normalizer", "cleans and lower-cases the question", 0.5, None, 0, 0.2),
    Stage("Retriever", "embeds the question, searches a 3 GB in-memory index", 15, None, 0, 4),
    Stage("Reranker", "scores 20 passages with a cross-encoder", 60, 6, 2, 1.5),
    Stage("Generator", "an LLM writes the answer (one alone takes 0.9 s)", None, 1300, 15, 6, batch=8),
)
BY_NAME = {s.name: s for s in STAGES}

ALERTS = {
    "gpu-pending": "A worker pod of gpu-workers has been Pending for 10 minutes: "
                   "'0/9 nodes are available: 3 Insufficient nvidia.com/gpu'.",
    "serve-config-stuck": "The RayService has shown an upgrade in progress for 30 minutes; "
                          "the operator's log repeats that the pending cluster's serve config "
                          "was never submitted.",
    "node-lost": "Requests fail with ActorDiedError: 'the actor died because its node died' "
                 "after a raylet missed its heartbeats.",
    "deployment-unhealthy": "The Generator deployment is UNHEALTHY: its replicas fail their "
                            "health check three times in a row and the controller keeps "
                            "replacing them.",
    "http-500": "5% of answers are HTTP 500 with KeyError: 'passages' raised in "
                "Reranker.__call__ for questions with no match.",
}


class PlanError(AssertionError):
    """A rule the plan breaks; its message names the field and the fix."""


def _fail(findings: list[Finding]) -> None:
    if findings:
        raise PlanError("\n".join(f"{f.path}: {f.message}\n    fix: {f.fix}" for f in findings))


# ---- reading the plan -------------------------------------------------------------

@dataclass
class Shape:
    name: str
    path: str
    cpus: float
    gpus: float
    memory_gb: float | None   # None: not declared
    low: int                  # replicas at minimum
    high: int                 # replicas at max scale
    autoscaling: dict | None
    max_ongoing: int


def _app(serve_config: str, strict: bool = False) -> tuple[dict, str]:
    """The one application; strict also refuses keys Ray would ignore."""
    config, findings = lint(serve_config, "serve_config", strict=strict)
    _fail(findings if strict else [f for f in findings if f.severity == "error"])
    apps = config.get("applications") or []
    if len(apps) != 1:
        _fail([Finding("error", "serve_config.applications", f"{len(apps)} applications",
                       "plan exactly one application: the RAG pipeline")])
    return apps[0], "serve_config.applications[0]"


def shapes(serve_config: str, strict: bool = False) -> dict[str, Shape]:
    """Each stage's resource shape and replica bounds, read as Ray would read them."""
    app, base = _app(serve_config, strict)
    out = {}
    for i, dep in enumerate(app.get("deployments") or []):
        opts = dep.get("ray_actor_options") or {}
        auto = dep.get("autoscaling_config")
        if isinstance(auto, dict):
            low, high = auto.get("min_replicas", 1), auto.get("max_replicas", 1)
        else:
            low = high = dep.get("num_replicas", 1)
        memory = opts.get("memory")
        out[dep.get("name")] = Shape(
            dep.get("name"), f"{base}.deployments[{i}]", float(opts.get("num_cpus", 1)),
            float(opts.get("num_gpus", 0)), memory / GB if memory is not None else None,
            int(low), int(high), auto if isinstance(auto, dict) else None,
            int(dep.get("max_ongoing_requests", 5)))
    return out


def planned_stages(serve_config: str, strict: bool = False) -> dict[str, Shape]:
    """shapes(), refusing a plan that misses a stage or names one the pipeline lacks."""
    planned = shapes(serve_config, strict)
    base = "serve_config.applications[0]"
    problems = [Finding("error", f"{base}.deployments", f"no entry for {name}",
                        f"add `- name: {name}` with its resources and replicas")
                for name in BY_NAME if name not in planned]
    problems += [Finding("error", planned[name].path + ".name", f"{name!r} is not a stage of the pipeline",
                         f"use the deployment names {', '.join(BY_NAME)}")
                 for name in planned if name not in BY_NAME]
    _fail(problems)
    return planned


# ---- the graded checks ------------------------------------------------------------

def check_valid(serve_config: str) -> dict[str, Shape]:
    """The config plans every stage, and Ray would follow every field of it: a key Ray
    ignores (an old name, a typo) fails here, although Ray would deploy it."""
    return planned_stages(serve_config, strict=True)


def gpus_per_device(fraction: float) -> int:
    """How many replicas asking for `fraction` of a GPU Ray may place on one device."""
    return math.floor(1 / fraction + 1e-9)


def check_resources(serve_config: str) -> None:
    """Devices that match the code, memory-safe GPU fractions, declared RAM."""
    problems = []
    for name, shape in planned_stages(serve_config).items():
        stage, opts = BY_NAME[name], shape.path + ".ray_actor_options"
        if stage.gpu_ms is None and shape.gpus > 0:
            problems.append(Finding("error", f"{opts}.num_gpus", f"{name} has no GPU code: it would hold "
                                    f"{shape.gpus:g} GPU and never use it", "remove num_gpus (CPU only)"))
        if stage.cpu_ms is None and shape.gpus == 0:
            problems.append(Finding("error", f"{opts}.num_gpus", f"{name} only runs on a GPU",
                                    "give it a GPU fraction that fits its memory"))
        if shape.gpus > 1:
            problems.append(Finding("error", f"{opts}.num_gpus", f"{name} asks for {shape.gpus:g} GPUs; "
                                    "its model fits on one", "ask for at most 1"))
        elif shape.gpus > 0:
            n = gpus_per_device(shape.gpus)
            if n * stage.gpu_memory_gb > GPU_MEMORY_GB:
                problems.append(Finding(
                    "error", f"{opts}.num_gpus",
                    f"with num_gpus {shape.gpus:g} Ray may put {n} {name} replicas on one GPU: "
                    f"{n} x {stage.gpu_memory_gb:g} GB > {GPU_MEMORY_GB} GB of GPU memory",
                    f"use a fraction above {1 / (GPU_MEMORY_GB // stage.gpu_memory_gb + 1):.3g}, "
                    "so that Ray's packing is memory-safe"))
        if stage.host_memory_gb >= 1 and (shape.memory_gb or 0) < stage.host_memory_gb:
            problems.append(Finding(
                "error", f"{opts}.memory", f"{name} needs {stage.host_memory_gb:g} GiB of RAM per replica, "
                f"declared {shape.memory_gb or 0:.2g} GiB: Ray would over-pack a node and the OS kills one",
                f"set memory: {int(stage.host_memory_gb * GB)}  # bytes"))
    _fail(problems)


def pack_gpus(planned: dict[str, Shape], devices: int) -> list[list[str]] | None:
    """Ray-like placement of every GPU replica at max scale: first fit, largest fraction
    first, by fraction only. Returns the stage names on each device, or None if some
    replica finds no room (it would stay PENDING)."""
    replicas = sorted(((s.gpus, s.name) for s in planned.values() if s.gpus > 0 for _ in range(s.high)),
                      reverse=True)
    free, placed = [1.0] * devices, [[] for _ in range(devices)]
    for fraction, name in replicas:
        for d in range(devices):
            if free[d] + 1e-9 >= fraction:
                free[d] -= fraction
                placed[d].append(name)
                break
        else:
            return None
    return placed


def check_scaling(serve_config: str) -> None:
    """Two replicas of every stage; peak met and the groups not overrun at max scale; the
    generator autoscales on its queue with room for a batch."""
    planned, problems = planned_stages(serve_config), []
    for name, shape in planned.items():
        stage = BY_NAME[name]
        if shape.low < 2:
            problems.append(Finding("error", shape.path, f"{name} can drop to {shape.low} replica(s): "
                                    "one crash then fails every request until Serve replaces it",
                                    "keep at least 2 replicas (num_replicas or min_replicas)"))
        rps = shape.high * stage.per_replica_rps(shape.gpus > 0)
        if rps < PEAK_RPS:
            problems.append(Finding("error", shape.path, f"{name} serves at most {rps:.1f} requests/s at "
                                    f"max scale ({shape.high} replica(s)); peak is {PEAK_RPS:g}",
                                    "raise max_replicas (or num_replicas)"))
    problems += _generator(planned["Generator"], BY_NAME["Generator"])
    problems += _capacity(planned)
    _fail(problems)


def _generator(shape: Shape, stage: Stage) -> list[Finding]:
    auto, out = shape.autoscaling, []
    if auto is None:
        return [Finding("error", f"{shape.path}.autoscaling_config", "the Generator's queue is what grows "
                        "under load, but it does not autoscale", "give it autoscaling_config with "
                        "target_ongoing_requests, min_replicas and max_replicas")]
    if shape.high <= shape.low:
        out.append(Finding("error", f"{shape.path}.autoscaling_config.max_replicas",
                           "max_replicas equals min_replicas: nothing to scale",
                           "leave room between min_replicas and max_replicas"))
    target = auto.get("target_ongoing_requests", 2)
    if target < stage.batch:
        default = "" if "target_ongoing_requests" in auto else " (Ray's default: the field is not set)"
        out.append(Finding("error", f"{shape.path}.autoscaling_config.target_ongoing_requests",
                           f"target {target}{default}: the autoscaler adds replicas long before a batch "
                           f"of {stage.batch} fills, so each GPU works on small batches",
                           f"set target_ongoing_requests to the batch size, {stage.batch}"))
    elif target > stage.batch:
        out.append(Finding("error", f"{shape.path}.autoscaling_config.target_ongoing_requests",
                           f"target {target}: a second batch of {stage.batch} waits in each replica's queue "
                           "before the autoscaler adds one, and its requests wait a whole batch longer",
                           f"set target_ongoing_requests to the batch size, {stage.batch}"))
    if shape.max_ongoing <= max(target, stage.batch):
        out.append(Finding("error", f"{shape.path}.max_ongoing_requests",
                           f"a replica accepts {shape.max_ongoing} requests at once: no more than its target "
                           f"of {target}, so the next batch cannot gather in the replica while one runs",
                           "set max_ongoing_requests above the target"))
    return out


def _capacity(planned: dict[str, Shape]) -> list[Finding]:
    out = []
    devices = sum(g.max_nodes * g.gpus for g in GROUPS)
    if pack_gpus(planned, devices) is None:
        asked = " + ".join(f"{s.high} x {s.gpus:g} ({s.name})" for s in planned.values() if s.gpus)
        out.append(Finding("error", "serve_config (max scale)", f"GPU replicas at max scale do not fit "
                           f"{devices} GPUs: {asked}", "lower a max_replicas or a fraction"))
    else:
        for d, names in enumerate(pack_gpus(planned, devices)):
            used = sum(BY_NAME[n].gpu_memory_gb for n in names)
            if used > GPU_MEMORY_GB:
                out.append(Finding("error", "serve_config (max scale)", f"GPU {d} would hold {', '.join(names)}: "
                                   f"{used:g} GB > {GPU_MEMORY_GB} GB", "make the fractions memory-safe together"))
    for shape in planned.values():  # a replica runs on one node: it must fit a node of a group it can use
        nodes = [g for g in GROUPS if g.gpus or not shape.gpus]
        if not any(shape.cpus <= g.cpus and (shape.memory_gb or 0) <= g.memory_gb for g in nodes):
            out.append(Finding("error", f"{shape.path}.ray_actor_options",
                               f"one {shape.name} replica asks for {shape.cpus:g} CPUs and {shape.memory_gb or 0:g} "
                               f"GiB, more than any {' or '.join(g.name for g in nodes)} node has: it stays PENDING",
                               "ask for what one node offers"))
    cpus = sum(g.max_nodes * g.cpus for g in GROUPS)
    memory = sum(g.max_nodes * g.memory_gb for g in GROUPS)
    want_cpus = sum(s.high * s.cpus for s in planned.values())
    want_memory = sum(s.high * (s.memory_gb or 0) for s in planned.values())
    if want_cpus > cpus:
        out.append(Finding("error", "serve_config (max scale)", f"{want_cpus:g} CPUs at max scale, the "
                           f"groups have {cpus}", "lower num_cpus or max_replicas"))
    if want_memory > memory:
        out.append(Finding("error", "serve_config (max scale)", f"{want_memory:g} GiB at max scale, the "
                           f"groups have {memory}", "lower max_replicas"))
    return out


PINNED = re.compile(r"^[\w.-]+(:\d+)?/[\w./-]+(:[\w][\w.-]{0,127}|@sha256:[0-9a-f]{64})$")


def check_delivery(image: str, serve_config: str) -> None:
    """Code ships as a versioned image: a pinned tag or digest, an import path into it, and
    nothing fetched or copied at start."""
    problems = []
    tag = image.rsplit(":", 1)[-1] if isinstance(image, str) and "@" not in image else ""
    if not isinstance(image, str) or not PINNED.match(image) or (tag and not re.search(r"\d", tag)):
        problems.append(Finding("error", "image", f"{image!r} is not a pinned image in a registry",
                                "name registry/repository:version (or @sha256:digest); a tag with no version "
                                "in it (latest, stable) moves"))
    app, base = _app(serve_config)
    if not IMPORT_PATH.match(str(app.get("import_path", ""))):
        problems.append(Finding("error", f"{base}.import_path", "no import path into the image's code",
                                "write package.module:app"))
    envs = [(f"{base}.runtime_env", app.get("runtime_env") or {})] + [
        (f"{base}.deployments[{i}].ray_actor_options.runtime_env",
         ((dep or {}).get("ray_actor_options") or {}).get("runtime_env") or {})
        for i, dep in enumerate(app.get("deployments") or [])]
    for where, env in envs:
        for key in ("working_dir", "py_modules", "pip", "conda", "uv"):
            if key in env:
                problems.append(Finding("error", f"{where}.{key}", "fetched or installed when the "
                                        "cluster starts: a new pod can differ from the last one",
                                        "bake it into the image and remove the key"))
    _fail(problems)


def check_alert_answers(alerts: dict) -> None:
    """Every alert named, each with one of the five layers (the layers, not the answers)."""
    if not isinstance(alerts, dict) or set(alerts) != set(ALERTS):
        raise PlanError(f"answer with a dict whose keys are exactly {sorted(ALERTS)}")
    wrong = {k: v for k, v in alerts.items() if v not in LAYERS}
    if wrong:
        raise PlanError(f"{sorted(wrong)}: each value must be one of {LAYERS}")


# ---- showing ----------------------------------------------------------------------

def scenario_markdown() -> str:
    """The stages' measurements and the cluster, as Markdown tables."""
    lines = ["| stage | what it does | on a CPU | on a GPU | GPU memory | RAM per replica |",
             "|---|---|---|---|---|---|"]
    for s in STAGES:
        cpu = f"{s.cpu_ms:g} ms" if s.cpu_ms else "no CPU path"
        gpu = "no GPU code" if not s.gpu_ms else (
            f"{s.gpu_ms:g} ms per batch of {s.batch}" if s.batch > 1 else f"{s.gpu_ms:g} ms")
        gmem = f"{s.gpu_memory_gb:g} GB" if s.gpu_memory_gb else "—"
        lines.append(f"| {s.name} | {s.does} | {cpu} | {gpu} | {gmem} | {s.host_memory_gb:g} GiB |")
    lines += ["", "| node group | nodes (max) | CPUs each | RAM each | GPUs each |", "|---|---|---|---|---|"]
    lines += [f"| {g.name} | {g.max_nodes} | {g.cpus} | {g.memory_gb} GiB | "
              + (f"{g.gpus} ({GPU_MEMORY_GB} GB of memory) |" if g.gpus else "0 |") for g in GROUPS]
    lines += ["", f"Peak traffic: **{PEAK_RPS:g} questions per second**, every one through every stage."]
    return "\n".join(lines)


def summary(serve_config: str) -> str:
    """The plan, one line per stage, with its capacity at max scale."""
    planned = shapes(serve_config)
    lines = [f"{'stage':12} {'CPUs':>5} {'GPU':>5} {'RAM GiB':>7} {'replicas':>9} {'max rps':>8}  scales on"]
    for name, s in planned.items():
        stage = BY_NAME.get(name)
        rps = s.high * stage.per_replica_rps(s.gpus > 0) if stage else float("nan")
        signal = (f"ongoing requests (target {s.autoscaling.get('target_ongoing_requests', 2)})"
                  if s.autoscaling else "fixed")
        memory = "—" if s.memory_gb is None else f"{s.memory_gb:g}"
        lines.append(f"{name:12} {s.cpus:5g} {s.gpus:5g} {memory:>7} {f'{s.low}-{s.high}':>9} "
                     f"{rps:8.1f}  {signal}")
    return "\n".join(lines)


def draw_gpus(serve_config: str):
    """A bar per GPU at max scale: GPU memory used by the replicas Ray would place there."""
    import matplotlib.pyplot as plt

    planned = shapes(serve_config)
    devices = sum(g.max_nodes * g.gpus for g in GROUPS)
    placed = pack_gpus(planned, devices)
    fig, ax = plt.subplots(figsize=(6, 2.6))
    if placed is None:
        ax.text(0.5, 0.5, "some GPU replicas do not fit: they would stay PENDING",
                ha="center", va="center", transform=ax.transAxes)
    else:
        colors = {"Generator": "tab:purple", "Reranker": "tab:orange"}
        for d, names in enumerate(placed):
            bottom = 0.0
            for name in names:
                size = BY_NAME[name].gpu_memory_gb
                ax.bar(d, size, bottom=bottom, color=colors.get(name, "tab:gray"), edgecolor="white")
                ax.text(d, bottom + size / 2, name, ha="center", va="center", fontsize=8, color="white")
                bottom += size
        ax.axhline(GPU_MEMORY_GB, color="red", linestyle="--", linewidth=1)
        ax.set_xticks(range(devices), [f"GPU {d}" for d in range(devices)])
    ax.set_ylabel("GPU memory (GB)")
    ax.set_title("GPUs at max scale, as Ray would pack them")
    fig.tight_layout()
    return fig
