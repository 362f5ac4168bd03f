"""Webhook adapters: the HTTP sender that signs per Standard Webhooks, and the SSRF guard."""

from integrations.webhooks.sender import HttpWebhookSender, encode_body, sign
from integrations.webhooks.url_guard import DnsUrlGuard, UnsafeUrl

__all__ = ["DnsUrlGuard", "HttpWebhookSender", "UnsafeUrl", "encode_body", "sign"]
