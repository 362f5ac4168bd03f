"""HTTP and WebSocket transport: the Starlette app, the view, the fast lane, browser rules."""
