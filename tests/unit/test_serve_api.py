"""ServeAPI against a real HTTP server that answers like Serve's REST API."""

import json
from http.server import BaseHTTPRequestHandler

import pytest
from loopback_http import serving

from servelab.clients._serve import ServeAPI, ServeAPIError

TOKEN = "s3cret"
DETAILS = {
    "applications": {
        "normalizer": {
            "status": "RUNNING",
            "deployments": {
                "Normalizer": {
                    "status": "HEALTHY",
                    "target_num_replicas": 2,
                    "replicas": [
                        {"replica_id": "a", "state": "RUNNING", "node_id": "n1", "pid": 10},
                        {"replica_id": "b", "state": "STARTING", "node_id": "n1", "pid": 11},
                    ],
                }
            },
        }
    }
}


class Handler(BaseHTTPRequestHandler):
    received = []

    def _reply(self, code, body):
        data = json.dumps(body).encode() if not isinstance(body, bytes) else body
        self.send_response(code)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _authorized(self):
        if self.headers.get("Authorization") != f"Bearer {TOKEN}":
            self._reply(401, b"Unauthorized: Missing authentication token")
            return False
        return True

    def do_GET(self):
        if self._authorized():
            self._reply(200, DETAILS)

    def do_PUT(self):
        if not self._authorized():
            return
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        Handler.received.append(body)
        if "applications" not in body:
            self._reply(400, b"1 validation error for ServeDeploySchema: applications field required")
        else:
            self._reply(200, b"")

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def server():
    with serving(Handler) as url:
        yield url


def test_reads_running_replicas_only_by_default(server):
    api = ServeAPI(server, token=TOKEN)
    assert [r.replica_id for r in api.replicas("normalizer", "Normalizer")] == ["a"]
    assert len(api.replicas("normalizer", "Normalizer", state=None)) == 2


def test_missing_token_explains_token_auth(server):
    with pytest.raises(ServeAPIError, match="wants a token"):
        ServeAPI(server).details()


def test_unknown_app_and_deployment_list_what_exists(server):
    api = ServeAPI(server, token=TOKEN)
    with pytest.raises(ServeAPIError, match=r"no application named 'nope' \(running: normalizer\)"):
        api.application("nope")
    with pytest.raises(ServeAPIError, match=r"has no deployment 'Norm' \(it has: Normalizer\)"):
        api.deployment("normalizer", "Norm")


def test_deploy_sends_the_config_and_surfaces_validation_errors(server):
    api = ServeAPI(server, token=TOKEN)
    api.deploy({"applications": []})
    assert Handler.received[-1] == {"applications": []}
    with pytest.raises(ServeAPIError, match="HTTP 400.*applications field required"):
        api.deploy({"proxy_location": "HeadOnly"})


def test_unreachable_dashboard_names_the_ray_runtime():
    with pytest.raises(ServeAPIError, match=r"\[Ray runtime\] nothing answers"):
        ServeAPI("http://127.0.0.1:9", timeout=2).details()
