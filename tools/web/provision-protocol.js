// The provisioning protocol in the browser: the JavaScript twin of lib/provision/codec.py and
// crypto.py and of tools/provclient.py (provisioning.md sections 3-5, 8). Frames, chunked
// messages with a SHA-256 trailer, TLV records, the HMAC handshake with the per-device secret,
// sealed messages (AES-128-CBC + HMAC-SHA256, counters), and a Web Bluetooth link. Web Crypto
// does SHA-256, HMAC and AES-CBC with PKCS#7, so no crypto code lives here; it needs a secure
// context (https:// or http://localhost). Checked against tools/web/provision_vectors.json by
// Prov.selfTest (host_tests/test_provision_web.py). No build step: plain script, window.Prov.
"use strict";
(function (global) {
  const SERVICE = "5e7a0001-8c3b-4f2a-9d1e-0c5f3e9a7b10";
  const INFO_CHAR = "5e7a0002-8c3b-4f2a-9d1e-0c5f3e9a7b10";
  const RX_CHAR = "5e7a0003-8c3b-4f2a-9d1e-0c5f3e9a7b10";
  const TX_CHAR = "5e7a0004-8c3b-4f2a-9d1e-0c5f3e9a7b10";
  const F = { BEGIN: 1, DATA: 2, ACK: 3, NACK: 4, ABORT: 5, GET_INFO: 6, INFO: 7 };
  const R = { GAP: 1, TOO_BIG: 2, DIGEST: 3, BUSY: 4, TIMEOUT: 5, MALFORMED: 6 };
  const OP = { GET_STATUS: 1, SET: 2, COMMIT: 3, IDENTIFY: 4, CANCEL: 5, GET: 6, RESTART: 7,
               FACTORY_RESET: 8, HELLO: 0x10, PROOF: 0x11, RESULT: 0x80 };
  const STATUS = ["OK", "BAD_FRAME", "BAD_DIGEST", "NOT_AUTHENTICATED", "WINDOW_CLOSED", "LOCKED",
                  "BAD_FIELD", "INCONSISTENT", "CERT_INVALID", "STORAGE_ERROR", "TOO_BIG", "BUSY",
                  "UNKNOWN_OP"];
  const T = { WIFI_SSID: 1, WIFI_PASSWORD: 2, URL: 3, CP_ID: 4, PROFILE: 5, AUTH_KEY: 6, CA: 7,
              CLIENT_CERT: 8, CLIENT_KEY: 9, DEVICE_ID: 0x20, FIRMWARE: 0x21, CONN_STATUS: 0x22,
              LAST_ERROR: 0x23, CA_SHA256: 0x24, CLIENT_CERT_SHA256: 0x25, SECRETS_SET: 0x26,
              STAGED: 0x27, REASON: 0x30, FIELD: 0x31, SECONDS: 0x32, VERSION: 0x40,
              NONCE_C: 0x41, NONCE_D: 0x42, PROOF: 0x43, STATE: 0x50, CAPS: 0x51,
              MAX_FRAME: 0x52, MAX_MESSAGE: 0x53 };
  const STATES = ["unprovisioned", "window_open", "provisioned", "locked", "session_active"];
  const MAX_FRAME = 512, MIN_FRAME = 20, MAX_MESSAGE = 4096, DIGEST = 32, WINDOW = 8;
  const ACK_TIMEOUT_MS = 5000, ANSWER_TIMEOUT_MS = 10000, MAX_RESENDS = 3;
  const enc = new TextEncoder(), dec = new TextDecoder();

  // ---- bytes ------------------------------------------------------------------------------
  function bytes(x) { return typeof x === "string" ? enc.encode(x) : new Uint8Array(x); }
  function cat(...parts) {
    let n = 0;
    for (const p of parts) n += p.length;
    const out = new Uint8Array(n);
    let i = 0;
    for (const p of parts) { out.set(p, i); i += p.length; }
    return out;
  }
  function hex(u8) { return Array.from(u8, (b) => b.toString(16).padStart(2, "0")).join(""); }
  function unhex(s) {
    if (s.length % 2 || /[^0-9a-fA-F]/.test(s)) throw new Error("not hex");
    const out = new Uint8Array(s.length / 2);
    for (let i = 0; i < out.length; i++) out[i] = parseInt(s.substr(2 * i, 2), 16);
    return out;
  }
  function u32(n) { return new Uint8Array([n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255]); }
  function asInt(u8) { let n = 0; for (const b of u8 || []) n = n * 256 + b; return n; }
  function text(u8) { return u8 === undefined ? null : dec.decode(u8); }

  // ---- frames, messages, records ----------------------------------------------------------
  function frame(type, seq, body) { return cat([type, seq & 255], body || []); }
  function begin(seq, id, total) { return new Uint8Array([F.BEGIN, seq & 255, id & 255, total >> 8, total & 255]); }
  function data(seq, id, off, chunk) { return cat([F.DATA, seq & 255, id & 255, off >> 8, off & 255], chunk); }
  function chunkSize(fs) { return Math.max(MIN_FRAME, Math.min(fs, MAX_FRAME)) - 5; }
  function parse(f) {
    const n = f.length;
    if (n < 2) throw new Error("frame shorter than 2 bytes");
    const t = f[0], seq = f[1];
    if (t === F.DATA && n >= 5) return { t, seq, id: f[2], off: f[3] * 256 + f[4], chunk: f.subarray(5) };
    if ((t === F.BEGIN || t === F.ACK) && n === 5) return { t, seq, id: f[2], value: f[3] * 256 + f[4] };
    if (t === F.NACK && n === 6) return { t, seq, id: f[2], value: f[3] * 256 + f[4], reason: f[5] };
    if (t === F.INFO) return { t, seq, body: f.subarray(2) };
    if (t === F.ABORT && n === 3) return { t, seq, id: f[2] };
    throw new Error("bad frame type " + t + " or length " + n);
  }
  async function sha256(d) { return new Uint8Array(await crypto.subtle.digest("SHA-256", d)); }
  async function withDigest(payload) { return cat(payload, await sha256(payload)); }
  function messageFrames(message, id, fs, seq) {
    const out = [begin(seq, id, message.length)];
    const step = chunkSize(fs);
    for (let off = 0; off < message.length; off += step) {
      seq += 1;
      out.push(data(seq, id, off, message.subarray(off, off + step)));
    }
    return out;
  }
  function tlv(recs) {
    const parts = [];
    for (const [tag, value] of recs) {
      const v = bytes(value);
      parts.push(new Uint8Array([tag, v.length >> 8, v.length & 255]), v);
    }
    return cat(...parts);
  }
  function records(buf, start) {
    const out = new Map();
    let i = start || 0;
    while (i < buf.length) {
      if (buf.length - i < 3) throw new Error("truncated record header");
      const tag = buf[i], len = buf[i + 1] * 256 + buf[i + 2];
      i += 3;
      if (i + len > buf.length) throw new Error("record runs past the message");
      out.set(tag, buf.slice(i, i + len));
      i += len;
    }
    return out;
  }
  function recordList(buf) { return Array.from(records(buf).entries()); }

  // Device messages come as BEGIN/DATA notifications without ACKs.
  class Assembler {
    constructor() { this.id = -1; this.buf = null; this.next = 0; }
    async feed(p) {
      if (p.t === F.BEGIN) {
        if (p.value > MAX_MESSAGE || p.value <= DIGEST) { this.id = -1; return null; }
        this.id = p.id; this.buf = new Uint8Array(p.value); this.next = 0;
        return null;
      }
      if (p.t !== F.DATA || p.id !== this.id || p.off !== this.next) return null;
      if (p.off + p.chunk.length > this.buf.length) { this.id = -1; return null; }
      this.buf.set(p.chunk, p.off);
      this.next += p.chunk.length;
      if (this.next < this.buf.length) return null;
      this.id = -1;
      const body = this.buf.subarray(0, this.buf.length - DIGEST);
      const want = await sha256(body);
      return eq(want, this.buf.subarray(this.buf.length - DIGEST)) ? body.slice() : null;
    }
  }

  // ---- crypto (Web Crypto) ------------------------------------------------------------------
  function eq(a, b) {
    if (a.length !== b.length) return false;
    let d = 0;
    for (let i = 0; i < a.length; i++) d |= a[i] ^ b[i];
    return d === 0;
  }
  async function hmac(key, ...parts) {
    const k = await crypto.subtle.importKey("raw", key, { name: "HMAC", hash: "SHA-256" }, false,
                                            ["sign"]);
    return new Uint8Array(await crypto.subtle.sign("HMAC", k, cat(...parts.map(bytes))));
  }
  async function derive(secret, deviceId, nd, nc) {
    const k = await hmac(secret, "evse-prov-v1", bytes(deviceId), nd, nc);
    return [(await hmac(k, "enc")).slice(0, 16), await hmac(k, "mac")];
  }
  const clientProof = (kMac, nc, nd) => hmac(kMac, "client", nc, nd);
  const deviceProof = (kMac, nd, nc) => hmac(kMac, "device", nd, nc);
  async function seal(kEnc, kMac, dir, ctr, iv, plaintext) {
    const key = await crypto.subtle.importKey("raw", kEnc, "AES-CBC", false, ["encrypt"]);
    const ct = new Uint8Array(await crypto.subtle.encrypt({ name: "AES-CBC", iv }, key, plaintext));
    const head = cat(u32(ctr), iv);
    return cat(head, ct, (await hmac(kMac, dir, head, ct)).slice(0, 16));
  }
  async function unseal(kEnc, kMac, dir, ctr, env) {
    const n = env.length;
    if (n < 52 || (n - 36) % 16) throw new Error("sealed message has a bad length");
    const head = env.subarray(0, 20), ct = env.subarray(20, n - 16);
    if (!eq((await hmac(kMac, dir, head, ct)).slice(0, 16), env.subarray(n - 16))) throw new Error("bad tag");
    if (asInt(head.subarray(0, 4)) !== ctr) throw new Error("counter out of order (replay?)");
    const key = await crypto.subtle.importKey("raw", kEnc, "AES-CBC", false, ["decrypt"]);
    return new Uint8Array(await crypto.subtle.decrypt({ name: "AES-CBC", iv: head.subarray(4) }, key, ct));
  }
  class Channel {
    constructor(kEnc, kMac) { this.kEnc = kEnc; this.kMac = kMac; this.out = 0; this.in = 0; }
    seal(pt) { this.out += 1; return seal(this.kEnc, this.kMac, "C", this.out, crypto.getRandomValues(new Uint8Array(16)), pt); }
    async open(env) { const pt = await unseal(this.kEnc, this.kMac, "D", this.in + 1, env); this.in += 1; return pt; }
  }

  // ---- the client -------------------------------------------------------------------------
  class Refused extends Error {
    constructor(status, recs) {
      let reason = text(recs.get(T.REASON)) || "";
      const secs = recs.get(T.SECONDS);
      if (secs !== undefined && !reason.includes("retry")) reason += " (locked: retry in " + asInt(secs) + " s)";
      super((STATUS[status] || String(status)) + (reason ? ": " + reason : ""));
      this.status = status; this.records = recs;
    }
  }

  class Client {
    // link: { frameSize, async send(frame), set onFrame(fn), async readInfo() }
    constructor(link) {
      this.link = link; this.seq = 0; this.msgId = 0; this.chan = null;
      this.queue = []; this.waiter = null; this.asm = new Assembler(); this.answer = null;
      link.onFrame = (f) => this.push(f);
    }
    push(f) {
      if (this.waiter) { const w = this.waiter; this.waiter = null; w.resolve(f); } else if (this.queue.length < 256) this.queue.push(f);
    }
    recv(ms) {
      if (this.queue.length) return Promise.resolve(this.queue.shift());
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => { this.waiter = null; reject(new Error("no answer from the charger")); }, ms);
        this.waiter = { resolve: (f) => { clearTimeout(timer); resolve(f); } };
      });
    }
    nextSeq() { const s = this.seq; this.seq = (this.seq + 1) & 255; return s; }
    async absorb(p) { const m = await this.asm.feed(p); if (m) this.answer = m; }
    async sendMessage(payload, progress) {
      const msg = await withDigest(payload);
      if (msg.length > MAX_MESSAGE) throw new Error("message of " + msg.length + " bytes is too big for the charger");
      this.msgId = (this.msgId + 1) & 255;
      const total = msg.length, step = chunkSize(this.link.frameSize);
      let acked = 0, next = 0, resends = 0;
      await this.link.send(begin(this.nextSeq(), this.msgId, total));
      while (acked < total) {
        while (next < total && next - acked < WINDOW * step) {
          await this.link.send(data(this.nextSeq(), this.msgId, next, msg.subarray(next, next + step)));
          next += step;
        }
        let p;
        try { p = parse(await this.recv(ACK_TIMEOUT_MS)); } catch (e) {
          if (++resends > MAX_RESENDS) throw e;
          next = acked; continue;
        }
        if (p.t === F.ACK && p.id === this.msgId) {
          acked = Math.max(acked, Math.min(p.value, total)); next = Math.max(next, acked);
          if (progress) progress(acked, total);
        } else if (p.t === F.NACK && p.id === this.msgId) {
          if (p.reason === R.TOO_BIG) throw new Error("TOO_BIG: message too big for the charger");
          if (++resends > MAX_RESENDS) throw new Error("transfer failed (NACK " + p.reason + ")");
          if (p.reason !== R.GAP || p.value === 0) {
            acked = next = 0;
            await this.link.send(begin(this.nextSeq(), this.msgId, total));
          } else { acked = next = p.value; }
        } else if (p.t === F.BEGIN || p.t === F.DATA) {
          await this.absorb(p);
          if (this.answer) return;
        }
      }
    }
    async call(op, recs, progress) {
      const plain = cat([op], tlv(recs || []));
      this.answer = null;
      await this.sendMessage(this.chan ? await this.chan.seal(plain) : plain, progress);
      while (!this.answer) {
        const p = parse(await this.recv(ANSWER_TIMEOUT_MS));
        if (p.t === F.BEGIN || p.t === F.DATA) await this.absorb(p);
      }
      let payload = this.answer;
      this.answer = null;
      if (payload[0] !== OP.RESULT) {
        if (!this.chan) throw new Error("sealed answer outside a session");
        payload = await this.chan.open(payload);
      } else if (this.chan) {
        this.chan = null; // the device ended the session: it answers in plaintext then
      }
      const status = payload[1], out = records(payload, 2);
      if (status !== 0) throw new Refused(status, out);
      return out;
    }
    async login(secret) {
      const nc = crypto.getRandomValues(new Uint8Array(16));
      const r1 = await this.call(OP.HELLO, [[T.VERSION, [1]], [T.NONCE_C, nc]]);
      const nd = r1.get(T.NONCE_D), deviceId = r1.get(T.DEVICE_ID);
      const [kEnc, kMac] = await derive(secret, deviceId, nd, nc);
      const r2 = await this.call(OP.PROOF, [[T.PROOF, await clientProof(kMac, nc, nd)]]);
      if (!eq(r2.get(T.PROOF) || new Uint8Array(0), await deviceProof(kMac, nd, nc))) {
        throw new Error("the charger's proof is wrong: it does not hold this secret");
      }
      this.chan = new Channel(kEnc, kMac);
    }
  }

  // ---- Web Bluetooth link -------------------------------------------------------------------
  class BleLink {
    constructor(device) {
      this.device = device; this.frameSize = MIN_FRAME; this.onFrame = null; this.connected = false;
      this.chain = Promise.resolve(); this.onDisconnect = null;
      device.addEventListener("gattserverdisconnected", () => {
        this.connected = false;
        if (this.onDisconnect) this.onDisconnect();
      });
    }
    static async request() {
      const device = await navigator.bluetooth.requestDevice({ filters: [{ services: [SERVICE] }] });
      return new BleLink(device);
    }
    async connect() {
      const server = await this.device.gatt.connect();
      const svc = await server.getPrimaryService(SERVICE);
      this.info = await svc.getCharacteristic(INFO_CHAR);
      this.rx = await svc.getCharacteristic(RX_CHAR);
      this.tx = await svc.getCharacteristic(TX_CHAR);
      this.tx.addEventListener("characteristicvaluechanged", (e) => {
        const v = e.target.value;
        if (this.onFrame) this.onFrame(new Uint8Array(v.buffer.slice(v.byteOffset, v.byteOffset + v.byteLength)));
      });
      await this.tx.startNotifications();
      this.connected = true;
    }
    send(f) { // GATT operations one at a time (Web Bluetooth spec issue #188)
      this.chain = this.chain.then(() => this.rx.writeValueWithResponse(f));
      return this.chain;
    }
    async readInfo() {
      const v = await this.info.readValue();
      return records(new Uint8Array(v.buffer.slice(v.byteOffset, v.byteOffset + v.byteLength)));
    }
    disconnect() { if (this.device.gatt.connected) this.device.gatt.disconnect(); }
  }

  function infoSummary(recs) {
    const st = asInt(recs.get(T.STATE));
    return { deviceId: text(recs.get(T.DEVICE_ID)), firmware: text(recs.get(T.FIRMWARE)),
             state: STATES[st] || String(st), lockoutSeconds: asInt(recs.get(T.SECONDS)),
             connection: text(recs.get(T.CONN_STATUS)), lastError: text(recs.get(T.LAST_ERROR)) };
  }

  // The AuthorizationKey as it goes on the wire: 32..40 hex digits are a binary key.
  function passwordBytes(s) {
    if (s.length >= 32 && s.length <= 40 && s.length % 2 === 0 && /^[0-9a-fA-F]+$/.test(s)) return unhex(s);
    return bytes(s);
  }

  // ---- self-test against the published vectors -------------------------------------------
  async function selfTest(v) {
    const fails = [];
    const check = (name, got, want) => { if (got !== want) fails.push(name + ": " + got + " != " + want); };
    for (const c of v.hmac_sha256) check("hmac", hex(await hmac(unhex(c.key), unhex(c.msg))), c.mac);
    const s = v.session;
    const [kEnc, kMac] = await derive(unhex(s.secret), s.device_id, unhex(s.nd), unhex(s.nc));
    check("k_enc", hex(kEnc), s.k_enc);
    check("k_mac", hex(kMac), s.k_mac);
    check("client_proof", hex(await clientProof(kMac, unhex(s.nc), unhex(s.nd))), s.client_proof);
    check("device_proof", hex(await deviceProof(kMac, unhex(s.nd), unhex(s.nc))), s.device_proof);
    for (const c of s.seal) {
      const env = await seal(kEnc, kMac, c.dir, c.ctr, unhex(c.iv), unhex(c.plaintext));
      check("seal " + c.dir + c.ctr, hex(env), c.envelope);
      check("unseal " + c.dir + c.ctr, hex(await unseal(kEnc, kMac, c.dir, c.ctr, env)), c.plaintext);
    }
    try { await unseal(kEnc, kMac, "C", 2, unhex(s.seal[0].envelope)); fails.push("replay accepted"); } catch (e) { /* refused */ }
    const f = v.frames;
    const frames = messageFrames(await withDigest(unhex(f.payload)), f.msg_id, f.frame_size, f.seq);
    check("frames", frames.map(hex).join(","), f.frames.join(","));
    const asm = new Assembler();
    let got = null;
    for (const fr of frames) got = (await asm.feed(parse(fr))) || got;
    check("reassembly", got && hex(got), f.payload);
    check("tlv", hex(tlv(v.tlv.records.map(([t, h]) => [t, unhex(h)]))), v.tlv.bytes);
    check("records", JSON.stringify(recordList(unhex(v.tlv.bytes)).map(([t, b]) => [t, hex(b)])),
          JSON.stringify(v.tlv.records));
    return fails;
  }

  global.Prov = { SERVICE, INFO_CHAR, RX_CHAR, TX_CHAR, F, OP, T, STATUS, STATES, MAX_FRAME,
                  Client, BleLink, Refused, infoSummary, passwordBytes, selfTest, hex, unhex,
                  frame, parse, records, tlv, cat };
})(window);
