"""Requests in and answers out: publishing with a request id, a trace and a deadline, waiting
for the record a request ends as, and a person's decisions on the actions agents ask approval
for. Two modules stay off this face because of what they import: :mod:`streams.ingress.http`
(``podium serve``, on FastAPI) and :mod:`streams.ingress.faust_bridge` (faust apps on podium
topics); import them by name."""

from streams.ingress.approvals import TIMEOUT_BY, Approval, ApprovalBook, Approvals, Decision
from streams.ingress.publish import Publisher
from streams.ingress.replies import ReplyRouter, StreamRouter

__all__ = [
    "TIMEOUT_BY",
    "Approval",
    "ApprovalBook",
    "Approvals",
    "Decision",
    "Publisher",
    "ReplyRouter",
    "StreamRouter",
]
