"""OCPP-J 1.6 error codes and the exception that carries one.

`OCPPError` is the "theirs" error family (style rule 7): raised for bad CSMS input or by a handler
that refuses an action, it carries the wire code that ends up in a CALLERROR. The constants use
the OCPP-J 1.6 spelling (section 4.2.3, including the 1.6 typo "OccurenceConstraintViolation");
`normalise_error_code()` maps the OCPP 2.0.1 spellings a CSMS may send back to them.
"""

NOT_IMPLEMENTED = "NotImplemented"  # requested Action is not known by the receiver
NOT_SUPPORTED = "NotSupported"  # requested Action is recognised but not supported
INTERNAL_ERROR = "InternalError"
PROTOCOL_ERROR = "ProtocolError"  # payload for Action is incomplete
SECURITY_ERROR = "SecurityError"
FORMATION_VIOLATION = "FormationViolation"  # payload syntactically wrong / not the PDU structure
PROPERTY_CONSTRAINT_VIOLATION = "PropertyConstraintViolation"
OCCURENCE_CONSTRAINT_VIOLATION = "OccurenceConstraintViolation"  # sic, OCPP-J 1.6
TYPE_CONSTRAINT_VIOLATION = "TypeConstraintViolation"
GENERIC_ERROR = "GenericError"
# OCPP 2.0.1 only: accepted from a CSMS, never sent by us.
RPC_FRAMEWORK_ERROR = "RpcFrameworkError"
MESSAGE_TYPE_NOT_SUPPORTED = "MessageTypeNotSupported"

# Codes passed through unchanged by normalise_error_code().
_KNOWN = (
    NOT_IMPLEMENTED,
    NOT_SUPPORTED,
    INTERNAL_ERROR,
    PROTOCOL_ERROR,
    SECURITY_ERROR,
    FORMATION_VIOLATION,
    PROPERTY_CONSTRAINT_VIOLATION,
    OCCURENCE_CONSTRAINT_VIOLATION,
    TYPE_CONSTRAINT_VIOLATION,
    GENERIC_ERROR,
    RPC_FRAMEWORK_ERROR,
    MESSAGE_TYPE_NOT_SUPPORTED,
)


class OCPPError(Exception):
    """An OCPP-J error with its wire code.

    `code` is one of the constants above, `description` a short human text ("" when none),
    `details` a dict ({} when none), all three as they go into a CALLERROR.
    """

    def __init__(self, code, description="", details=None):
        super().__init__(code, description)
        self.code = code
        self.description = description
        self.details = {} if details is None else details


def normalise_error_code(code):
    """Map an error code received from a CSMS to the OCPP-J 1.6 spelling.

    2.0.1 `FormatViolation` -> `FormationViolation`, `OccurrenceConstraintViolation` ->
    `OccurenceConstraintViolation`; the 1.6 codes and the 2.0.1-only `RpcFrameworkError` and
    `MessageTypeNotSupported` are kept; anything else (unknown text, a non-string) ->
    `GenericError`.
    """
    if code in _KNOWN:
        return code
    if code == "FormatViolation":
        return FORMATION_VIOLATION
    if code == "OccurrenceConstraintViolation":
        return OCCURENCE_CONSTRAINT_VIOLATION
    return GENERIC_ERROR
