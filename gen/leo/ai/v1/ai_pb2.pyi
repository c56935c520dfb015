from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Model(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MODEL_UNSPECIFIED: _ClassVar[Model]
    MODEL_SD: _ClassVar[Model]
    MODEL_SDXL: _ClassVar[Model]

class Kind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    KIND_UNSPECIFIED: _ClassVar[Kind]
    KIND_IMAGE: _ClassVar[Kind]
    KIND_VIDEO: _ClassVar[Kind]
MODEL_UNSPECIFIED: Model
MODEL_SD: Model
MODEL_SDXL: Model
KIND_UNSPECIFIED: Kind
KIND_IMAGE: Kind
KIND_VIDEO: Kind

class StartGenerationRequest(_message.Message):
    __slots__ = ("generation_id", "prompt", "model", "width", "height", "callback_token", "kind")
    GENERATION_ID_FIELD_NUMBER: _ClassVar[int]
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    CALLBACK_TOKEN_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    generation_id: str
    prompt: str
    model: Model
    width: int
    height: int
    callback_token: str
    kind: Kind
    def __init__(self, generation_id: _Optional[str] = ..., prompt: _Optional[str] = ..., model: _Optional[_Union[Model, str]] = ..., width: _Optional[int] = ..., height: _Optional[int] = ..., callback_token: _Optional[str] = ..., kind: _Optional[_Union[Kind, str]] = ...) -> None: ...

class StartGenerationResponse(_message.Message):
    __slots__ = ("accepted_new",)
    ACCEPTED_NEW_FIELD_NUMBER: _ClassVar[int]
    accepted_new: bool
    def __init__(self, accepted_new: _Optional[bool] = ...) -> None: ...
