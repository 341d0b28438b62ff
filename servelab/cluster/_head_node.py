"""Run a cluster's Ray head node in the foreground, on 127.0.0.1.

What `ray start --head --block` does, through Ray's Node API (as worker_node does for
the other nodes), minus what no lesson uses and every start would pay for on a
2-core laptop or a 2 GB Binder:
- no Ray Client server (`ray://`): servelab connects drivers to the GCS directly;
  `ray start` always starts one when grpc is installed (~6 CPU-seconds, ~65 MiB);
- on the small profile, no monitor process unless the cluster autoscales (~4 CPU-seconds,
  ~65 MiB; `ray status` reads what it writes), and no log monitor (~64 MiB);
- a launcher that imports Ray's node code, not the whole CLI.

Usage (LocalRay starts it; not meant to be typed):
    python -m servelab.cluster._head_node --temp-dir DIR --ports JSON --num-cpus N --num-gpus N
        [--memory BYTES] [--object-store-memory BYTES] [--autoscaling-config PATH]
        [--dashboard-modules A,B,...] [--no-monitor] [--no-log-monitor]
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from servelab.cluster._worker_node import run_node


def command(temp_dir: str, ports: dict, *, num_cpus: float, num_gpus: float, memory: int | None,
            object_store_memory: int, autoscaling_config: str | None,
            dashboard_modules: tuple[str, ...] | None = None, monitor: bool = True,
            log_monitor: bool = True) -> list[str]:
    """The command line LocalRay runs for its head node."""
    cmd = [sys.executable, "-m", "servelab.cluster._head_node", f"--temp-dir={temp_dir}",
           f"--ports={json.dumps(ports)}", f"--num-cpus={num_cpus}", f"--num-gpus={num_gpus}",
           f"--object-store-memory={object_store_memory}"]
    if memory:
        cmd.append(f"--memory={int(memory)}")
    if autoscaling_config:
        cmd.append(f"--autoscaling-config={autoscaling_config}")
    if dashboard_modules:
        cmd.append(f"--dashboard-modules={','.join(dashboard_modules)}")
    if not monitor:
        cmd.append("--no-monitor")  # ignored when autoscaling: the autoscaler runs in the monitor
    if not log_monitor:
        cmd.append("--no-log-monitor")
    return cmd


def _load_only(modules: str) -> None:
    """Make the dashboard this node starts load only `modules` (Ray's dashboard takes
    --modules-to-load, but neither `ray start` nor RayParams passes it on)."""
    from servelab.cluster import _ray

    ray_constants, services = _ray.ray_constants(), _ray.services()
    start = services.start_ray_process

    def start_ray_process(command, process_type, *args, **kwargs):
        if process_type == ray_constants.PROCESS_TYPE_DASHBOARD:
            # Ray's dashboard.py, through slim_agent: it imports only these modules' files
            command = [part for arg in command for part in
                       (["-m", "servelab.cluster._slim_agent", f"--servelab-modules={modules}", "--servelab-run=dashboard.py"]
                        if arg.endswith(os.path.join("dashboard", "dashboard.py")) else [arg])]
            command = [*command, f"--modules-to-load={modules}"]
        return start(command, process_type, *args, **kwargs)

    services.start_ray_process = start_ray_process


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="servelab.cluster._head_node")
    parser.add_argument("--temp-dir", required=True)
    parser.add_argument("--ports", required=True, help="JSON of servelab.cluster._ports.Ports")
    parser.add_argument("--num-cpus", type=float, required=True)
    parser.add_argument("--num-gpus", type=float, default=0)
    parser.add_argument("--memory", type=int, default=None)
    parser.add_argument("--object-store-memory", type=int, required=True)
    parser.add_argument("--autoscaling-config", default=None)
    parser.add_argument("--dashboard-modules", default=None, help="comma-separated; default: all")
    parser.add_argument("--no-monitor", action="store_true", help="no monitor process (not with autoscaling)")
    parser.add_argument("--no-log-monitor", action="store_true", help="no streaming of worker output to drivers")
    args = parser.parse_args(argv)

    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"  # before Ray reads it at import
    from servelab.cluster import _ray

    token_setup, RayParams = _ray.auth_token_setup(), _ray.ray_params_class()

    if args.dashboard_modules:
        _load_only(args.dashboard_modules)
    ports = json.loads(args.ports)
    params = RayParams(
        node_ip_address="127.0.0.1",
        temp_dir=args.temp_dir,
        gcs_server_port=ports["gcs"],
        num_cpus=args.num_cpus,
        num_gpus=args.num_gpus,
        memory=args.memory,
        object_store_memory=args.object_store_memory,
        node_manager_port=ports["node_manager"],
        object_manager_port=ports["object_manager"],
        min_worker_port=ports["min_worker"],
        max_worker_port=ports["max_worker"],
        include_dashboard=True,
        dashboard_host="127.0.0.1",
        dashboard_port=ports["dashboard"],
        dashboard_agent_listen_port=ports["dashboard_agent_http"],
        metrics_agent_port=ports["dashboard_agent_grpc"],
        runtime_env_agent_port=ports["runtime_env_agent"],
        metrics_export_port=ports["metrics"],
        autoscaling_config=args.autoscaling_config,
        no_monitor=args.no_monitor and args.autoscaling_config is None,
        ray_client_server_port=None,
        include_log_monitor=not args.no_log_monitor,
    )
    # As `ray start` does: the cluster's token (RAY_AUTH_TOKEN_PATH) must be there.
    token_setup.maybe_enable_token_auth_if_token_available()
    token_setup.ensure_token_if_auth_enabled(None, create_token_if_missing=False)
    return run_node(params, head=True)


if __name__ == "__main__":
    sys.exit(main())
