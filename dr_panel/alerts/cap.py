"""One OASIS CAP 1.2 document per issued alert version (``/feeds/cap/<version uuid>.xml``).

Choices, written down:

- ``identifier`` is ``urn:uuid:<version uuid>``: stable, unique per version, no spaces or commas.
  ``sender`` is ``ldis@<BASE_URL host>``. ``sent`` is the moment the version was issued, with
  the offset CAP wants (UTC is written ``-00:00``, never ``Z``).
- ``status`` is ``Actual`` in production and ``Exercise`` elsewhere (development, tests, the
  demo), with a ``note`` saying so: a partner system reading a demo feed must not act on it.
- ``msgType`` is the version's (Alert, Update, Cancel); Update and Cancel carry ``references``
  ("sender,identifier,sent" of the version they follow) and a ``note`` (what changed, or why it
  was cancelled).
- ``scope`` Public, or Restricted with a ``restriction`` saying who may read it.
- ``info``: category Health; ``event`` is the level ("Drug alert"); ``responseType`` Avoid
  for alerts, Monitor for notices, AllClear for a cancellation. The grading maps as follows:

  ==========  =========================================================================
  urgency     urgent alert: Immediate; drug alert: Expected; notice: Future;
              a cancellation: Past
  severity    the assessment's severity of harm (extreme/severe/moderate/minor); without
              an assessment, from the level (urgent: Extreme, alert: Severe, notice: Moderate)
  certainty   a statistical signal (events counted): Observed; a report: Likely when the
              source is reliable or usually reliable (A/B) and the report highly plausible,
              Unlikely when it has low plausibility or its source is not usually reliable
              (D), else Possible; no assessment: Unknown
  ==========  =========================================================================

- ``area``: one per covered area, ``areaDesc`` its name and a ``geocode`` with valueName
  ``ONS`` and the GSS code.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET  # noqa: S405 -- building XML only, never parsing input
from datetime import UTC, datetime
from urllib.parse import urlsplit

from flask import current_app

from dr_panel.alerts.drafting import LABELS, audiences_of, content_of
from dr_panel.alerts.models import (
    AUDIENCES,
    AlertLevel,
    AlertVersion,
    MsgType,
    Rating,
    Reliability,
    Scope,
)

NS = "urn:oasis:names:tc:emergency:cap:1.2"
CONTENT_TYPE = "application/cap+xml"

URGENCY = {
    AlertLevel.URGENT_ALERT: "Immediate",
    AlertLevel.DRUG_ALERT: "Expected",
    AlertLevel.INFORMATION_NOTICE: "Future",
}
LEVEL_SEVERITY = {
    AlertLevel.URGENT_ALERT: "Extreme",
    AlertLevel.DRUG_ALERT: "Severe",
    AlertLevel.INFORMATION_NOTICE: "Moderate",
}
EVENT = {
    AlertLevel.URGENT_ALERT: "Urgent drug alert",
    AlertLevel.DRUG_ALERT: "Drug alert",
    AlertLevel.INFORMATION_NOTICE: "Drug information notice",
}
DESCRIPTION_FIELDS = ("substance", "sold_as", "appearance", "adulterant", "signs_of_harm",
                      "counts")
INSTRUCTION_FIELDS = ("advice", "professional_actions")


def cap_url(version: AlertVersion) -> str:
    """The version's CAP document, absolute (from ``BASE_URL``): for e-mails, webhooks, feeds."""
    from dr_panel.mail.services import link

    return link("feeds.cap", uuid=version.uuid)


def page_url(version: AlertVersion) -> str:
    from dr_panel.mail.services import link

    return link("alerts.alert_page", uuid=version.alert.uuid) + f"#v{version.number}"


def sender() -> str:
    host = urlsplit(str(current_app.config["BASE_URL"])).hostname or "localhost"
    return f"ldis@{host}"


def identifier(version: AlertVersion) -> str:
    return f"urn:uuid:{version.uuid}"


def cap_time(moment: datetime) -> str:
    """CAP's dateTime: seconds, an explicit offset, UTC as '-00:00'."""
    text = moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{text}-00:00"


def reference_of(version: AlertVersion) -> str:
    """'sender,identifier,sent' of an issued version, as another message's references cite it."""
    assert version.issued_at is not None, "only an issued version can be referenced"
    return f"{sender()},{identifier(version)},{cap_time(version.issued_at)}"


def status() -> str:
    return "Actual" if current_app.config.get("ENV_NAME") == "production" else "Exercise"


def severity(version: AlertVersion) -> str:
    assessment = version.alert.assessment
    if assessment is not None:
        return assessment.severity.value.capitalize()
    return LEVEL_SEVERITY[version.level]


def certainty(version: AlertVersion) -> str:
    assessment = version.alert.assessment
    if assessment is None:
        return "Unknown"
    if assessment.signal_id is not None:
        return "Observed"
    if assessment.plausibility is Rating.LOW or assessment.reliability is Reliability.D:
        return "Unlikely"
    if assessment.plausibility is Rating.HIGH and assessment.reliability in (
        Reliability.A, Reliability.B
    ):
        return "Likely"
    return "Possible"


def _sub(parent: ET.Element, tag: str, text: str | None = None) -> ET.Element:
    child = ET.SubElement(parent, f"{{{NS}}}{tag}")
    if text is not None:
        child.text = text
    return child


def _paragraphs(content: dict[str, str], keys: tuple[str, ...]) -> str:
    return "\n\n".join(f"{LABELS[k]}: {content[k]}" for k in keys if content.get(k))


def document(version: AlertVersion) -> bytes:
    """The CAP 1.2 XML of an issued version (UTF-8, with the XML declaration)."""
    if version.issued_at is None:
        raise ValueError("only an issued version has a CAP document")
    content = content_of(version)
    alert = version.alert
    areas = list(version.areas) or [alert.area]
    root = ET.Element(f"{{{NS}}}alert")
    _sub(root, "identifier", identifier(version))
    _sub(root, "sender", sender())
    _sub(root, "sent", cap_time(version.issued_at))
    _sub(root, "status", status())
    _sub(root, "msgType", version.msg_type.value)
    _sub(root, "source", f"Local drug information system, {alert.area.name}")
    _sub(root, "scope", version.scope.value.capitalize())
    if version.scope is Scope.RESTRICTED:
        _sub(
            root,
            "restriction",
            "For the professional drug information network of "
            + ", ".join(a.name for a in areas)
            + ": do not pass on to the public as it stands.",
        )
    notes = []
    if content["note"]:
        notes.append(content["note"])
    if status() != "Actual":
        notes.append("Sent from a dr-panel test or demonstration installation: not a real alert.")
    if notes:
        _sub(root, "note", " ".join(notes))
    if version.references is not None and version.references.issued_at is not None:
        _sub(root, "references", reference_of(version.references))
    info = _sub(root, "info")
    _sub(info, "language", "en-GB")
    _sub(info, "category", "Health")
    _sub(info, "event", EVENT[version.level])
    if version.msg_type is MsgType.CANCEL:
        _sub(info, "responseType", "AllClear")
    else:
        _sub(info, "responseType",
             "Monitor" if version.level is AlertLevel.INFORMATION_NOTICE else "Avoid")
    _sub(info, "urgency", "Past" if version.msg_type is MsgType.CANCEL else URGENCY[version.level])
    _sub(info, "severity", severity(version))
    _sub(info, "certainty", certainty(version))
    audiences = audiences_of(version)
    if audiences:
        _sub(info, "audience", "; ".join(AUDIENCES[c] for c in audiences))
    _sub(info, "effective", cap_time(version.issued_at))
    if version.expires_at is not None:
        _sub(info, "expires", cap_time(version.expires_at))
    _sub(info, "senderName", f"{alert.area.name} local drug information system")
    _sub(info, "headline", (content["title"] or alert.reference)[:160])
    description = _paragraphs(content, DESCRIPTION_FIELDS)
    if description:
        _sub(info, "description", description)
    instruction = _paragraphs(content, INSTRUCTION_FIELDS)
    if instruction:
        _sub(info, "instruction", instruction)
    _sub(info, "web", page_url(version))
    parameter = _sub(info, "parameter")
    _sub(parameter, "valueName", "dr-panel:alert")
    _sub(parameter, "value", f"{alert.reference} version {version.number}")
    for area in areas:
        element = _sub(info, "area")
        _sub(element, "areaDesc", area.name)
        geocode = _sub(element, "geocode")
        _sub(geocode, "valueName", "ONS")
        _sub(geocode, "value", area.ons_code)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True, default_namespace=NS)
