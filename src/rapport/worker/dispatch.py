"""The explicit dispatch the API makes when a room session is created: LiveKit then offers the
room's job to a registered worker of `agent_name`, by load.

The server never retries a dispatch made while no worker of that name is registered (or all are
full): whoever calls this must reconcile (dispatch again when a session's room has no worker).
"""

from __future__ import annotations

from livekit import api

from rapport.config import LiveKitSettings
from rapport.errors import InputError

AGENT_NAME = "rapport"
"""The agent name `rapport worker` registers under by default."""


async def dispatch_room(
    settings: LiveKitSettings, room: str, *, agent_name: str = AGENT_NAME, metadata: str = ""
) -> str:
    """Asks LiveKit to dispatch agent `agent_name` to `room` (the room is created if need be);
    returns the dispatch id. Raises livekit.api.TwirpError or aiohttp errors when LiveKit fails:
    the caller retries (retryable)."""
    if not (settings.url and settings.api_key and settings.api_secret):
        raise InputError("LiveKit dispatch needs livekit.url, api_key and api_secret")
    request = api.CreateAgentDispatchRequest(agent_name=agent_name, room=room, metadata=metadata)
    async with api.LiveKitAPI(settings.url, settings.api_key, settings.api_secret) as lk:
        dispatch = await lk.agent_dispatch.create_dispatch(request)
    return dispatch.id
