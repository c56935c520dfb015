from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Image(_message.Message):
    __slots__ = ("url", "width", "height")
    URL_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    url: str
    width: int
    height: int
    def __init__(self, url: _Optional[str] = ..., width: _Optional[int] = ..., height: _Optional[int] = ...) -> None: ...

class Images(_message.Message):
    __slots__ = ("images",)
    IMAGES_FIELD_NUMBER: _ClassVar[int]
    images: _containers.RepeatedCompositeFieldContainer[Image]
    def __init__(self, images: _Optional[_Iterable[_Union[Image, _Mapping]]] = ...) -> None: ...

class Asset(_message.Message):
    __slots__ = ("key", "content_type", "width", "height", "byte_size", "duration_ms", "frame_count")
    KEY_FIELD_NUMBER: _ClassVar[int]
    CONTENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    BYTE_SIZE_FIELD_NUMBER: _ClassVar[int]
    DURATION_MS_FIELD_NUMBER: _ClassVar[int]
    FRAME_COUNT_FIELD_NUMBER: _ClassVar[int]
    key: str
    content_type: str
    width: int
    height: int
    byte_size: int
    duration_ms: int
    frame_count: int
    def __init__(self, key: _Optional[str] = ..., content_type: _Optional[str] = ..., width: _Optional[int] = ..., height: _Optional[int] = ..., byte_size: _Optional[int] = ..., duration_ms: _Optional[int] = ..., frame_count: _Optional[int] = ...) -> None: ...

class StoredAssets(_message.Message):
    __slots__ = ("assets",)
    ASSETS_FIELD_NUMBER: _ClassVar[int]
    assets: _containers.RepeatedCompositeFieldContainer[Asset]
    def __init__(self, assets: _Optional[_Iterable[_Union[Asset, _Mapping]]] = ...) -> None: ...

class CompleteGenerationRequest(_message.Message):
    __slots__ = ("generation_id", "callback_token", "completed", "failure_reason", "stored")
    GENERATION_ID_FIELD_NUMBER: _ClassVar[int]
    CALLBACK_TOKEN_FIELD_NUMBER: _ClassVar[int]
    COMPLETED_FIELD_NUMBER: _ClassVar[int]
    FAILURE_REASON_FIELD_NUMBER: _ClassVar[int]
    STORED_FIELD_NUMBER: _ClassVar[int]
    generation_id: str
    callback_token: str
    completed: Images
    failure_reason: str
    stored: StoredAssets
    def __init__(self, generation_id: _Optional[str] = ..., callback_token: _Optional[str] = ..., completed: _Optional[_Union[Images, _Mapping]] = ..., failure_reason: _Optional[str] = ..., stored: _Optional[_Union[StoredAssets, _Mapping]] = ...) -> None: ...

class CompleteGenerationResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ProgressReport(_message.Message):
    __slots__ = ("generation_id", "callback_token", "queue_position", "percent")
    GENERATION_ID_FIELD_NUMBER: _ClassVar[int]
    CALLBACK_TOKEN_FIELD_NUMBER: _ClassVar[int]
    QUEUE_POSITION_FIELD_NUMBER: _ClassVar[int]
    PERCENT_FIELD_NUMBER: _ClassVar[int]
    generation_id: str
    callback_token: str
    queue_position: int
    percent: int
    def __init__(self, generation_id: _Optional[str] = ..., callback_token: _Optional[str] = ..., queue_position: _Optional[int] = ..., percent: _Optional[int] = ...) -> None: ...

class ReportProgressRequest(_message.Message):
    __slots__ = ("reports",)
    REPORTS_FIELD_NUMBER: _ClassVar[int]
    reports: _containers.RepeatedCompositeFieldContainer[ProgressReport]
    def __init__(self, reports: _Optional[_Iterable[_Union[ProgressReport, _Mapping]]] = ...) -> None: ...

class ReportProgressResponse(_message.Message):
    __slots__ = ("refused_generation_ids",)
    REFUSED_GENERATION_IDS_FIELD_NUMBER: _ClassVar[int]
    refused_generation_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, refused_generation_ids: _Optional[_Iterable[str]] = ...) -> None: ...
