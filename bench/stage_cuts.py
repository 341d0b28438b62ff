"""Three cheap cuts of the served RAG pipeline's cost, each against the shipped app in the same run.

- **async stages**: Normalizer and Retriever as `async def` (bench/variants/rag_async_stages.py),
  so Serve runs them on the replica's event loop instead of handing each call to a thread.
- **pickle handles**: the ingress's handles serialize with `pickle`, not `cloudpickle`
  (bench/variants/rag_pickle_handles.py): Ray 2.60's handle option for the gRPC transport.
- **Serve metrics export every 1 s**: `RAY_SERVE_METRICS_EXPORT_INTERVAL_MS=1000` (Serve's default
  100), so routers and replicas flush their metrics a tenth as often.

Each mode gets its own cluster, started with the container env of manifests/rayservice-rag.yaml
(throughput-optimized) plus the mode's own; the modes alternate, ROUNDS clusters each, since one
round on this machine varies by ±20% (a 2-round try read 1.33x and then 0.91x for the same
change), and each round starts with the next mode in turn, so that none always runs first.
Figures: medians over the rounds of the 1-client p50 and the 8-client throughput.
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from rag_hops import METRICS_INTERVAL  # noqa: E402
from rag_throughput import QUESTIONS, config, deploy  # noqa: E402
from report import write_section  # noqa: E402
from serve_mode import manifest_env  # noqa: E402

from servelab import LocalRay  # noqa: E402
from servelab.faults import load  # noqa: E402

ROUNDS = 5
SECONDS = 12
SHIPPED = "servelab.apps.rag:app"
VARIANTS_ON_PATH = {"PYTHONPATH": str(HERE / "variants")}
MODES = {  # name -> (extra env of every Ray process, the app's import path, what it changes)
    "shipped": ({}, SHIPPED, ""),
    "async stages": (VARIANTS_ON_PATH, "rag_async_stages:app",
                     "Normalizer and Retriever as `async def` (`bench/variants/rag_async_stages.py`), run on "
                     "the replica's event loop rather than each call handed to a thread of Serve's pool."),
    "pickle handles": (VARIANTS_ON_PATH, "rag_pickle_handles:app",
                       "the ingress's handles serialize arguments and results with `pickle` instead of "
                       "`cloudpickle` (`bench/variants/rag_pickle_handles.py`)."),
    "Serve metrics export every 1 s": ({"RAY_SERVE_METRICS_EXPORT_INTERVAL_MS": "1000"}, SHIPPED,
                                       "`RAY_SERVE_METRICS_EXPORT_INTERVAL_MS=1000` (Serve's default 100 ms)."),
}


def measure(extra_env: dict[str, str], import_path: str) -> dict:
    # Ray's 1 s metrics report interval (METRICS_INTERVAL) is not measured here: it is kept so
    # that these clusters start exactly as serve_mode.py's do.
    cluster = LocalRay("bench-cuts", num_cpus=4, env={**METRICS_INTERVAL, **manifest_env(), **extra_env})
    cluster.start(show=False)
    try:
        url = f"{cluster.serve_url}/rag/"
        cfg = config(16)
        cfg["applications"][0]["import_path"] = import_path
        deploy(cluster, cfg)
        load.run(url, {"question": "warm up"}, concurrency=4, count=40, timeout_s=30)
        out = {}
        for clients in (1, 8):
            answers = load.run(url, lambda i: {"question": QUESTIONS[i % len(QUESTIONS)]}, concurrency=clients,
                               count=load.MAX_COUNT, duration_s=SECONDS, timeout_s=60)
            assert answers.failed == 0, answers.summary()
            out[clients] = answers
        return {"p50": 1000 * out[1].latency(50), "rps8": out[8].throughput}
    finally:
        cluster.stop(show=False)


def run() -> dict:
    rounds = {name: [] for name in MODES}
    names = list(MODES)
    for i in range(ROUNDS):
        for name in names[i % len(names):] + names[: i % len(names)]:  # a different mode first each round
            env, path, _ = MODES[name]
            rounds[name].append(measure(env, path))
            print(f"  round {i + 1} {name}: p50 {rounds[name][-1]['p50']:.1f} ms, "
                  f"8 clients {rounds[name][-1]['rps8']:.1f} req/s", flush=True)
    return report(rounds)


def report(rounds: dict[str, list[dict]]) -> dict:
    fig = {name: {k: statistics.median(r[k] for r in rs) for k in ("p50", "rps8")} for name, rs in rounds.items()}
    base, shipped = fig["shipped"], rounds["shipped"]

    def spread(rs: list[dict], key: str) -> tuple[float, float]:
        return min(r[key] for r in rs), max(r[key] for r in rs)

    def line(name: str) -> str:
        f, (p_lo, p_hi), (r_lo, r_hi) = fig[name], spread(rounds[name], "p50"), spread(rounds[name], "rps8")
        return (f"| {name} | {f['p50']:.1f} ({f['p50'] / base['p50']:.2f}x) | {p_lo:.1f} to {p_hi:.1f} | "
                f"{f['rps8']:.1f} ({f['rps8'] / base['rps8']:.2f}x) | {r_lo:.1f} to {r_hi:.1f} |")

    def verdict(name: str) -> str:
        # An effect this machine can tell: the mode's median beyond every round of the shipped app.
        f, (p_lo, p_hi), (r_lo, r_hi) = fig[name], spread(shipped, "p50"), spread(shipped, "rps8")
        better = [what for what, beyond in (("throughput", f["rps8"] > r_hi), ("latency", f["p50"] < p_lo)) if beyond]
        worse = [what for what, beyond in (("throughput", f["rps8"] < r_lo), ("latency", f["p50"] > p_hi)) if beyond]
        told = [f"{word} {' and '.join(whats)} than every round of the shipped app"
                for word, whats in (("better", better), ("worse", worse)) if whats]
        return f"**{name}**: " + ("; ".join(told) if told else
                                  "within the shipped app's own rounds: inconclusive on this machine")

    body = f"""
`bench/stage_cuts.py`: the RAG app with its shipped limits on a 4-logical-CPU local cluster,
started with the container env of `manifests/rayservice-rag.yaml` (throughput-optimized). Each
mode has its own clusters; the modes alternate, {ROUNDS} rounds, {SECONDS} s per row. Figures are
medians over the rounds, in brackets against the shipped app in the same run, beside the
range of the rounds.

| Mode | 1 client p50 ms | its rounds | 8 clients req/s | its rounds |
|---|---|---|---|---|
{chr(10).join(line(name) for name in MODES)}

{chr(10).join(f"- **{name}**: {what}" for name, (_, _, what) in MODES.items() if what)}

Reading it:
{chr(10).join("- " + verdict(name) + "." for name in MODES if name != "shipped")}

A change that does better than every round of the shipped app in one run is a candidate, not a
result: it goes into the app or the manifest once a second run agrees and the app's tests pass
with it. Where one request's time goes, hop by hop, is `bench/rag_hops.py`'s section.
"""
    write_section("stage_cuts", "RAG pipeline: three candidate cuts, against the shipped app", body)
    return {name: {k: round(v, 2) for k, v in f.items()} for name, f in fig.items()}


if __name__ == "__main__":
    print(run())
