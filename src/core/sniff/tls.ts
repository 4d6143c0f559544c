// TLS ClientHello sniffer: SNI (host) and ALPN from the client's first flight.
//
// The buffer holds every byte the client sent so far. The ClientHello may be
// split across several TLS records (a client may fragment at the record
// layer, down to 1-byte records), and its records across any number of reads.
// The handshake bytes are never copied: `Fragments` maps offsets in the
// ClientHello to offsets in the buffer, record by record.
//
// Checks (RFC 8446 5.1, 4.1.2; RFC 6066 3; RFC 7301 3.1): records of type 22
// with version 0x0301-0x0304, 1..16384 bytes long; one handshake message of
// type client_hello (1) no longer than maxHello; every length field bounded by
// what holds it, and every vector ending exactly where its length says.
// Bytes after the ClientHello (in its last record or later records) are not
// looked at.

import { escapeBytes, hex, hexByte, showText } from '../bytes.js'
import { checkDnsName } from './text.js'
import { NEED_MORE, notMine, type Ok } from '../parse-result.js'
import type { Sniffed, SniffResult } from './types.js'

/** Default limit on the ClientHello body (the handshake message's length field). */
export const TLS_MAX_HELLO = 16 * 1024

/** RFC 8446 5.1: a TLSPlaintext fragment is at most 2^14 bytes. */
const MAX_RECORD = 16384
const RECORD_HEADER = 5
const HANDSHAKE_HEADER = 4
const CONTENT_HANDSHAKE = 22
const CLIENT_HELLO = 1
const EXT_SERVER_NAME = 0
const EXT_ALPN = 16

export interface TlsSniffOptions {
  /** Largest ClientHello body accepted, in bytes (default TLS_MAX_HELLO). */
  maxHello?: number
}

/** The handshake bytes of the records read so far, as one logical byte string. */
class Fragments {
  length = 0
  private readonly phys: number[] = [] // where each fragment starts in buf
  private readonly logical: number[] = [] // where it starts in the handshake bytes
  private readonly lens: number[] = []
  private cur = 0

  constructor(private readonly buf: Uint8Array) {}

  add(start: number, len: number): void {
    if (len === 0) return
    this.phys.push(start)
    this.logical.push(this.length)
    this.lens.push(len)
    this.length += len
  }

  /** Byte i of the handshake bytes; 0 <= i < length (callers check). */
  at(i: number): number {
    let c = this.cur
    while (i < this.logical[c]!) c--
    while (i >= this.logical[c]! + this.lens[c]!) c++
    this.cur = c
    return this.buf[this.phys[c]! + i - this.logical[c]!]!
  }
}

/** A bounded cursor over [pos, end) of the handshake bytes. Callers check left() first. */
class Reader {
  constructor(
    readonly f: Fragments,
    public pos: number,
    readonly end: number,
  ) {}

  left(): number {
    return this.end - this.pos
  }

  u8(): number {
    return this.f.at(this.pos++)
  }

  u16(): number {
    const v = (this.f.at(this.pos) << 8) | this.f.at(this.pos + 1)
    this.pos += 2
    return v
  }

  /** A reader over the next n bytes, which this one skips. */
  take(n: number): Reader {
    const r = new Reader(this.f, this.pos, this.pos + n)
    this.pos += n
    return r
  }
}

function invalid(error: string): SniffResult {
  return { status: 'invalid', proto: 'tls', error }
}

const NEED_MORE_TLS: SniffResult = { status: 'need-more', proto: 'tls' }

/**
 * Sniff a TLS ClientHello at the start of buf (all bytes read so far).
 * ok: proto 'tls', host = SNI host_name (lower-case, no trailing dot; absent
 * when the client sent none), alpn = ALPN protocol names (absent when none).
 */
export function sniffTls(buf: Uint8Array, opts: TlsSniffOptions = {}): SniffResult {
  const maxHello = opts.maxHello ?? TLS_MAX_HELLO
  if (buf.length === 0) return NEED_MORE
  if (buf[0] !== CONTENT_HANDSHAKE)
    return notMine(`tls: first byte ${hexByte(buf[0]!)} is not a handshake record (0x16)`)
  if (buf.length >= 2 && buf[1] !== 3) return notMine(`tls: record version major ${hexByte(buf[1]!)} is not 0x03`)
  if (buf.length >= 3 && (buf[2]! < 1 || buf[2]! > 4)) {
    return notMine(`tls: record version ${hex(0x300 | buf[2]!, 4)} is not 0x0301-0x0304`)
  }

  const frags = new Fragments(buf)
  let helloEnd = -1 // 4 + ClientHello length, once the handshake header is in
  let pos = 0 // start of the next record in buf
  for (;;) {
    if (pos >= buf.length) return NEED_MORE_TLS
    // pos > 0: the first record's type and version were checked above.
    if (pos > 0) {
      if (buf[pos] !== CONTENT_HANDSHAKE) {
        return invalid(`tls: record type ${buf[pos]} at offset ${pos} interrupts the client_hello (want 22)`)
      }
      if (pos + 2 < buf.length && (buf[pos + 1] !== 3 || buf[pos + 2]! < 1 || buf[pos + 2]! > 4)) {
        return invalid(
          `tls: record version ${hex((buf[pos + 1]! << 8) | buf[pos + 2]!, 4)} at offset ${pos} is not 0x0301-0x0304`,
        )
      }
    }
    if (pos + RECORD_HEADER > buf.length) return NEED_MORE_TLS
    const recLen = (buf[pos + 3]! << 8) | buf[pos + 4]!
    if (recLen === 0) return invalid(`tls: empty handshake record at offset ${pos}`)
    if (recLen > MAX_RECORD) return invalid(`tls: record length ${recLen} at offset ${pos} exceeds ${MAX_RECORD}`)
    const avail = Math.min(recLen, buf.length - pos - RECORD_HEADER)
    frags.add(pos + RECORD_HEADER, avail)

    if (helloEnd < 0) {
      const end = helloEndOf(frags, maxHello)
      if (typeof end !== 'number') {
        if (end.status === 'invalid') return end
      } else helloEnd = end
    }
    if (helloEnd >= 0 && frags.length >= helloEnd) break
    if (avail < recLen) return NEED_MORE_TLS
    pos += RECORD_HEADER + recLen
  }
  return parseClientHello(new Reader(frags, HANDSHAKE_HEADER, helloEnd))
}

/**
 * Sniff a ClientHello handshake message that comes without the record layer
 * (QUIC carries it in CRYPTO frames): hs is the handshake stream from its
 * first byte, as far as it is known. Answers as sniffTls does.
 */
export function sniffClientHelloMessage(hs: Uint8Array, opts: TlsSniffOptions = {}): SniffResult {
  const frags = new Fragments(hs)
  frags.add(0, hs.length)
  const end = helloEndOf(frags, opts.maxHello ?? TLS_MAX_HELLO)
  if (typeof end !== 'number') return end
  if (frags.length < end) return NEED_MORE_TLS
  return parseClientHello(new Reader(frags, HANDSHAKE_HEADER, end))
}

/** Where the ClientHello ends in the handshake bytes (header + length), once its header is in. */
function helloEndOf(frags: Fragments, maxHello: number): number | SniffResult {
  if (frags.length >= 1 && frags.at(0) !== CLIENT_HELLO) {
    return invalid(`tls: handshake type ${frags.at(0)} is not client_hello (1)`)
  }
  if (frags.length < HANDSHAKE_HEADER) return NEED_MORE_TLS
  const len = (frags.at(1) << 16) | (frags.at(2) << 8) | frags.at(3)
  if (len > maxHello) return invalid(`tls: client_hello length ${len} exceeds limit ${maxHello}`)
  return HANDSHAKE_HEADER + len
}

/** Checks a u8/u16 vector length against what is left; returns an error or null. */
function overrun(what: string, len: number, r: Reader): string | null {
  return len > r.left() ? `tls: ${what} length ${len} exceeds remaining ${r.left()}` : null
}

function parseClientHello(r: Reader): SniffResult {
  const total = r.left()
  if (r.left() < 2 + 32) return invalid(`tls: client_hello length ${total} too short for version and random`)
  const version = r.u16()
  if (version >> 8 !== 3 || (version & 0xff) > 4)
    return invalid(`tls: client_hello version ${hex(version, 4)} is not 0x0300-0x0304`)
  r.pos += 32 // random

  if (r.left() < 1) return invalid('tls: client_hello ends before session_id')
  const sid = r.u8()
  if (sid > 32) return invalid(`tls: session_id length ${sid} exceeds 32`)
  let e = overrun('session_id', sid, r)
  if (e) return invalid(e)
  r.pos += sid

  if (r.left() < 2) return invalid('tls: client_hello ends before cipher_suites')
  const cs = r.u16()
  if (cs === 0 || cs % 2 !== 0) return invalid(`tls: cipher_suites length ${cs} is not a positive even number`)
  e = overrun('cipher_suites', cs, r)
  if (e) return invalid(e)
  r.pos += cs

  if (r.left() < 1) return invalid('tls: client_hello ends before compression_methods')
  const cm = r.u8()
  if (cm === 0) return invalid('tls: compression_methods is empty')
  e = overrun('compression_methods', cm, r)
  if (e) return invalid(e)
  r.pos += cm

  const out: Ok<Sniffed> = { status: 'ok', proto: 'tls' }
  if (r.left() === 0) return out // no extensions (allowed before TLS 1.3)
  if (r.left() < 2) return invalid(`tls: ${r.left()} stray byte after compression_methods`)
  const extLen = r.u16()
  if (extLen !== r.left()) return invalid(`tls: extensions length ${extLen} does not match remaining ${r.left()}`)

  const seen = new Set<number>()
  while (r.left() > 0) {
    if (r.left() < 4) return invalid(`tls: extension header truncated (${r.left()} bytes left)`)
    const type = r.u16()
    const len = r.u16()
    e = overrun(`extension ${type}`, len, r)
    if (e) return invalid(e)
    if (seen.has(type)) return invalid(`tls: extension ${type} appears twice`)
    seen.add(type)
    const x = r.take(len)
    if (type === EXT_SERVER_NAME) {
      const sni = parseServerName(x)
      if ('why' in sni) return invalid(sni.why)
      if (sni.host !== undefined) out.host = sni.host
    } else if (type === EXT_ALPN) {
      const alpn = parseAlpn(x)
      if (typeof alpn === 'string') return invalid(alpn)
      out.alpn = alpn
    }
  }
  return out
}

/** RFC 6066 3: ServerNameList; the host_name entry (at most one). */
function parseServerName(r: Reader): { host: string | undefined } | { why: string } {
  const extLen = r.left()
  if (r.left() < 2) return { why: `tls: server_name extension length ${extLen} too short for its list` }
  const listLen = r.u16()
  if (listLen !== r.left())
    return { why: `tls: server_name_list length ${listLen} does not match remaining ${r.left()}` }
  if (listLen === 0) return { why: 'tls: server_name_list is empty' }
  let host: string | undefined
  while (r.left() > 0) {
    if (r.left() < 3) return { why: `tls: server_name entry truncated (${r.left()} bytes left)` }
    const nameType = r.u8()
    const len = r.u16()
    const e = overrun('server_name', len, r)
    if (e) return { why: e }
    const n = r.take(len)
    if (nameType !== 0) continue // other name types: none defined, skipped
    if (host !== undefined) return { why: 'tls: more than one host_name in server_name' }
    if (len === 0) return { why: 'tls: server_name host_name is empty' }
    if (len > 254) return { why: `tls: server_name host_name length ${len} exceeds 253` }
    let s = ''
    for (let i = n.pos; i < n.end; i++) s += String.fromCharCode(n.f.at(i))
    const c = checkDnsName(s)
    if ('why' in c) return { why: `tls: server_name ${showText(s)} is not a DNS name: ${c.why}` }
    host = c.name
  }
  return { host }
}

/** RFC 7301 3.1: ProtocolNameList; returns the names or an error. */
function parseAlpn(r: Reader): string[] | string {
  const extLen = r.left()
  if (r.left() < 2) return `tls: ALPN extension length ${extLen} too short for its list`
  const listLen = r.u16()
  if (listLen !== r.left()) return `tls: ALPN protocol_name_list length ${listLen} does not match remaining ${r.left()}`
  if (listLen === 0) return 'tls: ALPN protocol_name_list is empty'
  const names: string[] = []
  while (r.left() > 0) {
    const len = r.u8()
    if (len === 0) return 'tls: empty ALPN protocol name'
    const e = overrun('ALPN protocol name', len, r)
    if (e) return e
    const n = r.take(len)
    names.push(escapeBytes((i) => n.f.at(i), n.pos, n.end))
  }
  return names
}
