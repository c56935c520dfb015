"""Python enums on the wire: one mechanism for every enum the mesh sends.

Proto enum values carry their type's name as a prefix (buf's STANDARD lint):
`Status.STATUS_PENDING`, `Model.MODEL_SDXL`. A Python enum whose member
names are the rest (`PENDING`, `SDXL`) maps to it by name, both ways. The
server's domain enums (`leo_mesh.wire`) and the SDK's public ones
(`leo_client.types`) are all mapped here; a member without a wire value
fails when the map is made, at import, not on the first request.
"""

from __future__ import annotations

import enum
import re
from typing import Generic, Protocol, TypeVar, overload

E = TypeVar("E", bound=enum.Enum)
# The number type of one proto enum (its generated ValueType).
W = TypeVar("W", bound=int)
W_co = TypeVar("W_co", bound=int, covariant=True)


class _Descriptor(Protocol):
    @property
    def name(self) -> str: ...


class WireType(Protocol[W_co]):
    """A generated proto enum type (protobuf's EnumTypeWrapper)."""

    @property
    def DESCRIPTOR(self) -> _Descriptor: ...

    def Value(self, name: str) -> W_co: ...


def prefix(wire: WireType[int]) -> str:
    """STATUS_ for Status, ERROR_REASON_ for ErrorReason."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", wire.DESCRIPTOR.name).upper() + "_"


class WireEnum(Generic[E, W]):
    """The two-way map between one Python enum and one proto enum type."""

    def __init__(self, python: type[E], wire: WireType[W]) -> None:
        start = prefix(wire)
        self._to_wire: dict[E, W] = {member: wire.Value(start + member.name) for member in python}
        self._from_wire: dict[int, E] = {number: member for member, number in self._to_wire.items()}

    def to_wire(self, member: E) -> W:
        return self._to_wire[member]

    @overload
    def from_wire(self, number: int) -> E | None: ...

    @overload
    def from_wire(self, number: int, default: E) -> E: ...

    def from_wire(self, number: int, default: E | None = None) -> E | None:
        """The member of a wire value; `default` for a value it has no member
        for (UNSPECIFIED when the Python enum leaves it out, or a newer value).
        (Not `from_wire(n) or default`: a member may be falsy, an IntEnum's 0.)"""
        return self._from_wire.get(number, default)
