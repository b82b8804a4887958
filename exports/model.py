"""What a disclosure packet is built from: plain data the request workflow hands the packet builder.

The builder never opens the database: the request code (archiver/requests*) gathers these objects, so the
packet can be rendered and tested on its own and redaction has one place to happen (the builder applies
every Redaction to every string it renders, before rendering).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Literal

Decision = Literal["release", "redact", "withhold"]


@dataclass(frozen=True)
class Exemption:
    """One exemption of a law: the citation custodians write and a short name for logs and letters."""

    citation: str  # e.g. "K.S.A. 45-221(a)(30)"
    short_name: str  # e.g. "Clearly unwarranted invasion of personal privacy"
    description: str = ""


@dataclass(frozen=True)
class Redaction:
    """Every occurrence of ``text`` in the record's rendered strings is replaced by a citation label."""

    text: str  # exact text; never rendered, never written anywhere in a packet
    exemption: Exemption


@dataclass(frozen=True)
class VersionIn:
    """One version of a record as it goes into a packet."""

    seq: int
    captured_at: datetime  # UTC
    sha256: str  # of the archived raw item (omitted from the packet when the record is redacted)
    text: str | None
    edited_at: datetime | None = None


@dataclass(frozen=True)
class EventIn:
    """One event in a record's history (captured, edited, hidden, unhidden, removed, restored)."""

    type: str
    at: datetime  # UTC


@dataclass(frozen=True)
class RecordIn:
    """One responsive record with the custodian's decision about it."""

    record_id: str
    platform: str
    account: str
    native_id: str
    kind: str  # post | comment | reply
    parent_id: str | None  # record id of the parent (reply -> comment -> post), if archived
    thread_id: str | None  # record id of the post this item belongs to (None for a post, or unknown)
    author: str | None
    created_at: datetime | None  # platform time, UTC
    permalink: str | None
    status: str  # live | edited | hidden | removed
    first_captured_at: datetime
    last_seen_at: datetime
    removed_at: datetime | None
    versions: Sequence[VersionIn]  # seq order; several for an edited record
    events: Sequence[EventIn]
    decision: Decision
    redactions: Sequence[Redaction] = ()  # decision "redact"
    withhold_exemption: Exemption | None = None  # decision "withhold"


@dataclass(frozen=True)
class PacketIn:
    """Everything one export of one request needs."""

    request_id: str  # validated: letters, digits, '-', '_' only
    law: str  # "kora" | "cpra"
    law_name: str  # "Kansas Open Records Act"
    law_citation: str  # "K.S.A. 45-215 et seq."
    requester: str
    description: str
    received: date
    due: date
    extended_due: date | None
    extension_reason: str | None
    agency_name: str
    custodian: str
    bates_prefix: str
    timezone: str  # agency time zone (IANA) for displayed times
    generated_at: datetime  # UTC, from the injected clock
    records: Sequence[RecordIn]  # every record in the request, any decision, in no particular order
    exemptions: Sequence[Exemption] = ()  # every exemption of the law (letters may list them)
    bates_start: int = 1
    export_seq: int = 1  # 1 for the first export of this request, 2 for the second ...
    extra: dict[str, str] = field(default_factory=dict)  # free-form values agencies' templates may use
