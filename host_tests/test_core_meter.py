"""MeterValues and transactionData on a live charger (OCPP 1.6 3.16, 4.7, 9.1).

Periodic samples (MeterValueSampleInterval, MeterValuesSampledData) with every measurand we
support on a three-phase charger, clock-aligned samples (ClockAlignedDataInterval,
MeterValuesAlignedData) with and without a transaction, and the transactionData of
StopTransaction (StopTxnSampledData, StopTxnAlignedData): contexts, location, units, phases.
"""

from charger_helpers import CP, conn, ok
from core_helpers import boot, payloads, start_charging, wait_idle, wait_msg

ALL = "Energy.Active.Import.Register,Power.Active.Import,Current.Import,Voltage,Current.Offered"
UNITS = {"Energy.Active.Import.Register": "Wh", "Power.Active.Import": "W",
         "Current.Import": "A", "Voltage": "V", "Current.Offered": "A"}


def check_values(values, context, phases):
    by = {}
    for v in values:
        assert v["context"] == context and v["location"] == "Outlet"
        assert v["unit"] == UNITS[v["measurand"]]
        float(v["value"])
        by.setdefault(v["measurand"], []).append(v.get("phase"))
    return by


def test_periodic_sampled_values_three_phase(labcsms, sim_factory):
    csms = labcsms
    sim = boot(sim_factory, csms, {"MeterValueSampleInterval": "1", "MeterValuesSampledData": ALL},
               phases=3)
    st = start_charging(sim)
    txid = conn(st)["transaction_id"]
    mv = wait_msg(csms, "MeterValues",
                  lambda p: float(p["meterValue"][0]["sampledValue"][1]["value"]) > 0)
    assert mv["connectorId"] == 1 and mv["transactionId"] == txid
    values = mv["meterValue"][0]["sampledValue"]
    by = check_values(values, "Sample.Periodic", 3)
    assert by == {
        "Energy.Active.Import.Register": [None],
        "Power.Active.Import": [None],
        "Current.Import": ["L1", "L2", "L3"],
        "Voltage": ["L1-N", "L2-N", "L3-N"],
        "Current.Offered": [None],
    }
    offered = [v for v in values if v["measurand"] == "Current.Offered"][0]
    assert float(offered["value"]) == 32.0
    assert csms.violations() == []


def test_clock_aligned_values_with_and_without_a_transaction(labcsms, sim_factory):
    csms = labcsms
    sim = boot(sim_factory, csms, {"ClockAlignedDataInterval": "2",
                                   "MeterValuesAlignedData": "Energy.Active.Import.Register"})
    idle = wait_msg(csms, "MeterValues", timeout=6)
    assert "transactionId" not in idle and idle["connectorId"] == 1
    mv = idle["meterValue"][0]
    assert mv["timestamp"].endswith("Z") and int(mv["timestamp"][17:19]) % 2 == 0
    assert mv["sampledValue"][0]["context"] == "Sample.Clock"
    assert sim.status()["queued_messages"] == 0  # not a transaction message
    st = start_charging(sim)
    txid = conn(st)["transaction_id"]
    tx = wait_msg(csms, "MeterValues", lambda p: "transactionId" in p, timeout=6)
    assert tx["transactionId"] == txid
    assert tx["meterValue"][0]["sampledValue"][0]["context"] == "Sample.Clock"
    assert csms.violations() == []


def test_transaction_data_in_stop_transaction(labcsms, sim_factory):
    csms = labcsms
    sim = boot(sim_factory, csms, {
        "MeterValueSampleInterval": "1",
        "MeterValuesSampledData": "",
        "StopTxnSampledData": "Energy.Active.Import.Register,Power.Active.Import",
        "ClockAlignedDataInterval": "1",
        "MeterValuesAlignedData": "",
        "StopTxnAlignedData": "Energy.Active.Import.Register",
    })
    start_charging(sim)
    e0 = sim.status()["connectors"][0]["energy_wh"]
    sim.wait_for(lambda s: conn(s)["energy_wh"] >= e0 + 3, timeout=12)
    ok(sim, {"cmd": "tap", "uid": "04A1B2C3"})
    stop = wait_msg(csms, "StopTransaction")
    data = stop["transactionData"]
    assert 3 <= len(data) <= 6  # bounded: Begin, the latest samples, End
    contexts = [mv["sampledValue"][0]["context"] for mv in data]
    assert contexts[0] == "Transaction.Begin" and contexts[-1] == "Transaction.End"
    assert set(contexts[1:-1]) <= {"Sample.Periodic", "Sample.Clock"} and contexts[1:-1]
    begin = {v["measurand"]: v for v in data[0]["sampledValue"]}
    end = {v["measurand"]: v for v in data[-1]["sampledValue"]}
    assert set(begin) == {"Energy.Active.Import.Register", "Power.Active.Import"}
    assert int(end["Energy.Active.Import.Register"]["value"]) == stop["meterStop"]
    stamps = [mv["timestamp"] for mv in data]
    assert stamps == sorted(stamps)
    # Nothing was configured for MeterValues themselves: only the StopTransaction carries data.
    assert payloads(csms, "MeterValues") == []
    wait_idle(sim)
    assert csms.violations() == []


def test_no_meter_values_without_configuration(labcsms, sim_factory):
    csms = labcsms
    sim = boot(sim_factory, csms, {"MeterValueSampleInterval": "0",
                                   "ClockAlignedDataInterval": "0"})
    start_charging(sim)
    ok(sim, {"cmd": "unplug", "connector": 1})
    stop = wait_msg(csms, "StopTransaction")
    assert "transactionData" not in stop
    assert csms.messages(CP, "MeterValues") == []
