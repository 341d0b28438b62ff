"""Five small services for Lab 7's incident drill, each deployable by import path.

Each is fine on its own; the lab's *config* breaks them, the way most serving
incidents start: an `import_path` typo, a GPU or memory request no node can
meet, a `route_prefix` the clients do not call, an autoscaling target that never
scales. The code here only has to answer, quickly and checkably.
"""

from __future__ import annotations

from ray import serve
from starlette.requests import Request

from servelab.apps.device import SimulatedDevice, where_am_i
from servelab.apps.knowledge import DOCS, TEXTS
from servelab.apps.sentiment import LexiconModel
from servelab.apps.textsearch import BM25, Encoder


@serve.deployment(ray_actor_options={"num_cpus": 0.1})
class Sentiment:
    def __init__(self):
        self.model = LexiconModel()

    async def __call__(self, request: Request) -> dict:
        return self.model.predict((await request.json())["text"])


@serve.deployment(ray_actor_options={"num_cpus": 0.1, "num_gpus": 1})
class Captioner:
    """Stands in for an image model that needs a whole GPU."""

    async def __call__(self, request: Request) -> dict:
        size = len(await request.body())
        return {"caption": f"an image of {size} bytes", **where_am_i()}


@serve.deployment(ray_actor_options={"num_cpus": 0.1})
class Search:
    def __init__(self):
        self.index = BM25(TEXTS)

    async def __call__(self, request: Request) -> dict:
        query = request.query_params.get("q", "")
        return {"hits": [DOCS[i][0] for i, _ in self.index.search(query, 3)]}


@serve.deployment(ray_actor_options={"num_cpus": 0.1})
class Embedder:
    def __init__(self):
        self.encoder = Encoder(dim=64)

    async def __call__(self, request: Request) -> dict:
        vector = self.encoder.encode([(await request.json())["text"]])[0]
        return {"dim": int(vector.shape[0]), "norm": round(float((vector ** 2).sum() ** 0.5), 4)}


@serve.deployment(max_ongoing_requests=32, ray_actor_options={"num_cpus": 0.1})
class Chat:
    """A model that holds its device for 100 ms per request, one request at a time."""

    def __init__(self):
        self.device = SimulatedDevice(fixed_ms=100)

    async def __call__(self, request: Request) -> dict:
        prompt = (await request.json())["prompt"]
        await self.device.run(1)
        return {"reply": f"Let us look at '{prompt[:60]}' one layer at a time."}


sentiment_app = Sentiment.bind()
captioner_app = Captioner.bind()
search_app = Search.bind()
embedder_app = Embedder.bind()
chat_app = Chat.bind()
