"""One exception hierarchy for every part of ModelDepot.

Each error carries the HTTP status and the snake_case code that the servers put in their JSON
error body, so a single handler per server turns any of them into a response (as Datasette does).
The store and the format checks raise these without knowing HTTP exists; the status is data.

    ModelDepotError                    500 internal_error
    ├── BadRequest                     400 bad_request
    │   └── InvalidName                400 invalid_name
    ├── Unauthorized                   401 unauthorized
    ├── Forbidden                      403 forbidden
    ├── NotFound                       404 not_found
    ├── Conflict                       409 conflict
    ├── PayloadTooLarge                413 payload_too_large
    ├── UnsupportedMediaType           415 unsupported_media_type
    ├── Unprocessable                  422 unprocessable
    │   ├── InvalidModelFile           422 invalid_model_file
    │   ├── UnsafeModel                422 unsafe_model
    │   └── TrustRequired              422 trust_required
    ├── ServiceUnavailable             503 unavailable
    │   ├── Overloaded                 503 overloaded (with Retry-After)
    │   └── OutOfResources             503 out_of_descriptors / out_of_memory
    ├── InsufficientStorage            507 insufficient_storage
    └── StoreError                     500 store_error
        └── SchemaTooNew               500 schema_too_new
"""

from __future__ import annotations


class ModelDepotError(Exception):
    status: int = 500
    code: str = "internal_error"
    retry_after: int | None = None  # seconds, sent as the Retry-After header when set

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code

    def to_dict(self) -> dict[str, dict[str, str]]:
        return {"error": {"code": self.code, "message": self.message}}


class BadRequest(ModelDepotError):
    status = 400
    code = "bad_request"


class InvalidName(BadRequest):
    code = "invalid_name"


class Unauthorized(ModelDepotError):
    status = 401
    code = "unauthorized"


class Forbidden(ModelDepotError):
    status = 403
    code = "forbidden"


class NotFound(ModelDepotError):
    status = 404
    code = "not_found"


class Conflict(ModelDepotError):
    status = 409
    code = "conflict"


class PayloadTooLarge(ModelDepotError):
    status = 413
    code = "payload_too_large"


class UnsupportedMediaType(ModelDepotError):
    status = 415
    code = "unsupported_media_type"


class Unprocessable(ModelDepotError):
    status = 422
    code = "unprocessable"


class InvalidModelFile(Unprocessable):
    code = "invalid_model_file"


class UnsafeModel(Unprocessable):
    code = "unsafe_model"


class TrustRequired(Unprocessable):
    code = "trust_required"


class ServiceUnavailable(ModelDepotError):
    status = 503
    code = "unavailable"


class Overloaded(ServiceUnavailable):
    """Refused before any work began: the same request may simply be sent again later."""

    code = "overloaded"

    def __init__(self, message: str, *, retry_after: int, ticket: str | None = None,
                 place: int | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.ticket, self.place = ticket, place  # a place in the upload line (admission.py)


class OutOfResources(ServiceUnavailable):
    """The operating system refused a resource (descriptors, memory): not the client's fault.

    No Retry-After: unlike an admission refusal, sending the same request again at once may
    well meet the same shortage, so clients do not retry it on their own."""

    code = "out_of_resources"


class InsufficientStorage(ModelDepotError):
    status = 507
    code = "insufficient_storage"


class StoreError(ModelDepotError):
    code = "store_error"


class SchemaTooNew(StoreError):
    code = "schema_too_new"
