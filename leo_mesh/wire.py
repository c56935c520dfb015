"""The domain's enums (leo_mesh.rules) on the wire: in the public API and in
the AI's contract, by name (leo_contract.enums). Conversion, validation and
dispatch map every enum here."""

from __future__ import annotations

from leo.ai.v1 import ai_pb2
from leo.generation.v1 import generation_pb2
from leo_contract.enums import WireEnum
from leo_mesh.rules import Kind, Model, Status
from leo_mesh.scheduling import Priority, ShownPhase

STATUS = WireEnum(Status, generation_pb2.Status)
MODEL = WireEnum(Model, generation_pb2.Model)
KIND = WireEnum(Kind, generation_pb2.Kind)
PHASE = WireEnum(ShownPhase, generation_pb2.Phase)
PRIORITY = WireEnum(Priority, generation_pb2.Priority)

AI_MODEL = WireEnum(Model, ai_pb2.Model)
AI_KIND = WireEnum(Kind, ai_pb2.Kind)
