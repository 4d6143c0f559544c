// DNS messages (RFC 1035 §4): header, questions, resource records, with name
// compression on input. Decoding is strict and bounded: every read is
// checked against the message's end, a compression pointer must point
// before the label that holds it (so pointers can never loop) and a name
// may not pass 255 octets. Any fault is a DnsError naming what is wrong and
// where; nothing else is thrown.
//
// Record data: A and AAAA become addresses, names inside CNAME, NS, PTR, MX
// and SOA are decompressed (their pointers would be wrong at another
// offset), everything else (and EDNS OPT, RFC 6891) is kept as opaque bytes
// and written back unchanged. Encoding writes names uncompressed: a cached
// answer is written anew with its own TTLs, never patched in place.
//
// Names are dot-separated text without the trailing dot (the root is ""),
// as the labels came (case kept); a byte outside letters, digits, "-" and
// "_", or a "." or "\" inside a label, is written as \DDD (dig's form), so
// every wire name has exactly one text form and back.

import { formatIPv4, formatIPv6, ipv4ToBytes, ipv6ToBytes } from '../ip.js'

export const TYPE = { A: 1, NS: 2, CNAME: 5, SOA: 6, PTR: 12, MX: 15, TXT: 16, AAAA: 28, OPT: 41, ANY: 255 } as const
export const CLASS_IN = 1
export const RCODE = { NOERROR: 0, FORMERR: 1, SERVFAIL: 2, NXDOMAIN: 3, NOTIMP: 4, REFUSED: 5 } as const

/** Header flag bits (RFC 1035 §4.1.1). */
export const FLAG = { QR: 0x8000, AA: 0x0400, TC: 0x0200, RD: 0x0100, RA: 0x0080, AD: 0x0020, CD: 0x0010 } as const

const OPCODE_SHIFT = 11

/** A malformed or unencodable message; `message` says what and where. */
export class DnsError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'DnsError'
  }
}

export interface DnsQuestion {
  name: string
  type: number
  class: number
}

export interface SoaData {
  mname: string
  rname: string
  serial: number
  refresh: number
  retry: number
  expire: number
  minimum: number
}

/** Record data by type; `raw` for the types kept opaque. */
export type RData =
  | { kind: 'address'; address: string }
  | { kind: 'name'; name: string }
  | { kind: 'mx'; preference: number; name: string }
  | { kind: 'soa'; soa: SoaData }
  | { kind: 'raw'; bytes: Uint8Array }

export interface DnsRecord {
  name: string
  type: number
  class: number
  /** Seconds, 0-2147483647 (RFC 2181 §8: a larger value reads as 0). */
  ttl: number
  data: RData
}

export interface DnsMessage {
  id: number
  /** The header's second 16 bits: QR, opcode, AA, TC, RD, RA, Z, AD, CD, rcode. */
  flags: number
  questions: DnsQuestion[]
  answers: DnsRecord[]
  authority: DnsRecord[]
  additional: DnsRecord[]
}

export const HEADER_BYTES = 12
const MAX_NAME_WIRE = 255
const MAX_LABEL = 63

export function rcodeOf(m: DnsMessage): number {
  return m.flags & 0x000f
}

export function opcodeOf(m: DnsMessage): number {
  return (m.flags >> OPCODE_SHIFT) & 0x0f
}

/** The first question's name and type, for log lines: "example.com/A". */
export function typeName(type: number): string {
  for (const [k, v] of Object.entries(TYPE)) if (v === type) return k
  return `TYPE${type}`
}

// ---- decoding -----------------------------------------------------------------------

/** Parse a whole message; throws DnsError. Trailing bytes are an error. */
export function decodeMessage(buf: Uint8Array): DnsMessage {
  if (buf.length < HEADER_BYTES) throw new DnsError(`message of ${buf.length} bytes is shorter than the 12-byte header`)
  const r = new Reader(buf)
  const id = r.u16()
  const flags = r.u16()
  const qd = r.u16()
  const an = r.u16()
  const ns = r.u16()
  const ar = r.u16()
  const questions: DnsQuestion[] = []
  for (let i = 0; i < qd; i++) {
    const name = r.name(`question ${i + 1}/${qd}`)
    questions.push({ name, type: r.u16(), class: r.u16() })
  }
  const answers = records(r, an, 'answer')
  const authority = records(r, ns, 'authority')
  const additional = records(r, ar, 'additional')
  if (r.off !== buf.length) throw new DnsError(`${buf.length - r.off} bytes after the last record (offset ${r.off})`)
  return { id, flags, questions, answers, authority, additional }
}

/** The 16-bit id of a message that has at least a header, else -1 (for a FORMERR reply). */
export function messageId(buf: Uint8Array): number {
  return buf.length >= 2 ? (buf[0]! << 8) | buf[1]! : -1
}

function records(r: Reader, count: number, section: string): DnsRecord[] {
  const out: DnsRecord[] = []
  for (let i = 0; i < count; i++) {
    const where = `${section} record ${i + 1}/${count}`
    const name = r.name(where)
    const type = r.u16()
    const cls = r.u16()
    const ttlRaw = r.u32()
    const len = r.u16()
    const end = r.off + len
    if (end > r.buf.length)
      throw new DnsError(`${where}: data of ${len} bytes runs past the end (${r.buf.length - r.off} left)`)
    const data = rdata(r, type, cls, end, where)
    if (r.off !== end) throw new DnsError(`${where}: ${typeName(type)} data length ${len} does not fit its content`)
    out.push({ name, type, class: cls, ttl: ttlRaw > 0x7fffffff ? 0 : ttlRaw, data })
  }
  return out
}

function rdata(r: Reader, type: number, cls: number, end: number, where: string): RData {
  const len = end - r.off
  if (cls === CLASS_IN && type === TYPE.A) {
    if (len !== 4) throw new DnsError(`${where}: A data of ${len} bytes (expected 4)`)
    r.off = end
    return { kind: 'address', address: formatIPv4(r.buf, end - 4) }
  }
  if (cls === CLASS_IN && type === TYPE.AAAA) {
    if (len !== 16) throw new DnsError(`${where}: AAAA data of ${len} bytes (expected 16)`)
    r.off = end
    return { kind: 'address', address: formatIPv6(r.buf, end - 16) }
  }
  if (type === TYPE.CNAME || type === TYPE.NS || type === TYPE.PTR) return { kind: 'name', name: r.name(where, end) }
  if (type === TYPE.MX) {
    const preference = r.u16(end)
    return { kind: 'mx', preference, name: r.name(where, end) }
  }
  if (type === TYPE.SOA) {
    const mname = r.name(where, end)
    const rname = r.name(where, end)
    const soa = { mname, rname, serial: r.u32(end), refresh: r.u32(end), retry: r.u32(end), expire: r.u32(end) }
    return { kind: 'soa', soa: { ...soa, minimum: r.u32(end) } }
  }
  r.off = end
  return { kind: 'raw', bytes: r.buf.slice(end - len, end) }
}

class Reader {
  off = 0
  constructor(readonly buf: Uint8Array) {}

  private need(n: number, limit: number, what: string): void {
    if (this.off + n > limit)
      throw new DnsError(`truncated: ${what} needs ${n} bytes at offset ${this.off}, ${limit - this.off} left`)
  }

  u16(limit = this.buf.length): number {
    this.need(2, limit, 'a 16-bit field')
    const v = (this.buf[this.off]! << 8) | this.buf[this.off + 1]!
    this.off += 2
    return v
  }

  u32(limit = this.buf.length): number {
    this.need(4, limit, 'a 32-bit field')
    const v = this.u16() * 0x10000 + this.u16()
    return v
  }

  /** A possibly compressed name; `limit` bounds the uncompressed part (a record's data end). */
  name(where: string, limit = this.buf.length): string {
    const labels: string[] = []
    let wire = 1 // the root's zero byte
    let pos = this.off
    let jumped = false
    for (;;) {
      if (pos >= (jumped ? this.buf.length : limit)) throw new DnsError(`${where}: truncated name at offset ${pos}`)
      const len = this.buf[pos]!
      if (len === 0) {
        if (!jumped) this.off = pos + 1
        break
      }
      const kind = len & 0xc0
      if (kind === 0xc0) {
        if (pos + 1 >= (jumped ? this.buf.length : limit))
          throw new DnsError(`${where}: truncated compression pointer at offset ${pos}`)
        const target = ((len & 0x3f) << 8) | this.buf[pos + 1]!
        // Only backwards, to before this label: every jump strictly decreases
        // the position, so a loop is impossible.
        if (target >= pos)
          throw new DnsError(`${where}: compression pointer at offset ${pos} points forward or to itself (${target})`)
        if (!jumped) this.off = pos + 2
        jumped = true
        pos = target
        continue
      }
      if (kind !== 0)
        throw new DnsError(`${where}: label type 0x${kind.toString(16)} at offset ${pos} is not supported`)
      const end = pos + 1 + len
      if (end > (jumped ? this.buf.length : limit))
        throw new DnsError(`${where}: label at offset ${pos} runs past the end`)
      wire += len + 1
      if (wire > MAX_NAME_WIRE) throw new DnsError(`${where}: name longer than ${MAX_NAME_WIRE} bytes`)
      labels.push(labelText(this.buf, pos + 1, end))
      pos = end
    }
    return labels.join('.')
  }
}

function isPlain(c: number): boolean {
  return (c >= 0x61 && c <= 0x7a) || (c >= 0x41 && c <= 0x5a) || (c >= 0x30 && c <= 0x39) || c === 0x2d || c === 0x5f
}

function labelText(buf: Uint8Array, start: number, end: number): string {
  let s = ''
  for (let i = start; i < end; i++) {
    const c = buf[i]!
    s += isPlain(c) ? String.fromCharCode(c) : `\\${String(c).padStart(3, '0')}`
  }
  return s
}

// ---- encoding -----------------------------------------------------------------------

/** Name text → wire labels; throws DnsError for a bad name. */
export function nameToWire(name: string): Uint8Array {
  const out: number[] = []
  const text = name.endsWith('.') ? name.slice(0, -1) : name
  if (text !== '') {
    for (const label of text.split('.')) {
      const bytes: number[] = []
      for (let i = 0; i < label.length; i++) {
        const ch = label.charCodeAt(i)
        if (ch === 0x5c) {
          const m = /^\d{3}/.exec(label.slice(i + 1, i + 4))
          const v = m ? Number(m[0]) : -1
          if (v < 0 || v > 255) throw new DnsError(`name ${JSON.stringify(name)}: bad escape at ${i}`)
          bytes.push(v)
          i += 3
        } else if (ch > 0x20 && ch < 0x7f) {
          bytes.push(ch)
        } else {
          throw new DnsError(`name ${JSON.stringify(name)}: character ${ch} must be escaped`)
        }
      }
      if (bytes.length === 0 || bytes.length > MAX_LABEL)
        throw new DnsError(`name ${JSON.stringify(name)}: label of ${bytes.length} bytes (1-${MAX_LABEL})`)
      out.push(bytes.length, ...bytes)
    }
  }
  out.push(0)
  if (out.length > MAX_NAME_WIRE) throw new DnsError(`name ${JSON.stringify(name)}: longer than ${MAX_NAME_WIRE} bytes`)
  return Uint8Array.from(out)
}

class Writer {
  private buf = new Uint8Array(512)
  len = 0

  private room(n: number): void {
    if (this.len + n <= this.buf.length) return
    const next = new Uint8Array(Math.max(this.buf.length * 2, this.len + n))
    next.set(this.buf.subarray(0, this.len))
    this.buf = next
  }

  u16(v: number): void {
    this.room(2)
    this.buf[this.len++] = (v >> 8) & 0xff
    this.buf[this.len++] = v & 0xff
  }

  u32(v: number): void {
    this.u16(Math.floor(v / 0x10000) & 0xffff)
    this.u16(v & 0xffff)
  }

  bytes(b: Uint8Array): void {
    this.room(b.length)
    this.buf.set(b, this.len)
    this.len += b.length
  }

  setU16(at: number, v: number): void {
    this.buf[at] = (v >> 8) & 0xff
    this.buf[at + 1] = v & 0xff
  }

  done(): Uint8Array {
    return this.buf.slice(0, this.len)
  }
}

function rdataBytes(rec: DnsRecord): Uint8Array {
  const d = rec.data
  switch (d.kind) {
    case 'address': {
      const b = rec.type === TYPE.A ? ipv4ToBytes(d.address) : ipv6ToBytes(d.address)
      if (b === null) throw new DnsError(`${typeName(rec.type)} record ${rec.name}: bad address ${d.address}`)
      return b
    }
    case 'name':
      return nameToWire(d.name)
    case 'mx': {
      const w = new Writer()
      w.u16(d.preference)
      w.bytes(nameToWire(d.name))
      return w.done()
    }
    case 'soa': {
      const w = new Writer()
      w.bytes(nameToWire(d.soa.mname))
      w.bytes(nameToWire(d.soa.rname))
      for (const v of [d.soa.serial, d.soa.refresh, d.soa.retry, d.soa.expire, d.soa.minimum]) w.u32(v)
      return w.done()
    }
    case 'raw':
      return d.bytes
  }
}

/** The wire form of a message (names uncompressed). Throws DnsError for a value that cannot be written. */
export function encodeMessage(m: DnsMessage): Uint8Array {
  const w = new Writer()
  w.u16(m.id)
  w.u16(m.flags)
  for (const n of [m.questions.length, m.answers.length, m.authority.length, m.additional.length]) {
    if (n > 0xffff) throw new DnsError(`section of ${n} entries`)
    w.u16(n)
  }
  for (const q of m.questions) {
    w.bytes(nameToWire(q.name))
    w.u16(q.type)
    w.u16(q.class)
  }
  for (const rec of [...m.answers, ...m.authority, ...m.additional]) {
    w.bytes(nameToWire(rec.name))
    w.u16(rec.type)
    w.u16(rec.class)
    w.u32(rec.ttl)
    const data = rdataBytes(rec)
    if (data.length > 0xffff) throw new DnsError(`record ${rec.name}: data of ${data.length} bytes`)
    w.u16(data.length)
    w.bytes(data)
  }
  return w.done()
}

/** A query for name/type (RD set), as a resolver stub sends it. */
export function queryMessage(id: number, name: string, type: number): DnsMessage {
  return {
    id,
    flags: FLAG.RD,
    questions: [{ name, type, class: CLASS_IN }],
    answers: [],
    authority: [],
    additional: [],
  }
}

/** An empty reply to `q` with `rcode` (QR, RA, RD copied; the question echoed). */
export function replyTo(q: DnsMessage, rcode: number): DnsMessage {
  return {
    id: q.id,
    flags: FLAG.QR | FLAG.RA | (q.flags & (FLAG.RD | FLAG.CD)) | (opcodeOf(q) << OPCODE_SHIFT) | rcode,
    questions: q.questions.slice(),
    answers: [],
    authority: [],
    additional: [],
  }
}

/** A FORMERR reply for a message whose header was readable but not the rest: header only. */
export function formErrBytes(id: number): Uint8Array {
  const w = new Writer()
  w.u16(id)
  w.u16(FLAG.QR | FLAG.RA | RCODE.FORMERR)
  for (let i = 0; i < 4; i++) w.u16(0)
  return w.done()
}

/** The EDNS OPT record of a message (RFC 6891), if any; its class is the sender's UDP payload size. */
export function optRecord(m: DnsMessage): DnsRecord | undefined {
  return m.additional.find((r) => r.type === TYPE.OPT)
}

/** Largest UDP reply the asker takes: its EDNS size (512-4096), else 512 (RFC 1035 §4.2.1). */
export function udpLimit(q: DnsMessage): number {
  const opt = optRecord(q)
  return opt === undefined ? 512 : Math.min(4096, Math.max(512, opt.class))
}

/**
 * The reply as bytes that fit `limit`: when the whole message is larger, the
 * header with TC set and the question only (RFC 2181 §9: the asker retries
 * over TCP).
 */
export function encodeWithin(m: DnsMessage, limit: number): Uint8Array {
  const full = encodeMessage(m)
  if (full.length <= limit) return full
  return encodeMessage({
    ...m,
    flags: m.flags | FLAG.TC,
    answers: [],
    authority: [],
    additional: m.additional.filter((r) => r.type === TYPE.OPT),
  })
}
