"""What ONTAP says of one external KMIP key server: reachable from the cluster, and per node.

NetApp's ``key_server_state`` (``netapp_ontap/models/key_server_state.py``): per node
``available``, ``not_responding`` or ``unknown`` (``connectivity.node_states``, 9.13+), and
``connectivity.cluster_availability`` ("true when key server connectivity state is available on
all nodes", 9.7+). Parsed by ``ontap/kmip.py``; carried on ``KeyManagerStatus.servers``.
"""

from __future__ import annotations

from dataclasses import dataclass

AVAILABLE = "available"
NOT_RESPONDING = "not_responding"


@dataclass(frozen=True, slots=True)
class ServerNode:
    """One node's connectivity to one key server, as ONTAP words it."""

    node: str
    node_uuid: str
    state: str  # available, not_responding, unknown


@dataclass(frozen=True, slots=True)
class KeyServer:
    """One external key server (``host:port``) and what ONTAP said of its connectivity."""

    server: str
    cluster_available: bool | None  # None: ONTAP did not say (inactive, or 9.8-9.12 silent)
    nodes: tuple[ServerNode, ...] = ()  # sorted by node; empty before 9.13

    @property
    def not_responding(self) -> tuple[str, ...]:
        """Return the nodes ONTAP says this server does not answer (``unknown`` is not one)."""
        return tuple(n.node for n in self.nodes if n.state == NOT_RESPONDING)

    @property
    def down(self) -> bool:
        """Return whether ONTAP said this server is not available everywhere."""
        return self.cluster_available is False or bool(self.not_responding)


def streak_key(uuid: str, server: str) -> str:
    """Return the key of one key server's unreachable streak (beside configurations' uuids)."""
    return f"{uuid} {server}"
