"""Realtime plumbing: the event broker and this process's WebSockets."""
