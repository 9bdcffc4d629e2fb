"""The client's address, as trusted proxies (ITVSH_PROXY_HOPS, applied by ProxyFix) report it."""

from flask import has_request_context, request


def client_address() -> str:
    """The address throttling and the audit trail use; ProxyFix has already resolved proxies."""
    if not has_request_context():
        return ""
    return request.remote_addr or ""
