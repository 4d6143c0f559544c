// SOCKS wire formats: SOCKS5 (RFC 1928) with username/password
// authentication (RFC 1929), SOCKS4 and SOCKS4a; the server side (what a
// client sends ugate, what ugate replies) and the client side (ugate
// chaining through a SOCKS5 upstream).
//
// Parsers answer need-more, invalid or ok (parse-result.ts). Encoders throw
// RangeError only for arguments no parser in ugate produces (a caller bug).

import { hexByte, readU16, showBytes, utf8Decode, utf8Encode } from './bytes.js'
import { NEED_MORE, invalid, type Invalid, type NeedMore, type Ok, type Parsed } from './parse-result.js'
import { formatIPv4, formatIPv6, ipv4ToBytes, ipv6ToBytes } from './ip.js'

export type SocksAddressType = 'ipv4' | 'domain' | 'ipv6'

// ---------------------------------------------------------------- constants

const SOCKS5_VERSION = 0x05
const SOCKS4_VERSION = 0x04

/** Authentication methods (RFC 1928 §3). */
export const SOCKS5_METHOD = {
  NO_AUTH: 0x00,
  GSSAPI: 0x01,
  USER_PASS: 0x02,
  NO_ACCEPTABLE: 0xff,
} as const

export const SOCKS5_CMD = {
  CONNECT: 0x01,
  BIND: 0x02,
  UDP_ASSOCIATE: 0x03,
} as const

const SOCKS5_ATYP = {
  IPV4: 0x01,
  DOMAIN: 0x03,
  IPV6: 0x04,
} as const

/** Reply codes (RFC 1928 §6). */
export const SOCKS5_REPLY = {
  SUCCEEDED: 0x00,
  GENERAL_FAILURE: 0x01,
  NOT_ALLOWED: 0x02,
  NETWORK_UNREACHABLE: 0x03,
  HOST_UNREACHABLE: 0x04,
  CONNECTION_REFUSED: 0x05,
  TTL_EXPIRED: 0x06,
  COMMAND_NOT_SUPPORTED: 0x07,
  ADDRESS_TYPE_NOT_SUPPORTED: 0x08,
} as const

const REPLY_TEXT = [
  'succeeded',
  'general SOCKS server failure',
  'connection not allowed by ruleset',
  'network unreachable',
  'host unreachable',
  'connection refused',
  'TTL expired',
  'command not supported',
  'address type not supported',
]

/** "connection refused" for 0x05; "unassigned reply 0x2a" outside 0x00-0x08. */
export function socks5ReplyText(code: number): string {
  return REPLY_TEXT[code] ?? `unassigned reply ${hexByte(code)}`
}

/** SOCKS4 reply codes (CD field). */
const SOCKS4_REPLY = {
  GRANTED: 0x5a,
  REJECTED: 0x5b,
} as const

/** Longest SOCKS4 user id / SOCKS4a host name accepted (bytes, without the NUL). */
const SOCKS4_MAX_FIELD = 255

// ------------------------------------------------------------ SOCKS5 server

export type Socks5GreetingResult = NeedMore | Invalid | Parsed<{ methods: number[] }>

/** VER NMETHODS METHODS... (RFC 1928 §3). */
export function parseSocks5Greeting(buf: Uint8Array): Socks5GreetingResult {
  if (buf.length < 1) return NEED_MORE
  if (buf[0] !== SOCKS5_VERSION) return invalid(`socks5: unsupported version ${hexByte(buf[0]!)} in greeting`)
  if (buf.length < 2) return NEED_MORE
  const n = buf[1]!
  if (n === 0) return invalid('socks5: greeting offers no authentication methods (NMETHODS 0x00)')
  if (buf.length < 2 + n) return NEED_MORE
  return { status: 'ok', consumed: 2 + n, methods: Array.from(buf.subarray(2, 2 + n)) }
}

/**
 * The method ugate picks: with authRequired, username/password (0x02) if
 * offered; without, no authentication (0x00) if offered. 0xFF otherwise
 * (a client that offers only 0x02 to a server without users is refused).
 */
export function chooseSocks5Method(methods: readonly number[], authRequired: boolean): number {
  const want = authRequired ? SOCKS5_METHOD.USER_PASS : SOCKS5_METHOD.NO_AUTH
  return methods.includes(want) ? want : SOCKS5_METHOD.NO_ACCEPTABLE
}

/** VER METHOD, the server's answer to a greeting. */
export function encodeSocks5MethodChoice(method: number): Uint8Array {
  return Uint8Array.of(SOCKS5_VERSION, method & 0xff)
}

export type Socks5UserPassResult = NeedMore | Invalid | Parsed<{ username: string; password: string }>

/** RFC 1929: VER(0x01) ULEN UNAME PLEN PASSWD, both strings UTF-8 (empty allowed). */
export function parseSocks5UserPass(buf: Uint8Array): Socks5UserPassResult {
  if (buf.length < 1) return NEED_MORE
  if (buf[0] !== 0x01) return invalid(`socks5: unsupported username/password auth version ${hexByte(buf[0]!)}`)
  if (buf.length < 2) return NEED_MORE
  const ulen = buf[1]!
  if (buf.length < 2 + ulen + 1) return NEED_MORE
  const plen = buf[2 + ulen]!
  const end = 3 + ulen + plen
  if (buf.length < end) return NEED_MORE
  const username = utf8Decode(buf, 2, 2 + ulen)
  if (username === null) return invalid(`socks5: username ${showBytes(buf, 2, 2 + ulen)} is not UTF-8`)
  const password = utf8Decode(buf, 3 + ulen, end)
  if (password === null) return invalid('socks5: password is not UTF-8')
  return { status: 'ok', consumed: end, username, password }
}

/** RFC 1929 status reply: VER(0x01) STATUS (0x00 success, 0x01 failure). */
export function encodeSocks5UserPassReply(success: boolean): Uint8Array {
  return Uint8Array.of(0x01, success ? 0x00 : 0x01)
}

export interface Socks5Request {
  /** 1 CONNECT, 2 BIND, 3 UDP ASSOCIATE (the caller replies 0x07 to the ones it does not do). */
  cmd: number
  /** Dotted quad, RFC 5952 IPv6 text (no brackets) or the domain as sent. */
  host: string
  /** As sent; may be 0 (usual for UDP ASSOCIATE), the caller decides. */
  port: number
  atyp: SocksAddressType
}

/** An unusable request, with the reply code to send before closing. */
export interface Socks5RequestInvalid extends Invalid {
  readonly reply: number
}

export type Socks5RequestResult = NeedMore | Socks5RequestInvalid | Parsed<Socks5Request>

/** VER CMD RSV ATYP DST.ADDR DST.PORT (RFC 1928 §4). */
export function parseSocks5Request(buf: Uint8Array): Socks5RequestResult {
  const bad = (error: string, reply: number = SOCKS5_REPLY.GENERAL_FAILURE): Socks5RequestInvalid => ({
    status: 'invalid',
    error,
    reply,
  })
  if (buf.length < 1) return NEED_MORE
  if (buf[0] !== SOCKS5_VERSION) return bad(`socks5: unsupported version ${hexByte(buf[0]!)} in request`)
  if (buf.length < 2) return NEED_MORE
  const cmd = buf[1]!
  if (cmd < SOCKS5_CMD.CONNECT || cmd > SOCKS5_CMD.UDP_ASSOCIATE) {
    return bad(`socks5: unsupported command ${hexByte(cmd)}`, SOCKS5_REPLY.COMMAND_NOT_SUPPORTED)
  }
  if (buf.length < 3) return NEED_MORE
  if (buf[2] !== 0x00) return bad(`socks5: reserved byte is ${hexByte(buf[2]!)}, not 0x00`)
  if (buf.length < 4) return NEED_MORE
  const addr = parseSocks5Address(buf, 3, 'request')
  if (addr.status !== 'ok') return addr.status === 'need-more' ? NEED_MORE : bad(addr.error, addr.reply)
  return { status: 'ok', consumed: addr.end, cmd, host: addr.host, port: addr.port, atyp: addr.atyp }
}

/**
 * VER REP RSV ATYP BND.ADDR BND.PORT. The address form follows `bindAddr`:
 * an IPv4 literal, an IPv6 literal (brackets allowed) or else a domain
 * name (1-255 bytes). Defaults to 0.0.0.0:0, fine for failure replies.
 */
export function encodeSocks5Reply(code: number, bindAddr = '0.0.0.0', bindPort = 0): Uint8Array {
  const addr = encodeSocks5Address(bindAddr, bindPort)
  const out = new Uint8Array(3 + addr.length)
  out[0] = SOCKS5_VERSION
  out[1] = code & 0xff
  out[2] = 0x00
  out.set(addr, 3)
  return out
}

/**
 * The reply code for a failed dial, from an errno name ("ECONNREFUSED") or
 * an access-log reason ("connect-error:ECONNREFUSED", "connect-timeout",
 * "dns-error", "dns-timeout"; a mesh node no relay reaches, docs/mesh.md:
 * "unknown-node", "relay-unreachable", "relay-refused-503").
 */
export function socks5ReplyForErrno(name: string): number {
  const n = name.slice(name.lastIndexOf(':') + 1).toUpperCase()
  switch (n) {
    case 'ECONNREFUSED':
      return SOCKS5_REPLY.CONNECTION_REFUSED
    case 'ENETUNREACH':
    case 'ENETDOWN':
      return SOCKS5_REPLY.NETWORK_UNREACHABLE
    case 'EHOSTUNREACH':
    case 'EHOSTDOWN':
    case 'ENOTFOUND':
    case 'EAI_NONAME':
    case 'EAI_AGAIN':
    case 'EAI_FAIL':
    case 'EAI_NODATA':
    case 'EAI_ADDRFAMILY':
    case 'DNS-ERROR':
    case 'DNS-TIMEOUT':
    case 'UNKNOWN-NODE':
    case 'RELAY-UNREACHABLE':
    case 'RELAY-REFUSED-503':
      return SOCKS5_REPLY.HOST_UNREACHABLE
    case 'ETIMEDOUT':
    case 'CONNECT-TIMEOUT':
      return SOCKS5_REPLY.TTL_EXPIRED
    default:
      return SOCKS5_REPLY.GENERAL_FAILURE
  }
}

// ------------------------------------------------------------ SOCKS5 client

/** What ugate offers an upstream: no auth, plus username/password when it has credentials. */
export function encodeSocks5Greeting(withAuth: boolean): Uint8Array {
  return withAuth
    ? Uint8Array.of(SOCKS5_VERSION, 2, SOCKS5_METHOD.NO_AUTH, SOCKS5_METHOD.USER_PASS)
    : Uint8Array.of(SOCKS5_VERSION, 1, SOCKS5_METHOD.NO_AUTH)
}

/** RFC 1929 request; each string at most 255 UTF-8 bytes (RangeError otherwise). */
export function encodeSocks5UserPass(username: string, password: string): Uint8Array {
  const u = utf8Encode(username)
  const p = utf8Encode(password)
  if (u.length > 255) throw new RangeError(`socks5: username is ${u.length} bytes, the limit is 255`)
  if (p.length > 255) throw new RangeError(`socks5: password is ${p.length} bytes, the limit is 255`)
  const out = new Uint8Array(3 + u.length + p.length)
  out[0] = 0x01
  out[1] = u.length
  out.set(u, 2)
  out[2 + u.length] = p.length
  out.set(p, 3 + u.length)
  return out
}

/** A request (CONNECT by default) for host (IPv4, IPv6 with or without brackets, or a 1-255 byte name) and port 0-65535. */
export function encodeSocks5Connect(host: string, port: number, cmd: number = SOCKS5_CMD.CONNECT): Uint8Array {
  const addr = encodeSocks5Address(host, port)
  const out = new Uint8Array(3 + addr.length)
  out[0] = SOCKS5_VERSION
  out[1] = cmd
  out[2] = 0x00
  out.set(addr, 3)
  return out
}

export type Socks5ServerChoiceResult = NeedMore | Invalid | Parsed<{ method: number }>

/** VER METHOD from an upstream; 0xFF (no acceptable method) is returned as a value. */
export function parseSocks5ServerChoice(buf: Uint8Array): Socks5ServerChoiceResult {
  if (buf.length < 1) return NEED_MORE
  if (buf[0] !== SOCKS5_VERSION) return invalid(`socks5: upstream answered with version ${hexByte(buf[0]!)}`)
  if (buf.length < 2) return NEED_MORE
  return { status: 'ok', consumed: 2, method: buf[1]! }
}

export type Socks5UserPassReplyResult = NeedMore | Invalid | Parsed<{ success: boolean }>

/** RFC 1929 status from an upstream: VER(0x01) STATUS; any non-zero status is a failure. */
export function parseSocks5UserPassReply(buf: Uint8Array): Socks5UserPassReplyResult {
  if (buf.length < 1) return NEED_MORE
  if (buf[0] !== 0x01) return invalid(`socks5: upstream auth reply has version ${hexByte(buf[0]!)}`)
  if (buf.length < 2) return NEED_MORE
  return { status: 'ok', consumed: 2, success: buf[1] === 0x00 }
}

export interface Socks5ServerReply {
  /** 0x00 success; the failure codes are values too (see socks5ReplyText). */
  reply: number
  host: string
  port: number
  atyp: SocksAddressType
}

export type Socks5ServerReplyResult = NeedMore | Invalid | Parsed<Socks5ServerReply>

/** VER REP RSV ATYP BND.ADDR BND.PORT from an upstream; its length depends on ATYP. */
export function parseSocks5ServerReply(buf: Uint8Array): Socks5ServerReplyResult {
  if (buf.length < 1) return NEED_MORE
  if (buf[0] !== SOCKS5_VERSION) return invalid(`socks5: upstream reply has version ${hexByte(buf[0]!)}`)
  if (buf.length < 3) return NEED_MORE
  if (buf[2] !== 0x00) return invalid(`socks5: upstream reply reserved byte is ${hexByte(buf[2]!)}, not 0x00`)
  if (buf.length < 4) return NEED_MORE
  const addr = parseSocks5Address(buf, 3, 'upstream reply')
  if (addr.status !== 'ok') return addr.status === 'need-more' ? NEED_MORE : invalid(addr.error)
  return { status: 'ok', consumed: addr.end, reply: buf[1]!, host: addr.host, port: addr.port, atyp: addr.atyp }
}

// --------------------------------------------------------- SOCKS5 addresses

type AddressResult =
  NeedMore | (Invalid & { reply: number }) | Ok<{ host: string; port: number; atyp: SocksAddressType; end: number }>

/** ATYP ADDR PORT at buf[off]; `end` is the offset just past the port. */
function parseSocks5Address(buf: Uint8Array, off: number, what: string): AddressResult {
  const atyp = buf[off]!
  let host: string
  let kind: SocksAddressType
  let portAt: number
  if (atyp === SOCKS5_ATYP.IPV4) {
    portAt = off + 5
    if (buf.length < portAt + 2) return NEED_MORE
    host = formatIPv4(buf, off + 1)
    kind = 'ipv4'
  } else if (atyp === SOCKS5_ATYP.IPV6) {
    portAt = off + 17
    if (buf.length < portAt + 2) return NEED_MORE
    host = formatIPv6(buf, off + 1)
    kind = 'ipv6'
  } else if (atyp === SOCKS5_ATYP.DOMAIN) {
    if (buf.length < off + 2) return NEED_MORE
    const len = buf[off + 1]!
    if (len === 0) {
      return { status: 'invalid', error: `socks5: empty domain name in ${what}`, reply: SOCKS5_REPLY.GENERAL_FAILURE }
    }
    portAt = off + 2 + len
    const nameError = domainError(buf, off + 2, Math.min(portAt, buf.length))
    if (nameError !== null) {
      return { status: 'invalid', error: `socks5: ${nameError} in ${what}`, reply: SOCKS5_REPLY.GENERAL_FAILURE }
    }
    if (buf.length < portAt + 2) return NEED_MORE
    host = String.fromCharCode(...buf.subarray(off + 2, portAt))
    kind = 'domain'
  } else {
    return {
      status: 'invalid',
      error: `socks5: unsupported address type ${hexByte(atyp)} in ${what}`,
      reply: SOCKS5_REPLY.ADDRESS_TYPE_NOT_SUPPORTED,
    }
  }
  return { status: 'ok', host, port: readU16(buf, portAt), atyp: kind, end: portAt + 2 }
}

/**
 * A domain sent for remote resolution must be printable ASCII without
 * spaces (IDNs arrive as punycode); checked on the bytes seen so far, so a
 * bad name is refused before it is complete.
 */
function domainError(buf: Uint8Array, start: number, end: number): string | null {
  for (let i = start; i < end; i++) {
    const b = buf[i]!
    if (b <= 0x20 || b >= 0x7f) return `bad byte ${hexByte(b)} in domain name ${showBytes(buf, start, end)}`
  }
  return null
}

function checkPort(port: number): void {
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new RangeError(`socks: port ${port} is not 0-65535`)
}

/** ATYP ADDR PORT for an IP literal or a domain name. */
function encodeSocks5Address(host: string, port: number): Uint8Array {
  checkPort(port)
  const bare = host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host
  let body: Uint8Array
  let atyp: number
  const v4 = ipv4ToBytes(bare)
  const v6 = v4 === null ? ipv6ToBytes(bare) : null
  if (v4 !== null) {
    atyp = SOCKS5_ATYP.IPV4
    body = v4
  } else if (v6 !== null) {
    atyp = SOCKS5_ATYP.IPV6
    body = v6
  } else {
    const name = utf8Encode(host)
    if (name.length < 1 || name.length > 255) {
      throw new RangeError(`socks5: domain name is ${name.length} bytes, it must be 1-255`)
    }
    atyp = SOCKS5_ATYP.DOMAIN
    body = new Uint8Array(1 + name.length)
    body[0] = name.length
    body.set(name, 1)
  }
  const out = new Uint8Array(1 + body.length + 2)
  out[0] = atyp
  out.set(body, 1)
  out[out.length - 2] = port >> 8
  out[out.length - 1] = port & 0xff
  return out
}

// ------------------------------------------------------------------- SOCKS4

export interface Socks4Request {
  /** 1 CONNECT, 2 BIND. */
  cmd: number
  /** Dotted quad (SOCKS4) or the host name (SOCKS4a). */
  host: string
  port: number
  atyp: 'ipv4' | 'domain'
  userid: string
  /** True when the request used the SOCKS4a form (DSTIP 0.0.0.x, x ≠ 0, then a host name). */
  socks4a: boolean
}

export type Socks4RequestResult = NeedMore | Invalid | Parsed<Socks4Request>

/**
 * VN(4) CD DSTPORT DSTIP USERID NUL, and for SOCKS4a (DSTIP 0.0.0.x with
 * x ≠ 0) HOSTNAME NUL after it. User id and host name are limited to 255
 * bytes; a host name must be printable ASCII and non-empty.
 */
export function parseSocks4Request(buf: Uint8Array): Socks4RequestResult {
  if (buf.length < 1) return NEED_MORE
  if (buf[0] !== SOCKS4_VERSION) return invalid(`socks4: unsupported version ${hexByte(buf[0]!)}`)
  if (buf.length < 2) return NEED_MORE
  const cmd = buf[1]!
  if (cmd !== SOCKS5_CMD.CONNECT && cmd !== SOCKS5_CMD.BIND)
    return invalid(`socks4: unsupported command ${hexByte(cmd)}`)
  if (buf.length < 8) return NEED_MORE
  const port = readU16(buf, 2)
  const socks4a = buf[4] === 0 && buf[5] === 0 && buf[6] === 0 && buf[7] !== 0
  const userEnd = findNul(buf, 8, 8 + SOCKS4_MAX_FIELD + 1)
  if (userEnd < 0) {
    if (buf.length > 8 + SOCKS4_MAX_FIELD) {
      return invalid(`socks4: user id ${showBytes(buf, 8, buf.length)} is longer than ${SOCKS4_MAX_FIELD} bytes`)
    }
    return NEED_MORE
  }
  const userid = utf8Decode(buf, 8, userEnd)
  if (userid === null) return invalid(`socks4: user id ${showBytes(buf, 8, userEnd)} is not UTF-8`)
  if (!socks4a) {
    return { status: 'ok', consumed: userEnd + 1, cmd, host: formatIPv4(buf, 4), port, atyp: 'ipv4', userid, socks4a }
  }
  const hostAt = userEnd + 1
  const hostEnd = findNul(buf, hostAt, hostAt + SOCKS4_MAX_FIELD + 1)
  const seenEnd = hostEnd < 0 ? Math.min(buf.length, hostAt + SOCKS4_MAX_FIELD + 1) : hostEnd
  const nameError = domainError(buf, hostAt, seenEnd)
  if (nameError !== null) return invalid(`socks4a: ${nameError}`)
  if (hostEnd < 0) {
    if (buf.length > hostAt + SOCKS4_MAX_FIELD) {
      return invalid(
        `socks4a: host name ${showBytes(buf, hostAt, buf.length)} is longer than ${SOCKS4_MAX_FIELD} bytes`,
      )
    }
    return NEED_MORE
  }
  if (hostEnd === hostAt) return invalid('socks4a: empty host name (DSTIP 0.0.0.x asks for one)')
  const host = String.fromCharCode(...buf.subarray(hostAt, hostEnd))
  return { status: 'ok', consumed: hostEnd + 1, cmd, host, port, atyp: 'domain', userid, socks4a }
}

/** VN(0) CD(0x5A granted / 0x5B rejected) DSTPORT DSTIP (8 bytes; port and address default to zero). */
export function encodeSocks4Reply(granted: boolean, port = 0, ip = '0.0.0.0'): Uint8Array {
  checkPort(port)
  const addr = ipv4ToBytes(ip)
  if (addr === null) throw new RangeError(`socks4: ${JSON.stringify(ip)} is not an IPv4 address`)
  const out = new Uint8Array(8)
  out[1] = granted ? SOCKS4_REPLY.GRANTED : SOCKS4_REPLY.REJECTED
  out[2] = port >> 8
  out[3] = port & 0xff
  out.set(addr, 4)
  return out
}

/** Index of the first NUL in buf[from, limit), or -1. */
function findNul(buf: Uint8Array, from: number, limit: number): number {
  const end = Math.min(limit, buf.length)
  for (let i = from; i < end; i++) if (buf[i] === 0) return i
  return -1
}
