"""`kubectl port-forward` and `kubectl exec` for the bridge tests (k8s_bridge.py): the verbs the
Kubernetes target runs as processes. Any other verb exits 1, saying so.

port-forward asks the API server (KUBECONFIG) for the Service, and relays 127.0.0.1:LOCAL to
the port that Service reaches on this machine (its `localPort`), as kubectl relays to a pod.
exec asks the API server to run the command in the pod (a plain POST here, where a real
kubectl upgrades the connection to a stream) and prints its output, exiting with its status.

The local target's clusters always require Ray's auth token; the KubeRay cluster the bridge
plays has auth off unless its manifest turns it on. For the dashboard port the bridge gives
the token in an annotation of the Service, and this relay adds it to each request, as if the
cluster needed none.

    kubectl port-forward --address 127.0.0.1 -n NAMESPACE svc/NAME LOCAL:REMOTE
"""

import asyncio
import os
import sys

import requests
import yaml

TOKEN_ANNOTATION = "bridge.servelab.io/dashboard-token"


def api_server() -> str:
    config = yaml.safe_load(open(os.environ["KUBECONFIG"]))
    return config["clusters"][0]["cluster"]["server"]


def exec_in_pod(argv: list[str]) -> None:
    """kubectl exec [-n NAMESPACE] POD [-c CONTAINER] -- COMMAND..."""
    split = argv.index("--")
    args, command, namespace, container, positional = argv[:split], argv[split + 1:], "default", None, []
    while args:
        arg = args.pop(0)
        if arg in ("-n", "--namespace"):
            namespace = args.pop(0)
        elif arg in ("-c", "--container"):
            container = args.pop(0)
        else:
            positional.append(arg)
    (pod,) = positional
    reply = requests.post(f"{api_server()}/api/v1/namespaces/{namespace}/pods/{pod}/exec",
                          json={"command": command, "container": container}, timeout=90)
    if reply.status_code != 200:
        sys.exit(f"Error from server (NotFound): {reply.json().get('message')}")
    done = reply.json()
    sys.stdout.write(done["stdout"])
    sys.stderr.write(done["stderr"])
    sys.exit(done["exitCode"])


def service_port(namespace: str, service: str, remote: int) -> tuple[int, str | None]:
    reply = requests.get(f"{api_server()}/api/v1/namespaces/{namespace}/services/{service}", timeout=10)
    if reply.status_code != 200:
        sys.exit(f'error: services "{service}" not found')
    svc = reply.json()
    token = (svc["metadata"].get("annotations") or {}).get(TOKEN_ANNOTATION) if remote == 8265 else None
    for port in svc["spec"]["ports"]:
        if port["port"] == remote:
            return port["localPort"], token
    sys.exit(f"error: Service {service} does not have a service port {remote}")


async def pipe(reader, writer):
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        writer.close()


def with_token(head: bytes, token: str) -> bytes:
    """A request head with the token added, and `Connection: close`, so that the next request
    comes on a new connection and gets its header too."""
    lines = head.split(b"\r\n")[:-2]
    keep = [line for line in lines[1:] if not line.lower().startswith((b"authorization:", b"connection:"))]
    extra = [b"Authorization: Bearer " + token.encode(), b"Connection: close"]
    return b"\r\n".join([lines[0], *keep, *extra, b"", b""])


async def forward(address: str, local: int, target: int, token: str | None) -> None:
    async def relay(client_reader, client_writer):
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", target)
            if token:
                upstream_writer.write(with_token(await client_reader.readuntil(b"\r\n\r\n"), token))
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            client_writer.close()
            return
        await asyncio.gather(pipe(client_reader, upstream_writer), pipe(upstream_reader, client_writer))

    server = await asyncio.start_server(relay, address, local)
    print(f"Forwarding from {address}:{local} -> {target}", flush=True)
    async with server:
        await server.serve_forever()


def main(argv: list[str]) -> None:
    if argv[:1] == ["exec"]:
        return exec_in_pod(argv[1:])
    if not argv or argv[0] != "port-forward":
        sys.exit(f"kubectl (test shim): only port-forward and exec are served here, not {' '.join(argv[:1])!r}")
    args, address, namespace = argv[1:], "127.0.0.1", "default"
    positional = []
    while args:
        arg = args.pop(0)
        if arg == "--address":
            address = args.pop(0)
        elif arg in ("-n", "--namespace"):
            namespace = args.pop(0)
        else:
            positional.append(arg)
    resource, ports = positional
    local, remote = (int(p) for p in ports.split(":"))
    target, token = service_port(namespace, resource.removeprefix("svc/"), remote)
    asyncio.run(forward(address, local, target, token))


if __name__ == "__main__":
    main(sys.argv[1:])
