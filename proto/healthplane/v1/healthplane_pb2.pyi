from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Status(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    STATUS_UNKNOWN: _ClassVar[Status]
    STATUS_HEALTHY: _ClassVar[Status]
    STATUS_UNHEALTHY: _ClassVar[Status]
STATUS_UNKNOWN: Status
STATUS_HEALTHY: Status
STATUS_UNHEALTHY: Status

class CheckerSnapshot(_message.Message):
    __slots__ = ("checker_id", "region", "registry_version", "sequence", "sent_unix_ms", "check_count", "states", "incarnation", "details")
    CHECKER_ID_FIELD_NUMBER: _ClassVar[int]
    REGION_FIELD_NUMBER: _ClassVar[int]
    REGISTRY_VERSION_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    SENT_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    CHECK_COUNT_FIELD_NUMBER: _ClassVar[int]
    STATES_FIELD_NUMBER: _ClassVar[int]
    INCARNATION_FIELD_NUMBER: _ClassVar[int]
    DETAILS_FIELD_NUMBER: _ClassVar[int]
    checker_id: str
    region: str
    registry_version: str
    sequence: int
    sent_unix_ms: int
    check_count: int
    states: bytes
    incarnation: int
    details: _containers.RepeatedCompositeFieldContainer[ProbeDetail]
    def __init__(self, checker_id: _Optional[str] = ..., region: _Optional[str] = ..., registry_version: _Optional[str] = ..., sequence: _Optional[int] = ..., sent_unix_ms: _Optional[int] = ..., check_count: _Optional[int] = ..., states: _Optional[bytes] = ..., incarnation: _Optional[int] = ..., details: _Optional[_Iterable[_Union[ProbeDetail, _Mapping]]] = ...) -> None: ...

class ProbeDetail(_message.Message):
    __slots__ = ("check_index", "outcome", "latency_ms", "reason")
    CHECK_INDEX_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    LATENCY_MS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    check_index: int
    outcome: Status
    latency_ms: float
    reason: str
    def __init__(self, check_index: _Optional[int] = ..., outcome: _Optional[_Union[Status, str]] = ..., latency_ms: _Optional[float] = ..., reason: _Optional[str] = ...) -> None: ...

class ReportSummary(_message.Message):
    __slots__ = ("accepted", "dropped", "registry_versions")
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    DROPPED_FIELD_NUMBER: _ClassVar[int]
    REGISTRY_VERSIONS_FIELD_NUMBER: _ClassVar[int]
    accepted: int
    dropped: int
    registry_versions: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, accepted: _Optional[int] = ..., dropped: _Optional[int] = ..., registry_versions: _Optional[_Iterable[str]] = ...) -> None: ...

class HealthSnapshot(_message.Message):
    __slots__ = ("registry_version", "sequence", "generated_unix_ms", "check_count", "states", "check_ids", "warming")
    REGISTRY_VERSION_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    GENERATED_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    CHECK_COUNT_FIELD_NUMBER: _ClassVar[int]
    STATES_FIELD_NUMBER: _ClassVar[int]
    CHECK_IDS_FIELD_NUMBER: _ClassVar[int]
    WARMING_FIELD_NUMBER: _ClassVar[int]
    registry_version: str
    sequence: int
    generated_unix_ms: int
    check_count: int
    states: bytes
    check_ids: _containers.RepeatedScalarFieldContainer[str]
    warming: bool
    def __init__(self, registry_version: _Optional[str] = ..., sequence: _Optional[int] = ..., generated_unix_ms: _Optional[int] = ..., check_count: _Optional[int] = ..., states: _Optional[bytes] = ..., check_ids: _Optional[_Iterable[str]] = ..., warming: _Optional[bool] = ...) -> None: ...

class GetRequest(_message.Message):
    __slots__ = ("include_check_ids",)
    INCLUDE_CHECK_IDS_FIELD_NUMBER: _ClassVar[int]
    include_check_ids: bool
    def __init__(self, include_check_ids: _Optional[bool] = ...) -> None: ...

class WatchRequest(_message.Message):
    __slots__ = ("include_check_ids",)
    INCLUDE_CHECK_IDS_FIELD_NUMBER: _ClassVar[int]
    include_check_ids: bool
    def __init__(self, include_check_ids: _Optional[bool] = ...) -> None: ...

class QueryRequest(_message.Message):
    __slots__ = ("check_ids",)
    CHECK_IDS_FIELD_NUMBER: _ClassVar[int]
    check_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, check_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class CheckerVote(_message.Message):
    __slots__ = ("checker_id", "region", "vote", "snapshot_age_ms", "reason", "latency_ms", "detail_age_ms")
    CHECKER_ID_FIELD_NUMBER: _ClassVar[int]
    REGION_FIELD_NUMBER: _ClassVar[int]
    VOTE_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOT_AGE_MS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    LATENCY_MS_FIELD_NUMBER: _ClassVar[int]
    DETAIL_AGE_MS_FIELD_NUMBER: _ClassVar[int]
    checker_id: str
    region: str
    vote: Status
    snapshot_age_ms: int
    reason: str
    latency_ms: float
    detail_age_ms: int
    def __init__(self, checker_id: _Optional[str] = ..., region: _Optional[str] = ..., vote: _Optional[_Union[Status, str]] = ..., snapshot_age_ms: _Optional[int] = ..., reason: _Optional[str] = ..., latency_ms: _Optional[float] = ..., detail_age_ms: _Optional[int] = ...) -> None: ...

class CheckHealth(_message.Message):
    __slots__ = ("check_id", "status", "healthy_votes", "reporting_votes", "last_change_unix_ms", "checkers")
    CHECK_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    HEALTHY_VOTES_FIELD_NUMBER: _ClassVar[int]
    REPORTING_VOTES_FIELD_NUMBER: _ClassVar[int]
    LAST_CHANGE_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    CHECKERS_FIELD_NUMBER: _ClassVar[int]
    check_id: str
    status: Status
    healthy_votes: int
    reporting_votes: int
    last_change_unix_ms: int
    checkers: _containers.RepeatedCompositeFieldContainer[CheckerVote]
    def __init__(self, check_id: _Optional[str] = ..., status: _Optional[_Union[Status, str]] = ..., healthy_votes: _Optional[int] = ..., reporting_votes: _Optional[int] = ..., last_change_unix_ms: _Optional[int] = ..., checkers: _Optional[_Iterable[_Union[CheckerVote, _Mapping]]] = ...) -> None: ...

class QueryResponse(_message.Message):
    __slots__ = ("registry_version", "sequence", "checks", "warming")
    REGISTRY_VERSION_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    CHECKS_FIELD_NUMBER: _ClassVar[int]
    WARMING_FIELD_NUMBER: _ClassVar[int]
    registry_version: str
    sequence: int
    checks: _containers.RepeatedCompositeFieldContainer[CheckHealth]
    warming: bool
    def __init__(self, registry_version: _Optional[str] = ..., sequence: _Optional[int] = ..., checks: _Optional[_Iterable[_Union[CheckHealth, _Mapping]]] = ..., warming: _Optional[bool] = ...) -> None: ...
