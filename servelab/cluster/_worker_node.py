"""Run one Ray worker node in the foreground, on 127.0.0.1.

`ray start --address=... --block` would do, but Ray 2.60 either rewrites
127.0.0.1 to the machine's address (and then several agents bind all
interfaces) or, with multi-node IP detection off, refuses to start a worker.
This is the same thing through Ray's Node API (as ray.cluster_utils does):
every node of a servelab cluster shares 127.0.0.1 with its own ports.

Usage (servelab starts it; not meant to be typed):
    python -m servelab.cluster._worker_node --address 127.0.0.1:PORT --temp-dir DIR --ports JSON
        [--num-cpus N] [--num-gpus N] [--memory BYTES] [--labels JSON] [--resources JSON]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time


def command(address: str, temp_dir: str, ports: dict, *, num_cpus: float, num_gpus: float = 0,
            memory: float | None = None, labels: dict | None = None, resources: dict | None = None) -> list[str]:
    """The command line that starts one worker node (LocalRay.add_worker and the autoscaler use it)."""
    cmd = [sys.executable, "-m", "servelab.cluster._worker_node", f"--address={address}", f"--temp-dir={temp_dir}",
           f"--ports={json.dumps(ports)}", f"--num-cpus={num_cpus}", f"--num-gpus={num_gpus}",
           f"--labels={json.dumps(labels or {})}", f"--resources={json.dumps(resources or {})}"]
    if memory:
        cmd.append(f"--memory={int(memory)}")
    return cmd


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="servelab.cluster._worker_node")
    parser.add_argument("--address", required=True)
    parser.add_argument("--temp-dir", required=True)
    parser.add_argument("--ports", required=True, help="JSON from servelab.cluster._ports.worker_ports()")
    parser.add_argument("--num-cpus", type=float, default=1)
    parser.add_argument("--num-gpus", type=float, default=0)
    parser.add_argument("--memory", type=int, default=None)
    parser.add_argument("--object-store-memory", type=int, default=128 * 1024**2)
    parser.add_argument("--labels", default="{}")
    parser.add_argument("--resources", default="{}")
    args = parser.parse_args(argv)

    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"  # before Ray reads it at import
    from servelab.cluster import _ray

    RayParams = _ray.ray_params_class()

    ports = json.loads(args.ports)
    # Ray names a node's sockets plasma_store.N / raylet.N in the session folder, picking
    # the first free N: two nodes starting at the same moment pick the same one and the
    # second raylet dies with "Address already in use". The node-manager port is unique.
    sockets = os.path.join(os.path.dirname(os.path.abspath(args.temp_dir)), "s")
    os.makedirs(sockets, exist_ok=True)
    params = RayParams(
        plasma_store_socket_name=os.path.join(sockets, f"p{ports['node_manager']}"),
        raylet_socket_name=os.path.join(sockets, f"r{ports['node_manager']}"),
        node_ip_address="127.0.0.1",
        gcs_address=args.address,
        temp_dir=args.temp_dir,
        num_cpus=args.num_cpus,
        num_gpus=args.num_gpus,
        memory=args.memory,
        object_store_memory=args.object_store_memory,
        resources=json.loads(args.resources),
        labels=json.loads(args.labels),
        node_manager_port=ports["node_manager"],
        object_manager_port=ports["object_manager"],
        min_worker_port=ports["min_worker"],
        max_worker_port=ports["max_worker"],
        dashboard_agent_listen_port=ports["dashboard_agent_http"],
        metrics_agent_port=ports["dashboard_agent_grpc"],
        runtime_env_agent_port=ports["runtime_env_agent"],
        metrics_export_port=ports["metrics"],
        include_log_monitor=False,  # the head's log monitor covers this machine
    )
    return run_node(params, head=False)


def agent_commands(modules: tuple[str, ...] | None, standins: bool, head: bool) -> None:
    """Change the agents the raylet this process starts will run. The dashboard agent: through
    servelab.cluster._slim_agent, loading only the agent module classes `modules`. With `standins`,
    servelab/cluster/_standin_agents.py instead of the runtime-env agent, and of the dashboard agent
    on a worker node (the head's exports the Serve proxy's metrics)."""
    from servelab.cluster import _ray

    ray_constants, services, scripts = _ray.ray_constants(), _ray.services(), _ray.agent_scripts()
    ray_py = {"--dashboard_agent_command=": scripts["dashboard_agent"],
              "--runtime_env_agent_command=": scripts["runtime_env_agent"]}
    standin = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_standin_agents.py")
    instead = {}
    if modules:
        instead["--dashboard_agent_command="] = f"-m servelab.cluster._slim_agent --servelab-modules={','.join(modules)}"
    if standins:
        instead["--runtime_env_agent_command="] = f"-S {standin} runtime-env"
        if not head:
            instead["--dashboard_agent_command="] = f"-S {standin} dashboard"
    if not instead:
        return
    start = services.start_ray_process

    def start_ray_process(command, process_type, *args, **kwargs):
        if process_type == ray_constants.PROCESS_TYPE_RAYLET:
            for flag, new in instead.items():
                command = [a.replace(ray_py[flag], new, 1) if a.startswith(flag) else a for a in command]
                assert any(a.startswith(flag) and new in a for a in command), f"Ray's {flag} changed shape"
        return start(command, process_type, *args, **kwargs)

    services.start_ray_process = start_ray_process


LIGHT_WAIT_ENV = "SERVELAB_LIGHT_LAUNCHER"  # "0": the launcher keeps Ray loaded while it waits


def _become_supervisor(node) -> None:
    """Replace this process (same pid, same children) by servelab/cluster/_node_supervisor.py,
    which waits with the standard library only. Ray's kill order: raylet, GCS, the rest."""
    order = {"raylet": 0, "gcs_server": 1}
    children = sorted(((kind, info.process.pid) for kind, infos in node.all_processes.items() for info in infos),
                      key=lambda child: order.get(child[0], 2))
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_node_supervisor.py")
    sys.stdout.flush()
    sys.stderr.flush()
    launcher = "servelab.cluster._head_node" if node.head else "servelab.cluster._worker_node"
    os.execv(sys.executable, [sys.executable, "-S", script, launcher, json.dumps(children)])


def run_node(params, head: bool) -> int:
    """Start a Ray node from this process and block like `ray start --block`: until
    SIGTERM (stop the children) or a child dies (stop the rest). The waiting is done by
    _node_supervisor.py, which this process execs into, unless SERVELAB_LIGHT_LAUNCHER=0."""
    from servelab.cluster import _ray
    from servelab.cluster._profiles import choose

    Node = _ray.node_class()
    profile = choose()  # the one the cluster's environment names
    agent_commands(profile.agent_modules, profile.standin_agents, head)
    # shutdown_at_exit: Ray's SIGTERM handler (drain, stop children) until the exec below.
    try:
        node = Node(params, head=head, shutdown_at_exit=True, spawn_reaper=True)
    except BaseException:
        # A node that failed to start (e.g. its raylet did not register in time) has
        # already started some processes: they must not outlive it.
        import psutil

        for child in psutil.Process().children(recursive=True):
            child.kill()
        raise
    print(f"{'head' if head else 'worker'} node {node.node_id} up on 127.0.0.1", flush=True)
    if os.environ.get(LIGHT_WAIT_ENV, "1") != "0":
        _become_supervisor(node)
    while True:
        time.sleep(1)
        dead = [(kind, p.returncode) for kind, p in node.dead_processes() if p.returncode not in (0, -15, 15, 143)]
        if dead:
            print(f"Ray processes died: {dead}; stopping this node", file=sys.stderr, flush=True)
            node.kill_all_processes(check_alive=False, allow_graceful=False)
            return 1

if __name__ == "__main__":
    sys.exit(main())
