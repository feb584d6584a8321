"""PartyQA web UI and JSON HTTP API (Flask app served by waitress)."""
from __future__ import annotations

import logging

from .app import create_app
from .server import serve

__all__ = ["create_app", "serve"]

logging.getLogger(__name__).addHandler(logging.NullHandler())
