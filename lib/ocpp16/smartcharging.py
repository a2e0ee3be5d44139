"""OCPP 1.6 Smart Charging profile: installed charging profiles, their keys, handlers, live limit.

`SmartCharging(charger)` keeps the installed profiles (compact records of ocpp16.schedule,
persisted in the `chgprofiles` store record, at most MaxChargingProfilesInstalled of them) and
gives each connector its limit in amps (`limit_a`, called by the connector every control cycle:
an identity check and a comparison, the schedule is evaluated only at the next period boundary,
at the latest every _HOLD_MS). Handlers: SetChargingProfile (5.16; Rejected beyond the keys'
bounds, for a TxProfile without a matching running transaction, a ChargePointMaxProfile off
connector 0, a malformed schedule), ClearChargingProfile (5.5; by id, else by any mix of
connector, purpose and stack level), GetCompositeSchedule (5.7; in A or W, limits rounded to 0.1).
Replacement: a new profile replaces one with the same chargingProfileId, and one with the same
stackLevel and purpose on the same connector (3.13.2, 5.16.3). TxProfiles are dropped when their
transaction ends (3.13.1). One that comes with RemoteStartTransaction (5.16.2) is checked when
the request arrives (`expect_tx_profile`) and installed when the transaction starts: from the
transaction record (`tx["profile"]`, set by charger.session), or else from a RAM copy kept for
the connector and idTag of the request.
"""

from micropython import const

import log
from ocpp16 import config as cfg
from ocpp16 import specs
from ocpp16 import schedule as sch
from ocpp16.timefmt import format_rfc3339

_RECORD = "chgprofiles"
_HOLD_MS = const(60000)  # re-evaluate at least this often: follows corrections of the clock
_NO_CLOCK_MS = const(1000)  # without wall time: look again this soon
_REMOTE_GRACE_S = const(60)  # a RemoteStart profile waits ConnectionTimeOut + this for its tx
# Bounds of the read-only keys: storage of MaxChargingProfilesInstalled profiles of
# ChargingScheduleMaxPeriods periods stays well inside store.files.MAX_RECORD.
_STACK_MAX = const(100)
_PERIODS_MAX = const(48)
_PROFILES_MAX = const(16)
_UNIT_KEYS = ("Current", "Power")  # ChargingScheduleAllowedChargingRateUnit item per unit

_UNSEEN = object()  # no transaction state seen yet for a connector (first cycle after boot)


def _range(lo, hi):
    def check(v):
        if not lo <= v <= hi:
            raise ValueError("must be {}..{}".format(lo, hi))

    return check


def _units_check(v):
    cfg.csl_subset(_UNIT_KEYS)(v)
    if not v:
        raise ValueError("at least one unit")


def declare_keys(c, board):
    """The four Smart Charging keys of OCPP 1.6 section 9.4 (read-only; `--config` sets them)."""
    c.declare("ChargeProfileMaxStackLevel", cfg.INT, 8, access="R", check=_range(0, _STACK_MAX))
    c.declare("ChargingScheduleAllowedChargingRateUnit", cfg.CSL, "Current,Power", access="R",
              check=_units_check)
    c.declare("ChargingScheduleMaxPeriods", cfg.INT, 24, access="R",
              check=_range(1, _PERIODS_MAX))
    c.declare("MaxChargingProfilesInstalled", cfg.INT, 10, access="R",
              check=_range(1, _PROFILES_MAX))


class SmartCharging:
    """The charger's charging profiles. `ch`: the charger (board, store, config, clock,
    connectors with `id` and `tx`, a dict with `start_ms`, `id_tag`, `tx_id`, or None)."""

    def __init__(self, ch):
        self.ch = ch
        board = ch.board
        self.volts = float(getattr(board, "voltage", 230.0))
        self.phases = int(getattr(board, "phases", 3))
        n = len(ch.connectors)
        self.profiles = self._load()
        self._amps = [None] * n  # cached limit per connector
        self._until = [0] * n  # monotonic ms when the cached limit may change
        self._seen = [_UNSEEN] * n  # the transaction the cache was computed for
        self._pending = [None] * n  # RemoteStart profile: (record, id_tag, expires_ms, no_start)
        self._dirty = True
        self._cold = False  # some cached limit was computed without the wall time

    # ---- persistence ------------------------------------------------------------------------
    def _load(self):
        raw = self.ch.store.load(_RECORD, []) or []
        if type(raw) is not list:
            raw = []
        good = [r for r in raw if sch.valid_record(r)]
        if len(good) != len(raw):
            log.warn("smart", "%d stored charging profiles unreadable: dropped",
                     len(raw) - len(good))
        if len(good) > _PROFILES_MAX:
            good = good[:_PROFILES_MAX]
        return good

    def _save(self):
        self._dirty = True
        try:
            self.ch.store.save(_RECORD, self.profiles)
        except OSError as e:
            log.error("smart", "could not persist charging profiles: %s", e)

    # ---- time -------------------------------------------------------------------------------
    def _unix_ms(self, mono_ms=None):
        return self.ch.clock.unix_ms(mono_ms)

    def _tx_start_s(self, c):
        tx = c.tx
        if tx is None:
            return None
        u = self._unix_ms(tx.get("start_ms", 0))
        return None if u is None else u // 1000

    def _share(self):
        n = 0
        for c in self.ch.connectors:
            if c.tx is not None:
                n += 1
        return n or 1

    def _default_a(self):
        a = self.ch.board.max_current
        conf = self.ch.config
        if conf.has("MaxCurrent") and conf.get("MaxCurrent") < a:
            a = conf.get("MaxCurrent")
        return float(a)

    # ---- live limit (control loop) ----------------------------------------------------------
    def limit_a(self, c, now_ms):
        """Smart-charging limit of connector c in A now: None = no profile applies, 0 = pause.

        Cheap per cycle: the schedule is evaluated again only when the transaction changes, a
        profile changes, or the cached value's period ends.
        """
        conns = self.ch.connectors
        for k in range(len(conns)):  # any start or stop changes every connector's share
            if conns[k].tx is not self._seen[k]:
                self._tx_changed(conns[k], k, now_ms)
        i = c.id - 1
        if self._cold and self.ch.clock.wall_known:
            self._cold = False
            self._dirty = True  # the time just became known: place the schedules now
        if self._dirty:
            self._dirty = False
            for k in range(len(self._until)):
                self._until[k] = now_ms
        if now_ms >= self._until[i]:
            self._evaluate(c, i, now_ms)
        return self._amps[i]

    def _evaluate(self, c, i, now_ms):
        u_ms = self._unix_ms(now_ms)
        if u_ms is None:
            self._amps[i] = self._no_clock_limit()
            self._until[i] = now_ms + _NO_CLOCK_MS
            self._cold = True
            return
        t = u_ms // 1000
        amps, _ph, until = sch.connector_limit(
            self.profiles, c.id, t, self._tx_start_s(c), self.volts, self.phases, self._share()
        )
        if amps is not None:
            amps = round(amps, 1)
        if amps != self._amps[i]:
            log.info("smart", "connector %d: profile limit %s A", c.id, amps)
        self._amps[i] = amps
        hold = _HOLD_MS
        if until is not None:
            wait = until * 1000 - u_ms
            if wait < hold:
                hold = wait if wait > 0 else 1
        self._until[i] = now_ms + hold

    def _no_clock_limit(self):
        """Before the wall time is known no schedule can be placed: the lowest limit of any
        ChargePointMaxProfile (shared among running transactions) protects the grid connection
        meanwhile; the rest waits."""
        low = None
        for p in self.profiles:
            if p[sch.P_PURPOSE] == sch.CP_MAX:
                for k in range(len(p[sch.P_PERIODS]) // 3):
                    a = sch.amps_of(p, k, self.volts, self.phases)[0]
                    if low is None or a < low:
                        low = a
        return None if low is None else round(low / self._share(), 1)

    def _tx_changed(self, c, i, now_ms):
        """A transaction started or ended on c: its old TxProfiles go (3.13.1), a waiting
        RemoteStart profile becomes the new transaction's TxProfile."""
        tx = c.tx
        self._seen[i] = tx
        self._dirty = True  # the ChargePointMaxProfile share of every connector may change
        keep = [p for p in self.profiles
                if not (p[sch.P_PURPOSE] == sch.TX and p[sch.P_CONN] == c.id)]
        if len(keep) != len(self.profiles):
            log.info("smart", "connector %d: transaction over, TxProfile dropped", c.id)
            self.profiles = keep
            self._save()
        if tx is None:
            return
        pend = self._pending[i]
        self._pending[i] = None
        if "profile" in tx:
            # The session carries the RemoteStart profile with the transaction (it follows the
            # idTag to whichever connector the EV is plugged into): the RAM copy is not needed.
            if tx["profile"]:
                status = self.install_tx_profile(c, tx["profile"])
                log.info("smart", "connector %d: RemoteStart TxProfile %s", c.id, status)
            return
        if pend is None:
            return
        rec, tag, expires, no_start = pend
        if now_ms >= expires or str(tx.get("id_tag", "")).lower() != tag:
            return
        if no_start:
            u = self._unix_ms(now_ms)
            rec[sch.P_START] = 0 if u is None else u // 1000
        status = self._install(c, rec)
        log.info("smart", "connector %d: RemoteStart TxProfile %s", c.id, status)

    # ---- installing and clearing -----------------------------------------------------------
    def _check(self, cid, cp, now_s):
        """Record of csChargingProfiles for connector cid, or ProfileError (Rejected)."""
        conf = self.ch.config
        if not 0 <= cid <= len(self.ch.connectors):
            raise sch.ProfileError("no connector {}".format(cid))
        periods = cp["chargingSchedule"]["chargingSchedulePeriod"]
        if len(periods) > conf.get("ChargingScheduleMaxPeriods"):
            raise sch.ProfileError("more than ChargingScheduleMaxPeriods periods")
        rec = sch.parse_profile(cp, cid, now_s)
        purpose = rec[sch.P_PURPOSE]
        if purpose == sch.CP_MAX and cid != 0:
            raise sch.ProfileError("ChargePointMaxProfile only on connector 0")
        if purpose == sch.TX and cid == 0:
            raise sch.ProfileError("TxProfile needs a connector > 0")
        if rec[sch.P_STACK] > conf.get("ChargeProfileMaxStackLevel"):
            raise sch.ProfileError("stackLevel above ChargeProfileMaxStackLevel")
        allowed = conf.get("ChargingScheduleAllowedChargingRateUnit").split(",")
        if _UNIT_KEYS[rec[sch.P_UNIT]] not in allowed:
            raise sch.ProfileError("chargingRateUnit not allowed")
        return rec

    def _install(self, c, rec):
        """Install a checked record (c: its connector, None for connector 0): replaces the
        profile with the same id and the one with the same stack level, purpose and connector;
        expired profiles make room. 'Accepted', or 'Rejected' when MaxChargingProfilesInstalled
        are installed already."""
        if rec[sch.P_PURPOSE] == sch.TX and c is not None:
            rec[sch.P_TX] = c.tx.get("tx_id") if c.tx is not None else None
        u = self._unix_ms()
        now_s = None if u is None else u // 1000
        keep = []
        for p in self.profiles:
            if p[sch.P_ID] == rec[sch.P_ID]:
                continue
            if (p[sch.P_STACK] == rec[sch.P_STACK] and p[sch.P_PURPOSE] == rec[sch.P_PURPOSE]
                    and p[sch.P_CONN] == rec[sch.P_CONN]):
                continue
            if now_s is not None and p[sch.P_TO] is not None and p[sch.P_TO] <= now_s:
                continue
            keep.append(p)
        if len(keep) >= self.ch.config.get("MaxChargingProfilesInstalled"):
            log.info("smart", "profile %d rejected: MaxChargingProfilesInstalled reached",
                     rec[sch.P_ID])
            return "Rejected"
        keep.append(rec)
        self.profiles = keep
        self._save()
        return "Accepted"

    def set_profile(self, cid, cp):
        """SetChargingProfile: 'Accepted' or 'Rejected' (5.16)."""
        u = self._unix_ms()
        if u is None:
            log.info("smart", "SetChargingProfile rejected: wall time unknown")
            return "Rejected"
        c = None
        try:
            rec = self._check(cid, cp, u // 1000)
            if cid > 0:
                c = self.ch.connectors[cid - 1]
            if rec[sch.P_PURPOSE] == sch.TX:
                self._sync(c)
                if c.tx is None:
                    raise sch.ProfileError("TxProfile without a running transaction")
                want = cp.get("transactionId")
                if want is not None and want != c.tx.get("tx_id"):
                    raise sch.ProfileError("transactionId does not match")
        except sch.ProfileError as e:
            log.info("smart", "SetChargingProfile rejected: %s", e)
            return "Rejected"
        return self._install(c, rec)

    def install_tx_profile(self, c, cp):
        """Install the csChargingProfiles-shaped TxProfile `cp` (from RemoteStartTransaction)
        for the transaction running on connector c: 'Accepted' or 'Rejected'. An Absolute
        profile without startSchedule counts from now, the start of that transaction."""
        u = self._unix_ms()
        if c.tx is None or u is None or cp.get("chargingProfilePurpose") != "TxProfile":
            return "Rejected"
        try:
            rec = self._check(c.id, cp, u // 1000)
        except sch.ProfileError as e:
            log.info("smart", "TxProfile refused: %s", e)
            return "Rejected"
        self._sync(c)
        return self._install(c, rec)

    def _sync(self, c):
        # Take in a transaction change the control loop has not seen yet, so a TxProfile set
        # right after the start is not taken for one of the previous transaction.
        i = c.id - 1
        if c.tx is not self._seen[i]:
            self._tx_changed(c, i, self.ch.clock.now_ms())

    def expect_tx_profile(self, c, cp, id_tag):
        """RemoteStartTransaction with a chargingProfile for connector c (5.16.2): checks it
        and keeps it for the transaction that starts next on c for id_tag. False: refuse the
        RemoteStart (not a TxProfile, or a profile SetChargingProfile would reject)."""
        if cp.get("chargingProfilePurpose") != "TxProfile":
            log.info("smart", "RemoteStart profile refused: purpose must be TxProfile")
            return False
        now_ms = self.ch.clock.now_ms()
        u = self._unix_ms(now_ms)
        try:
            rec = self._check(c.id, cp, 0 if u is None else u // 1000)
        except sch.ProfileError as e:
            log.info("smart", "RemoteStart profile refused: %s", e)
            return False
        no_start = rec[sch.P_KIND] == sch.ABSOLUTE and not cp["chargingSchedule"].get(
            "startSchedule")
        wait_s = self.ch.config.get("ConnectionTimeOut") + _REMOTE_GRACE_S
        self._sync(c)
        self._pending[c.id - 1] = (rec, id_tag.lower(), now_ms + wait_s * 1000, no_start)
        return True

    def clear(self, pid=None, cid=None, purpose=None, stack=None):
        """ClearChargingProfile (5.5): by id alone when given, else every profile matching all
        the criteria given (none: all). 'Accepted', or 'Unknown' when nothing matched."""
        keep = []
        for p in self.profiles:
            if pid is not None:
                hit = p[sch.P_ID] == pid
            else:
                hit = ((cid is None or p[sch.P_CONN] == cid)
                       and (purpose is None or sch.PURPOSES[p[sch.P_PURPOSE]] == purpose)
                       and (stack is None or p[sch.P_STACK] == stack))
            if not hit:
                keep.append(p)
        if len(keep) == len(self.profiles):
            return "Unknown"
        log.info("smart", "%d charging profile(s) cleared", len(self.profiles) - len(keep))
        self.profiles = keep
        self._save()
        return "Accepted"

    # ---- composite schedule ------------------------------------------------------------------
    def composite(self, cid, duration, unit_name=None):
        """GetCompositeSchedule answer (5.7): from now for `duration` s in A or W."""
        ch = self.ch
        n = len(ch.connectors)
        allowed = ch.config.get("ChargingScheduleAllowedChargingRateUnit").split(",")
        if unit_name is None:
            unit = sch.AMPS if _UNIT_KEYS[0] in allowed else sch.WATTS
        else:
            unit = sch.UNITS.index(unit_name)
        u = self._unix_ms()
        if not 0 <= cid <= n or duration < 0 or _UNIT_KEYS[unit] not in allowed or u is None:
            return {"status": "Rejected"}
        t0 = u // 1000
        starts = []
        for c in ch.connectors:
            s = self._tx_start_s(c)
            starts.append(t0 if s is None else s)  # idle: as for a transaction starting now
        profiles = self.profiles
        volts = self.volts
        phases = self.phases
        dflt = self._default_a()
        if cid == 0:

            def value_at(t):
                return sch.site_value(profiles, starts, t, unit, volts, phases, dflt)

        else:
            share = self._share()
            start = starts[cid - 1]

            def value_at(t):
                return sch.connector_value(profiles, cid, t, start, unit, volts, phases, dflt,
                                           share)

        flat, dur = sch.composite(value_at, t0, duration,
                                  ch.config.get("ChargingScheduleMaxPeriods"))
        periods = []
        for k in range(0, len(flat), 2):
            periods.append({"startPeriod": flat[k], "limit": flat[k + 1]})
        ts = format_rfc3339(t0)
        return {
            "status": "Accepted",
            "connectorId": cid,
            "scheduleStart": ts,
            "chargingSchedule": {
                "duration": dur,
                "startSchedule": ts,
                "chargingRateUnit": sch.UNITS[unit],
                "chargingSchedulePeriod": periods,
            },
        }


# ---- handlers ----------------------------------------------------------------------------
def set_charging_profile(ctx, payload):
    return {"status": ctx.smart.set_profile(payload["connectorId"], payload["csChargingProfiles"])}


def clear_charging_profile(ctx, payload):
    g = payload.get
    return {"status": ctx.smart.clear(g("id"), g("connectorId"), g("chargingProfilePurpose"),
                                      g("stackLevel"))}


def get_composite_schedule(ctx, payload):
    return ctx.smart.composite(payload["connectorId"], payload["duration"],
                               payload.get("chargingRateUnit"))


HANDLERS = {
    "ClearChargingProfile": (specs.CLEAR_CHARGING_PROFILE_REQ, clear_charging_profile),
    "GetCompositeSchedule": (specs.GET_COMPOSITE_SCHEDULE_REQ, get_composite_schedule),
    "SetChargingProfile": (specs.SET_CHARGING_PROFILE_REQ, set_charging_profile),
}
