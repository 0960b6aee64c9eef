"""The mail package's public names, for other packages: what a message may say
(``dr_panel.mail.messages``), the outbox (``dr_panel.mail.outbox``) and who delivers it in this
process (``dr_panel.mail.worker``). Each lives in its own module; this one only hands them on."""

from __future__ import annotations

from dr_panel.mail.messages import (
    WRITTEN_DATE_YEARS,
    IdentifierInMail,
    check_no_identifiers,
    link,
)
from dr_panel.mail.outbox import (
    ERASED_BODY,
    PER_MESSAGE_ERRORS,
    SECRET_BODY_KINDS,
    DeliveryReport,
    deliver,
    error_name,
    is_due,
    outbox,
    queue,
    recipient_of,
    request_delivery,
)
from dr_panel.mail.worker import (
    TRANSPORTS,
    MailWorker,
    add_job,
    deliver_soon,
    init_app,
    start_worker,
)

__all__ = [
    "ERASED_BODY",
    "PER_MESSAGE_ERRORS",
    "SECRET_BODY_KINDS",
    "TRANSPORTS",
    "WRITTEN_DATE_YEARS",
    "DeliveryReport",
    "IdentifierInMail",
    "MailWorker",
    "add_job",
    "check_no_identifiers",
    "deliver",
    "deliver_soon",
    "error_name",
    "init_app",
    "is_due",
    "link",
    "outbox",
    "queue",
    "recipient_of",
    "request_delivery",
    "start_worker",
]
