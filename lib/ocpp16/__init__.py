"""OCPP 1.6J for the charger: RPC framing, payload validation, dispatch and feature profiles.

Import the modules you need (`ocpp16.rpc`, `ocpp16.dispatch`, ...); this file loads nothing.
"""
