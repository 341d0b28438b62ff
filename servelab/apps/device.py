"""Accelerators for the course's apps: where a replica runs, and a stand-in device.

`where_am_i()` reports the node and the GPU ids Ray assigned to the calling replica
(logical GPUs on the local target, real ones on a GPU node).

`SimulatedDevice` stands in for an accelerator on a machine without one.

A call costs `fixed_ms` plus `per_item_ms` for each item in it, and the device runs
one call at a time, as a GPU runs one forward pass at a time. The fixed part is
what makes batching pay on real hardware (launching kernels, reading weights):
sixteen items in one call cost far less than sixteen calls. The wait is an async
sleep, so it holds the replica's slot but no host CPU.
"""

from __future__ import annotations

import asyncio

import ray


def where_am_i() -> dict:
    """The node and the GPUs Ray gave this replica."""
    ctx = ray.get_runtime_context()
    return {"node_id": ctx.get_node_id(), "gpu_ids": [str(g) for g in ray.get_gpu_ids()]}


class SimulatedDevice:
    def __init__(self, fixed_ms: float = 0.0, per_item_ms: float = 0.0):
        self.fixed_ms, self.per_item_ms = fixed_ms, per_item_ms
        self._busy = asyncio.Lock()
        self.calls = 0

    def cost_ms(self, items: int) -> float:
        return self.fixed_ms + self.per_item_ms * items if items else 0.0

    async def run(self, items: int = 1) -> None:
        """Occupy the device for one call of `items` items."""
        cost = self.cost_ms(items)
        if cost <= 0:
            return
        async with self._busy:
            self.calls += 1
            await asyncio.sleep(cost / 1000)
