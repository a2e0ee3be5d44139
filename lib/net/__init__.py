"""Network layer: a compact RFC 6455 WebSocket client for OCPP-J, its TLS helpers and links.

Import the module you need; nothing is loaded or opened here. `url` parses and builds the CSMS
URL, `auth` the HTTP Basic credentials (security profiles 1 and 2), `tls` the certificate and
context helpers (profiles 2 and 3), `ws` and `handshake` the sans-I/O protocol core, `link` the
sockets, and `wsclient` the thin asyncio shell that joins them.
"""
