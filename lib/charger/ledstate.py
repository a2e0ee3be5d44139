"""Which LED pattern the charger shows, from its state (one table, documented in the README).

Priority, highest first: provisioning window, faulted, certificate failure, rejected, unavailable,
charging, suspended, preparing, reserved, free vend (AuthEnabled=false, idle), connecting/offline,
available. The board turns the name into colours and blink timing.
"""


def pattern(ch):
    if ch.board.provisioning_window():
        return "provisioning"
    cs = ch.connectors
    statuses = [c.status for c in cs]
    if "Faulted" in statuses:
        return "faulted"
    conn = ch.conn_status
    if conn == "CertificateValidationFailed":
        return "certificate_failure"
    if conn == "Rejected" or ch.registration == "Rejected":
        return "rejected"
    if all(s == "Unavailable" for s in statuses):
        return "unavailable"
    if "Charging" in statuses:
        return "charging"
    if "SuspendedEV" in statuses or "SuspendedEVSE" in statuses:
        return "suspended"
    if "Preparing" in statuses or "Finishing" in statuses:
        return "preparing"
    if "Reserved" in statuses:
        return "reserved"
    if not ch.config.get("AuthEnabled"):
        return "free_vend"
    if conn != "Connected":
        return "connecting" if ch.prov.get("url") else "provisioning"
    return "available"
