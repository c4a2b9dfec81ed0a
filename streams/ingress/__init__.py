"""Requests in and answers out: publishing with a request id, a trace and a deadline; the HTTP
gateway (``podium serve``); waiting for the record a request ends as."""

from streams.ingress.http import Entry, create_app, model_for_schema
from streams.ingress.publish import Publisher
from streams.ingress.replies import ReplyRouter, StreamRouter

__all__ = ["Entry", "Publisher", "ReplyRouter", "StreamRouter", "create_app", "model_for_schema"]
