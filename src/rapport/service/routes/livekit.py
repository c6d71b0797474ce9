"""LiveKit's webhook: authenticated by LiveKit's own signed token (not an API key)."""

from __future__ import annotations

from fastapi import APIRouter, Request

from rapport.service.deps import App
from rapport.service.errors import ApiError

router = APIRouter(prefix="/v1/livekit", tags=["livekit"])


@router.post("/webhook")
async def livekit_webhook(request: Request, st: App) -> dict[str, str]:
    """Point LiveKit's `webhook.urls` here: a room with a rapport session gets the bot when it
    starts, and the session ends with the room. Each event is acted on once (409 on a replay)."""
    if not request.headers.get("authorization"):
        raise ApiError(401, "unauthorized", "LiveKit webhook without its signed Authorization")
    if st.fleet is not None:
        raise ApiError(
            404,
            "livekit_webhooks_unused",
            "rooms go to workers by LiveKit's agent dispatch (livekit.agent_name): "
            "remove this webhook URL from the LiveKit server's config",
        )
    if st.rooms is None:
        raise ApiError(
            404, "livekit_not_configured", "start rapport serve with --livekit-url to use rooms"
        )
    body = (await request.body()).decode("utf-8", errors="replace")
    event = st.rooms.verify(body, request.headers.get("authorization", ""))
    return {"event": event.event, "outcome": await st.rooms.handle(event)}
