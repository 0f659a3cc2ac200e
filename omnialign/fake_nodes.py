"""Ray's fake multi-node provider, fixed for node types that declare ``memory``.

``cluster.local.yaml`` names this provider. Ray Data asks for ``memory`` for some of its tasks
and actors; the autoscaler launches only node types that list every resource a pending demand
asks for, but Ray 2.60's ``FakeMultiNodeProvider`` passes ``memory`` on to the new node as a
*custom* resource, which Ray refuses (the launch fails, and the demand waits forever). Here it is
dropped before the node starts: the fake node then offers the memory it detects on the machine.
"""

from __future__ import annotations

from ray.autoscaler._private.fake_multi_node.node_provider import FakeMultiNodeProvider


class FakeNodeProvider(FakeMultiNodeProvider):
    """:class:`FakeMultiNodeProvider` whose node types may list ``memory`` (bytes)."""

    def _create_node_with_resources_and_labels(self, node_config, tags, count, resources, labels):
        resources = {k: v for k, v in resources.items() if k != "memory"}
        super()._create_node_with_resources_and_labels(node_config, tags, count, resources, labels)
