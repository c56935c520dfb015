"""Python client of the Leo generation mesh.

    from leo_client import Client

    with Client() as leo:                      # LEO_API_TARGET, LEO_API_KEY
        generation = leo.generate("a lighthouse at dusk")
        print([image.url for image in generation.images])

`AsyncClient` is the same, awaited. Every error is a `LeoError`.
"""

from leo_client.aio import AsyncClient
from leo_client.client import Client
from leo_client.errors import (
    AlreadyExists,
    ApiError,
    AuthError,
    CallCancelled,
    ConfigurationError,
    ConnectionLost,
    DeadlineExceeded,
    FailedPrecondition,
    FieldViolation,
    GenerationCancelled,
    GenerationError,
    GenerationFailed,
    InvalidArgument,
    LeoError,
    MissingApiKey,
    NotFound,
    PermissionDenied,
    RateLimited,
    ServerError,
    Unauthenticated,
    Unavailable,
    Unimplemented,
    WaitTimeout,
)
from leo_client.following import ConnectionEvent, Reconnected, Reconnecting
from leo_client.settings import ClientSettings
from leo_client.types import Asset, Generation, Image, Kind, Model, Phase, Priority, Status

__all__ = [
    "AlreadyExists",
    "ApiError",
    "Asset",
    "AsyncClient",
    "AuthError",
    "CallCancelled",
    "Client",
    "ClientSettings",
    "ConfigurationError",
    "ConnectionEvent",
    "ConnectionLost",
    "DeadlineExceeded",
    "FailedPrecondition",
    "FieldViolation",
    "Generation",
    "GenerationCancelled",
    "GenerationError",
    "GenerationFailed",
    "Image",
    "InvalidArgument",
    "Kind",
    "LeoError",
    "MissingApiKey",
    "Model",
    "NotFound",
    "PermissionDenied",
    "Phase",
    "Priority",
    "RateLimited",
    "Reconnected",
    "Reconnecting",
    "ServerError",
    "Status",
    "Unauthenticated",
    "Unavailable",
    "Unimplemented",
    "WaitTimeout",
]
