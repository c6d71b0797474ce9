"""A rapport worker under LiveKit's agent dispatch.

The worker speaks LiveKit's agent protocol itself (`livekit-protocol`'s `WorkerMessage` and
`ServerMessage` over the server's `/agent` WebSocket) rather than through `livekit-agents`, which
pins an older `livekit` SDK than ours and weighs ~390 MB. `agent.py` holds the connection,
`jobs.py` the lifecycles and load, `sessions.py` the room sessions its jobs run (from the
PostgreSQL shared with the API), `dispatch.py` the explicit dispatch the API makes when a room
session is created, `process.py` the `rapport worker` command.
"""

from rapport.worker.agent import AgentWorker, Backoff
from rapport.worker.dispatch import AGENT_NAME, dispatch_room
from rapport.worker.jobs import JobInfo, JobState, WorkerState

__all__ = [
    "AGENT_NAME",
    "AgentWorker",
    "Backoff",
    "JobInfo",
    "JobState",
    "WorkerState",
    "dispatch_room",
]
