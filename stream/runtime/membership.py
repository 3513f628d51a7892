"""Static group membership: a restarted worker takes back its partitions at once.

With ``STREAM_INSTANCE_ID`` set, the worker joins its consumer group as a static member (KIP-345): the
broker keeps its assignment while it restarts, so a worker killed and restarted within the session timeout
resumes at once, with no rebalance. The broker then hands the restarted worker the assignment computed
for its previous incarnation, including the web URL Faust's assignor stored in it; Faust asserts that URL
is its own and would crash the consumer when a restart changed the port. Here the mismatch is logged
instead: the URL only routes queries between workers and is refreshed at the next rebalance.
"""

from __future__ import annotations

import logging
from typing import Any, cast

from faust.assignor import PartitionAssignor
from faust.assignor.client_assignment import ClientMetadata

log = logging.getLogger(__name__)


class StaticMemberAssignor(PartitionAssignor):
    """Faust's partition assignor, tolerant of an assignment made for this member's previous URL."""

    def on_assignment(self, assignment: Any) -> None:
        """Take the assignment as Faust does, warning instead of failing on a URL from before a restart."""
        metadata = cast(ClientMetadata, ClientMetadata.loads(self._decompress(assignment.user_data)))
        self._assignment = metadata.assignment
        self._topic_groups = dict(metadata.topic_groups)
        self._active_tps = self._assignment.active_tps
        self._standby_tps = self._assignment.standby_tps
        self.changelog_distribution = metadata.changelog_distribution
        self.external_topic_distribution = metadata.external_topic_distribution
        expected = sorted(self._assignment.kafka_protocol_assignment(self._table_manager))
        if sorted(assignment.assignment) != expected:
            raise RuntimeError(f"inconsistent assignment: {sorted(assignment.assignment)} != {expected}")
        if metadata.url != str(self._url):
            log.warning(
                "assignment made for this member's previous incarnation at %s (now %s): "
                "queries route there until the next rebalance",
                metadata.url,
                self._url,
            )
