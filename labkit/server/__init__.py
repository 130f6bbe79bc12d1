"""labkit's OpenAI-compatible server: `create_app` for the routes, `LocalServer` to run one in-process."""

from labkit.server.app import create_app
from labkit.server.process import LocalServer

__all__ = ["LocalServer", "create_app"]
