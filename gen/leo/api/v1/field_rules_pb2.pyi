from google.protobuf import descriptor_pb2 as _descriptor_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Format(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FORMAT_UNSPECIFIED: _ClassVar[Format]
    FORMAT_UUID: _ClassVar[Format]
FORMAT_UNSPECIFIED: Format
FORMAT_UUID: Format
RULES_FIELD_NUMBER: _ClassVar[int]
rules: _descriptor.FieldDescriptor

class FieldRules(_message.Message):
    __slots__ = ("zero_is_unset", "min_length", "max_length", "minimum", "maximum", "multiple_of", "format", "patterns")
    ZERO_IS_UNSET_FIELD_NUMBER: _ClassVar[int]
    MIN_LENGTH_FIELD_NUMBER: _ClassVar[int]
    MAX_LENGTH_FIELD_NUMBER: _ClassVar[int]
    MINIMUM_FIELD_NUMBER: _ClassVar[int]
    MAXIMUM_FIELD_NUMBER: _ClassVar[int]
    MULTIPLE_OF_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    PATTERNS_FIELD_NUMBER: _ClassVar[int]
    zero_is_unset: bool
    min_length: int
    max_length: int
    minimum: int
    maximum: int
    multiple_of: int
    format: Format
    patterns: _containers.RepeatedCompositeFieldContainer[Pattern]
    def __init__(self, zero_is_unset: _Optional[bool] = ..., min_length: _Optional[int] = ..., max_length: _Optional[int] = ..., minimum: _Optional[int] = ..., maximum: _Optional[int] = ..., multiple_of: _Optional[int] = ..., format: _Optional[_Union[Format, str]] = ..., patterns: _Optional[_Iterable[_Union[Pattern, _Mapping]]] = ...) -> None: ...

class Pattern(_message.Message):
    __slots__ = ("regex", "description")
    REGEX_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    regex: str
    description: str
    def __init__(self, regex: _Optional[str] = ..., description: _Optional[str] = ...) -> None: ...
