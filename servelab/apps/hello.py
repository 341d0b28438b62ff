"""The smallest useful application: proves a config deploys and routes.

Deployed by import path (`servelab.apps.hello:app`), the way a RayService's
serveConfigV2 deploys code that is installed on every node.
"""

from ray import serve
from starlette.requests import Request


@serve.deployment(num_replicas=1, ray_actor_options={"num_cpus": 0.1})
class Hello:
    def __init__(self, greeting: str = "hello"):
        self.greeting = greeting

    async def __call__(self, request: Request) -> dict:
        name = request.query_params.get("name", "world")
        return {"message": f"{self.greeting}, {name}"}


app = Hello.bind()
