"""LiveKit helpers shared by the tests, the demo and the benchmark: a local server, a publisher."""

from rapport.livekit.local_server import LiveKitServerError, LocalServer, find_server_binary

__all__ = ["LiveKitServerError", "LocalServer", "find_server_binary"]
