"""The cases API's request and response models: each is declared once, validates its door and
is the OpenAPI document's schema of the same name (``Notification``, ``Case``, ``CaseList``...).

A notification is checked here for its JSON *types* and sizes only (an object can never pass as
a name); every value is then judged by ``dr_panel.cases.services.parse_notification``, the one
validator of every door (form, partner form, CSV import, API). Its fields are built from
``FIELDS``, ``ENUMS`` and ``LABELS``, so a new field or enum member reaches the document by itself.

The pseudonymised ``Case`` has no name, date of birth, NHS number, address, postcode or exact age;
``Identifiers`` are added (``RevealedCase``) only after ``services.reveal`` wrote its audit entry.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from datetime import date
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainValidator,
    RootModel,
    Strict,
    ValidationInfo,
    WithJsonSchema,
    create_model,
    field_validator,
)
from pydantic_core import PydanticCustomError

from dr_panel.auth.models import User
from dr_panel.cases.listing import substance_codes
from dr_panel.cases.models import (
    AGE_BANDS,
    CaseStatus,
    CaseType,
    MatchStatus,
    NaloxoneBy,
    Sex,
)
from dr_panel.cases.models import (
    Case as CaseRecord,
)
from dr_panel.cases.services import ENUMS, FIELDS, LABELS, REQUIRED, SUBSTANCES
from dr_panel.cases.workflow import TRANSITIONS, available, reason_of
from dr_panel.privacy import identity as ident
from dr_panel.webapi import (
    PAGE_MAX,
    ApiModel,
    Choice,
    CodesOf,
    Fix,
    IsoDate,
    QueryModel,
    Text,
    Version,
    storable,
)

STRING_MAX = 500  # any string in a notification; the parser then applies each field's own limit
LIST_MAX = 30
# The ranges parse_notification enforces, shown in the document (tests/api check both ends).
BODY_INTEGERS: dict[str, tuple[int, int]] = {
    "naloxone_doses": (1, 20),
    "previous_overdoses": (0, 500),
}
BODY_BOOLEANS = frozenset({"date_is_found"})
BODY_LISTS = frozenset({"substances"})
BODY_DATES = frozenset({"notified_on", "event_date", "date_of_birth"})

PER_PAGE_DEFAULT = 50
PER_PAGE_MAX = 200
REASON_HEADER = "X-Reveal-Reason"
REASON_MAX = 500
REASON_TEXT_MAX = 2000  # workflow.move's limit on a reason
REFERENCE_MAX = 40
NULL = "null"

# workflow.WorkflowError names the page's form fields; the API's keys differ for one.
WORKFLOW_FIELDS = {"why": "reason"}


def _codes(values: type[enum.Enum] | Iterable[str]) -> list[str]:
    return [m.value for m in values] if isinstance(values, type) else list(values)


def _one_of(values: type[enum.Enum] | Iterable[str], *, nullable: bool = False,
            description: str | None = None) -> Any:
    """A field of an answer whose value comes from a fixed list, shown inline in the document
    (``{"type": "string", "enum": [...]}``), as the document always showed it."""
    codes: list[Any] = _codes(values)
    # null among the values (no list of types: the library's schema objects take one type)
    shown: dict[str, Any] = {"enum": [*codes, None]} if nullable else {"type": "string",
                                                                       "enum": codes}

    def shape(schema: dict[str, Any]) -> None:
        kept = {k: schema[k] for k in ("title", "description") if k in schema}
        schema.clear()
        schema.update(shown, **kept)

    return Field(description=description, json_schema_extra=shape)


UUID_SCHEMA = {"type": "string", "format": "uuid"}
Uuid = Annotated[str, WithJsonSchema(UUID_SCHEMA)]
Timestamp = Annotated[str, WithJsonSchema({"type": "string", "format": "date-time"})]


# -- the notification ---------------------------------------------------------------------------

DATE_TEXT = "YYYY-MM-DD, like 2026-03-14 (DD/MM/YYYY is also accepted)."
DESCRIBED = {
    "area": "ONS code of one of your areas, like E06000009.",
    "notifying_agency": "Code of the agency that notified, like POLICE.",
    "event_time": "HH:MM on the 24-hour clock, like 23:15.",
    "full_name": "The person's full name, as far as known: letters, at most 120 characters.",
    "nhs_number": "10 digits with a valid check digit; spaces or hyphens allowed.",
    "address": "At most 300 characters. Stored encrypted.",
    "postcode": "A full UK postcode, like FY1 1AA. Stored encrypted.",
}
PATTERNS = {"area": "^[EWSNewsn][0-9]{8}$"}
SUBSTANCES_FIX = (f"give a list of at most {LIST_MAX} substance codes (strings), or one string "
                  "of codes separated by commas.")


def _substances(value: Any) -> Any:
    """A list of codes or one string of them: strings only, each storable (the codes are the
    parser's to judge)."""

    def fits(text: Any) -> bool:
        return isinstance(text, str) and len(text) <= STRING_MAX and storable(text)

    if value is None or fits(value):
        return value
    if isinstance(value, list) and len(value) <= LIST_MAX and all(fits(v) for v in value):
        return value
    raise PydanticCustomError("fix", SUBSTANCES_FIX)


def _notification_field(key: str) -> tuple[Any, Any]:
    """The annotation and the field of one key of a notification, from what the parser reads."""
    label = LABELS[key]
    required = key in REQUIRED
    or_null = "" if required else ", or null"
    described = DESCRIBED.get(key, label)
    if key in BODY_LISTS:
        schema: dict[str, Any] = {
            "anyOf": [
                {"type": "array", "maxItems": LIST_MAX,
                 "items": {"type": "string", "enum": sorted(c for c, _, _ in SUBSTANCES)}},
                {"type": "string", "maxLength": STRING_MAX},
                {"type": NULL},
            ],
        }
        annotation: Any = Annotated[Any, PlainValidator(_substances), WithJsonSchema(schema)]
        described = f"{label}: a list of codes, or one string of codes separated by commas."
    elif key in BODY_INTEGERS:
        lo, hi = BODY_INTEGERS[key]
        whole = Annotated[int, Field(strict=True),
                          Fix(f"give a whole number from {lo} to {hi}, or null.")]
        annotation = Annotated[whole | None, WithJsonSchema(
            {"anyOf": [{"type": "integer"}, {"type": NULL}], "minimum": lo, "maximum": hi})]
    elif key in BODY_BOOLEANS:
        flag = Annotated[bool, Field(strict=True), Fix("give true or false.")]
        annotation = Annotated[flag | None, WithJsonSchema(
            {"anyOf": [{"type": "boolean"}, {"type": NULL}]})]
    else:
        schema = {"type": "string", "maxLength": STRING_MAX}
        if key in BODY_DATES:
            schema["format"] = "date"
            described = f"{label}: {DATE_TEXT}"
        if key in PATTERNS:
            schema["pattern"] = PATTERNS[key]
        if key in ENUMS:  # shown, not enforced here: the parser also takes "NFO" for "nfo"
            values: list[Any] = _codes(ENUMS[key])
            schema["enum"] = values
            if not required:
                schema = {"enum": [*values, None], "maxLength": STRING_MAX}
        elif not required:
            schema = {"anyOf": [schema, {"type": NULL}]}
        text = Annotated[str, Text(STRING_MAX, newlines=key == "address",
                                   fix=f"give a string (text in double quotes){or_null}.")]
        annotation = Annotated[text if required else text | None, WithJsonSchema(schema)]
    field = Field(title=label, description=described) if required else Field(
        None, title=label, description=described)
    return annotation, field


class NotificationBase(ApiModel):
    UNKNOWN = ("Unknown field: not accepted. Use only the fields of a notification listed in "
               "/api/v1/openapi.json.")
    NOUN = "notification"


if TYPE_CHECKING:
    class Notification(NotificationBase):
        """Its fields: ``FIELDS``."""
else:
    Notification = create_model(
        "Notification",
        __base__=NotificationBase,
        __doc__="A notification of a suspected drug-related death or a non-fatal overdose. The "
        "same fields as the web form and the CSV import; null means not known. Unknown fields "
        "are refused.",
        **{key: _notification_field(key) for key in FIELDS},
    )


# -- the list -----------------------------------------------------------------------------------


def _digits(raw: Any) -> Any:
    """A whole number written in digits only (not 1.5, not +1, not 1e3)."""
    if isinstance(raw, str) and raw.isascii() and raw.isdigit() and len(raw) <= 7:
        return int(raw)
    raise PydanticCustomError("fix_field", "not a whole number")


def _drop_default(schema: dict[str, Any]) -> None:
    """A parameter left out has no value: the document shows only the values it takes (not
    null: a query or a header never carries one)."""
    schema.pop("default", None)
    either = schema.get("anyOf")
    if either and len(either) == 2 and either[1] == {"type": NULL}:
        del schema["anyOf"]
        schema.update(either[0])


def _known_substance(code: str) -> str:
    if code not in set(substance_codes()):
        raise PydanticCustomError("fix_codes", "not a known code")
    return code


CaseTypeValue = Annotated[str, Choice(CaseType)]
CaseStatusValue = Annotated[str, Choice(CaseStatus)]
AreaCode = Annotated[str, Field(strict=True, pattern="^[EWSN][0-9]{8}$"),
                     Fix("use the ONS code of one of your areas, like E06000009.")]
SubstanceCode = Annotated[str, Strict(), AfterValidator(_known_substance),
                          Fix("use one of {codes}."), CodesOf(substance_codes)]
Reference = Annotated[str, Text(REFERENCE_MAX, newlines=False)]
PageNumber = Annotated[int, Field(ge=1, le=PAGE_MAX), BeforeValidator(_digits),
                       Fix(f"give a whole number from 1 to {PAGE_MAX}.")]
PerPage = Annotated[int, Field(ge=1, le=PER_PAGE_MAX), BeforeValidator(_digits),
                    Fix(f"give a whole number from 1 to {PER_PAGE_MAX}.")]


def _given(value: Any) -> Any:
    """A parameter is typed ``| None`` for when it is left out, but null is not a value for
    it (a query or a header never carries one): refused with the field's own sentence."""
    if value is None:
        raise PydanticCustomError("fix_field", "null")
    return value


def _maybe(description: str) -> Any:
    """A query parameter that may be left out: the document shows only the values it takes."""
    return Field(None, description=description, json_schema_extra=_drop_default)


class CaseQuery(QueryModel):
    """The case list's filters, the same names as the page's (``cases.list_cases``). Paged by
    number (``page``, ``per_page``), where the page walks by keyset: see
    ``dr_panel.cases.listing``."""

    type: CaseTypeValue | None = _maybe("Only cases of this type.")
    area: AreaCode | None = _maybe(
        "ONS code of one of your areas; another area is refused (400).")
    status: CaseStatusValue | None = _maybe("Only cases in this status.")
    since: IsoDate | None = _maybe("Events on or after this date (YYYY-MM-DD).")
    until: IsoDate | None = _maybe("Events on or before this date (YYYY-MM-DD).")
    substance: SubstanceCode | None = Field(
        None, description="Only cases where this substance was suspected.",
        json_schema_extra=_drop_default)
    q: Reference | None = _maybe(
        "A reference or the start of one, like NFO-2026-00 (as on the case list page). A case "
        "is also found under a reference it had before it moved area or type."
    )
    page: PageNumber = Field(1, description="Page number, from 1.")
    per_page: PerPage = Field(PER_PAGE_DEFAULT,
                              description=f"Cases per page, at most {PER_PAGE_MAX}.")

    @field_validator("*", mode="before")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        return _given(value)

    @field_validator("until")
    @classmethod
    def _after_since(cls, until: date | None, info: ValidationInfo) -> date | None:
        since = info.data.get("since")
        if until is not None and since is not None and since > until:
            raise PydanticCustomError("fix", "it is before since: check both dates.")
        return until


# The names the list takes: the page's filter form takes the same (but pages by keyset).
QUERY_PARAMS = tuple(CaseQuery.model_fields)


# -- one case and its reveal ----------------------------------------------------------------------


def _utf8(raw: Any) -> Any:
    """WSGI hands headers over as latin-1; a client sending UTF-8 meant UTF-8."""
    if isinstance(raw, str):
        try:
            return raw.encode("latin-1").decode("utf-8")
        except UnicodeError:
            return raw
    return raw


def _zero_or_one(raw: Any) -> int:
    if raw in ("0", "1"):
        return int(raw)
    raise PydanticCustomError("fix_field", "not 0 or 1")


ZeroOrOne = Annotated[
    int, BeforeValidator(_zero_or_one), WithJsonSchema({"type": "integer", "enum": [0, 1]}),
    Fix("give 1 to reveal the identifiers (with a reason), or 0."),
]
ReasonHeader = Annotated[str, Text(REASON_MAX, newlines=False), BeforeValidator(_utf8)]


class RevealQuery(QueryModel):
    """``reveal=1`` (with a reason in the header) asks for the person's identifiers."""

    UNKNOWN = (f"Unknown parameter: use only reveal, and send the reason in the {REASON_HEADER} "
               "header, never in the address: addresses are written to web server logs.")
    reveal: ZeroOrOne = Field(0, description="1 to add the person's identifiers; needs a reason.")


class RevealHeader(QueryModel):
    """The reason for a reveal: a header, never the address (every proxy logs addresses)."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True, loc_by_alias=False)
    reason: ReasonHeader | None = Field(
        None, alias="X-Reveal-Reason", json_schema_extra=_drop_default,
        description="Why you need to see who this person is (for example 'preparing the panel "
        "review'). Written to the audit log; never put names or other identifiers in it. UTF-8.",
    )

    @field_validator("*", mode="before")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        return _given(value)


def reveal_reason(query: RevealQuery, header: RevealHeader) -> tuple[str | None, dict[str, str]]:
    """The reason to reveal with (None for the pseudonymised view), or what is wrong."""
    reason = header.reason
    if query.reveal == 1 and not (reason or "").strip():
        return None, {"reason": (
            "Say why you need to see who this person is (for example 'preparing the panel "
            f"review'), in the {REASON_HEADER} header. Do not put names or other identifiers "
            "in it."
        )}
    if query.reveal != 1 and reason is not None:
        return None, {"reveal": "A reason was given without reveal=1: add reveal=1 to see "
                                "identifiers."}
    return (reason.strip() if query.reveal == 1 and reason else None), {}


# -- answers ------------------------------------------------------------------------------------


class Answer(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CaseArea(Answer):
    code: str = Field(description="ONS code.")
    name: str


def _value(member: enum.Enum | None) -> Any:
    return member.value if member is not None else None


class Case(Answer):
    """A case, pseudonymised: no name, date of birth, NHS number, address or postcode."""

    uuid: Uuid = Field(description="The case's identifier in URLs.")
    reference: str = Field(description="Like NFO-2026-0001; unique per area.")
    case_type: str = _one_of(CaseType)
    status: str = _one_of(CaseStatus)
    area: CaseArea
    notifying_agency: str | None = Field(description="Agency code.")
    notified_on: date
    event_date: date
    event_time: str | None = Field(pattern="^[0-2][0-9]:[0-5][0-9]$")
    date_is_found: bool
    setting: str = _one_of(ENUMS["setting"])
    substances: list[str]
    route: str = _one_of(ENUMS["route"])
    naloxone_given: str = _one_of(ENUMS["naloxone_given"])
    naloxone_by: str | None = _one_of(NaloxoneBy, nullable=True)
    naloxone_doses: int | None
    nfo_outcome: str | None = _one_of(ENUMS["nfo_outcome"], nullable=True)
    treatment_status: str = _one_of(ENUMS["treatment_status"])
    recent_prison_release: str = _one_of(ENUMS["recent_prison_release"])
    housing_status: str = _one_of(ENUMS["housing_status"])
    children_in_household: str = _one_of(ENUMS["children_in_household"])
    previous_overdoses: int | None
    toxicology: str | None = _one_of(ENUMS["toxicology"], nullable=True)
    coroner_stage: str | None = _one_of(ENUMS["coroner_stage"], nullable=True)
    age_band: str | None = _one_of(
        [label for _, _, label in AGE_BANDS], nullable=True,
        description="Age at the event, banded. The exact age is not given.",
    )
    postcode_district: str | None = Field(
        description="The outward code of the postcode only, like FY1.")
    match_status: str = _one_of(MatchStatus)
    person: Uuid = Field(
        description="A pseudonymous identifier of the person, the same on each of their cases.")
    linked_cases: int = Field(ge=0,
                              description="How many other cases of the same person you can see.")

    @classmethod
    def of(cls, case: CaseRecord, linked: dict[int, int]) -> Case:
        """``linked``: ``listing.linked_counts`` of the cases answered together."""
        return cls(**_case_fields(case, linked))


def _case_fields(case: CaseRecord, linked: dict[int, int]) -> dict[str, Any]:
    return {
        "uuid": str(case.uuid),
        "reference": case.reference,
        "case_type": case.case_type.value,
        "status": case.status.value,
        "area": CaseArea(code=case.area.ons_code, name=case.area.name),
        "notifying_agency": case.notifying_agency.code if case.notifying_agency else None,
        "notified_on": case.notified_on,
        "event_date": case.event_date,
        "event_time": case.event_time.strftime("%H:%M") if case.event_time else None,
        "date_is_found": case.date_is_found,
        "setting": case.setting.value,
        "substances": [s.code for s in case.substances],
        "route": case.route.value,
        "naloxone_given": case.naloxone_given.value,
        "naloxone_by": _value(case.naloxone_by),
        "naloxone_doses": case.naloxone_doses,
        "nfo_outcome": _value(case.nfo_outcome),
        "treatment_status": case.treatment_status.value,
        "recent_prison_release": case.recent_prison_release.value,
        "housing_status": case.housing_status.value,
        "children_in_household": case.children_in_household.value,
        "previous_overdoses": case.previous_overdoses,
        "toxicology": _value(case.toxicology),
        "coroner_stage": _value(case.coroner_stage),
        "age_band": case.age_band,
        "postcode_district": case.postcode_district,
        "match_status": case.match_status.value,
        "person": str(case.person.uuid),
        "linked_cases": linked.get(case.person_id, 0),
    }


class Identifiers(Answer):
    """Who the person is. Only with reveal=1 and a reason; every reveal is written to the audit
    log with its reason."""

    full_name: str
    date_of_birth: date | None
    nhs_number: str | None = Field(pattern="^[0-9]{10}$")
    address: str | None
    postcode: str | None
    sex: str = _one_of(Sex)

    @classmethod
    def of(cls, case: CaseRecord, identity: ident.Identity) -> Identifiers:
        return cls(
            full_name=identity.full_name,
            date_of_birth=identity.dob,
            nhs_number=identity.nhs_number,
            address=identity.address,
            postcode=identity.postcode,
            sex=case.person.sex.value,
        )


class RevealedCase(Case):
    """A case with the person's identifiers."""

    identifiers: Identifiers

    @classmethod
    def revealed(cls, case: CaseRecord, linked: dict[int, int],
                 identity: ident.Identity) -> RevealedCase:
        return cls(**_case_fields(case, linked), identifiers=Identifiers.of(case, identity))


class CaseAnswer(RootModel[Case | RevealedCase]):
    """One case: pseudonymised, or with the identifiers when revealed."""

    model_config = ConfigDict(
        title="CaseAnswer",
        json_schema_extra=lambda s: s.update(oneOf=s.pop("anyOf")),  # the two never both fit
    )


class CaseList(Answer):
    items: list[Case]
    page: int = Field(ge=1)
    per_page: int = Field(ge=1, le=PER_PAGE_MAX)
    total: int = Field(ge=0)
    next: str | None = Field(description="The URL of the next page, or null on the last.")


# -- the workflow -------------------------------------------------------------------------------

TransitionName = Annotated[str, Choice([t.name for t in TRANSITIONS])]
ReasonText = Annotated[str, Text(REASON_TEXT_MAX)]
ReferenceText = Annotated[str, Text(REFERENCE_MAX, newlines=False)]
CaseVersion = Annotated[int, Version(1)]


class TransitionRequest(ApiModel):
    """One step in the case's workflow. GET the transitions first: 'available' lists the steps
    you may take now and what each needs."""

    transition: TransitionName = Field(description="The step to take.")
    reason: ReasonText | None = Field(
        None, description="Why; needed by the steps whose needs_reason is true. Stored "
        "encrypted; do not put names or other identifiers in it.")
    expected_on: IsoDate | None = Field(
        None, description="When the results or the inquest are expected (YYYY-MM-DD, today "
        "or later); needed by the awaiting steps.")
    duplicate_of: ReferenceText | None = Field(
        None, description="The reference of the case to keep, like NFO-2026-0012; needed by "
        "'duplicate'.")
    version: CaseVersion | None = Field(
        None, description="The case's version from GET transitions: if someone changed the case "
        "since, nothing is saved and the answer is 409.")


class AvailableTransition(Answer):
    transition: str = _one_of([t.name for t in TRANSITIONS])
    label: str
    to_status: str = _one_of(CaseStatus)
    needs_reason: bool
    needs_expected_on: bool
    needs_duplicate_of: bool
    hint: str


class TimelineEvent(Answer):
    uuid: Uuid
    occurred_at: Timestamp
    transition: str
    from_status: str = _one_of(CaseStatus)
    to_status: str = _one_of(CaseStatus)
    by: str | None
    reason: str | None
    expected_on: date | None


class Transitions(Answer):
    """The steps you may take on the case now, and its timeline, oldest first."""

    case: Uuid
    status: str = _one_of(CaseStatus)
    version: int = Field(ge=1)
    available: list[AvailableTransition]
    timeline: list[TimelineEvent]

    @classmethod
    def of(cls, case: CaseRecord, user: User) -> Transitions:
        """The moves ``user`` may make now, and the timeline (reasons decrypted: only case
        readers reach this)."""
        return cls(
            case=str(case.uuid),
            status=case.status.value,
            version=case.version,
            available=[
                AvailableTransition(
                    transition=t.name,
                    label=t.label,
                    to_status=t.target.value,
                    needs_reason=t.needs_reason,
                    needs_expected_on=t.needs_date,
                    needs_duplicate_of=t.needs_duplicate_of,
                    hint=t.hint,
                )
                for t in available(case, user)
            ],
            timeline=[
                TimelineEvent(
                    uuid=str(e.uuid),
                    occurred_at=e.occurred_at.isoformat(),
                    transition=e.transition,
                    from_status=e.from_status.value,
                    to_status=e.to_status.value,
                    by=e.actor.display_name if e.actor is not None else None,
                    reason=reason_of(e),
                    expected_on=e.expected_on,
                )
                for e in sorted(case.events, key=lambda e: (e.occurred_at, e.id))
            ],
        )
