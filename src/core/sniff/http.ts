// HTTP sniffer: the HTTP/2 client preface, or an HTTP/1.0/1.1 request head
// (request line and header fields) and the host it is for.
//
// Request line (RFC 9112 3): method token, SP, request-target, SP,
// "HTTP/1.0" or "HTTP/1.1", CRLF (a bare LF is accepted as a line end, as RFC
// 9112 2.2 allows). Until the request line has matched up to "HTTP/" the
// bytes may be any protocol, so a mismatch there is 'not-mine'; after it,
// errors are 'invalid'.
//
// Host: from an absolute-form target ("http://host:port/...") or a CONNECT
// authority-form target ("host:port") when present (RFC 9112 3.2.2),
// otherwise from the Host header (name matched case-insensitively; more than
// one is invalid). Port stripped, IPv6 brackets removed, lower-cased. No Host
// at all (HTTP/1.0, or a broken 1.1 client) is 'ok' with no host: the caller
// routes by address and the origin server answers the client.
// Header fields: token name, ':' with no whitespace before it, no obsolete
// line folding, no control characters in values (RFC 9112 5, RFC 9110 5.5).

import { hexByte, showText } from '../bytes.js'
import { bytesEqualLower, byteString, checkDnsName, isTchar } from './text.js'
import { isIPv6 } from '../ip.js'
import { NEED_MORE, notMine, type Ok } from '../parse-result.js'
import type { Sniffed, SniffResult } from './types.js'

export const H2_PREFACE = 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'

/** Longest method token looked at before deciding the bytes are not HTTP. */
const MAX_METHOD = 32

const SP = 0x20
const HT = 0x09
const CR = 0x0d
const LF = 0x0a
const COLON = 0x3a

function invalid(error: string): SniffResult {
  return { status: 'invalid', proto: 'http', error }
}

/** Compare buf's first bytes with lit; 'all' when buf holds all of lit. */
function matchPrefix(buf: Uint8Array, start: number, lit: string): 'all' | 'prefix' | 'no' {
  const n = Math.min(buf.length - start, lit.length)
  for (let i = 0; i < n; i++) if (buf[start + i] !== lit.charCodeAt(i)) return 'no'
  return n === lit.length ? 'all' : 'prefix'
}

/**
 * Sniff an HTTP request at the start of buf (all bytes read so far).
 * maxHeader bounds the request head (request line + headers + blank line):
 * a head that has not ended within maxHeader bytes is 'invalid'.
 */
export function sniffHttp(buf: Uint8Array, maxHeader: number): SniffResult {
  if (buf.length === 0) return NEED_MORE

  const pre = matchPrefix(buf, 0, H2_PREFACE)
  if (pre === 'all') return { status: 'ok', proto: 'h2' }
  if (pre === 'prefix') return NEED_MORE

  const limit = Math.min(buf.length, maxHeader)
  const tooLong = (): SniffResult =>
    buf.length >= maxHeader
      ? invalid(`http: request head exceeds ${maxHeader} bytes`)
      : { status: 'need-more', proto: 'http' }

  // Method.
  let i = 0
  while (i < limit && i <= MAX_METHOD && isTchar(buf[i]!)) i++
  if (i === 0) return notMine(`http: first byte ${hexByte(buf[0]!)} is not a method character`)
  if (i > MAX_METHOD) return notMine(`http: no method token within ${MAX_METHOD} bytes`)
  if (i === limit)
    return buf.length >= maxHeader ? notMine(`http: no request line within ${maxHeader} bytes`) : NEED_MORE
  if (buf[i] !== SP) return notMine(`http: byte ${hexByte(buf[i]!)} after the method is not a space`)
  const methodEnd = i

  // Request target: visible ASCII and obs-text, up to the next space.
  const targetStart = ++i
  while (i < limit && buf[i]! > SP && buf[i] !== 0x7f) i++
  if (i === limit)
    return buf.length >= maxHeader ? notMine(`http: no request line within ${maxHeader} bytes`) : NEED_MORE
  if (i === targetStart) return notMine('http: empty request target')
  if (buf[i] !== SP) return notMine(`http: byte ${hexByte(buf[i]!)} after the request target is not a space`)
  const targetEnd = i++

  // Version.
  const v = matchPrefix(buf.subarray(0, limit), i, 'HTTP/')
  if (v === 'no') return notMine('http: request line does not end in an HTTP version')
  if (v === 'prefix') return tooLong()
  i += 5
  let lineEnd = i
  while (lineEnd < limit && buf[lineEnd] !== LF) lineEnd++
  if (lineEnd === limit) return tooLong()
  const verEnd = lineEnd > i && buf[lineEnd - 1] === CR ? lineEnd - 1 : lineEnd
  if (!(verEnd - i === 3 && buf[i] === 0x31 && buf[i + 1] === 0x2e && (buf[i + 2] === 0x30 || buf[i + 2] === 0x31))) {
    return invalid(`http: unsupported version ${showText(byteString(buf, i - 5, Math.min(verEnd, i + 16)))}`)
  }
  i = lineEnd + 1

  // Header fields, up to the empty line.
  let hostHeader: string | undefined
  let sawHost = false
  for (;;) {
    let lf = i
    while (lf < limit && buf[lf] !== LF) lf++
    if (lf === limit) return tooLong()
    const end = lf > i && buf[lf - 1] === CR ? lf - 1 : lf
    if (end === i) break // the empty line: end of the head
    if (buf[i] === SP || buf[i] === HT) return invalid('http: obsolete line folding in the header')
    let n = i
    while (n < end && isTchar(buf[n]!)) n++
    if (n === i || n === end || buf[n] !== COLON) {
      return invalid(`http: bad header field name in ${showText(byteString(buf, i, Math.min(end, i + 64)))}`)
    }
    let vs = n + 1
    let ve = end
    while (vs < ve && (buf[vs] === SP || buf[vs] === HT)) vs++
    while (ve > vs && (buf[ve - 1] === SP || buf[ve - 1] === HT)) ve--
    for (let k = vs; k < ve; k++) {
      const c = buf[k]!
      if ((c < SP && c !== HT) || c === 0x7f) {
        return invalid(`http: bad character ${hexByte(c)} in header ${showText(byteString(buf, i, n))}`)
      }
    }
    if (bytesEqualLower(buf, i, n, 'host')) {
      if (sawHost) return invalid('http: more than one Host header')
      sawHost = true
      const h = parseHostPort(byteString(buf, vs, ve), false)
      if ('why' in h) return invalid(`http: bad Host header: ${h.why}`)
      hostHeader = h.host
    }
    i = lf + 1
  }

  // Host from the request target, when it carries one.
  let host = hostHeader
  if (bytesEqualLower(buf, 0, methodEnd, 'connect')) {
    const h = parseHostPort(byteString(buf, targetStart, targetEnd), true)
    if ('why' in h) return invalid(`http: bad CONNECT target: ${h.why}`)
    host = h.host
  } else {
    const abs = absoluteAuthority(buf, targetStart, targetEnd)
    if (abs !== null) {
      const h = parseHostPort(abs, false)
      if ('why' in h) return invalid(`http: bad absolute-form target: ${h.why}`)
      if (h.host === undefined) return invalid('http: absolute-form target has no host')
      host = h.host
    }
  }
  const out: Ok<Sniffed> = { status: 'ok', proto: 'http' }
  if (host !== undefined) out.host = host
  return out
}

/** The authority of an "http://" or "https://" target, or null for other forms. */
function absoluteAuthority(buf: Uint8Array, start: number, end: number): string | null {
  let p: number
  if (end - start >= 7 && bytesEqualLower(buf, start, start + 7, 'http://')) p = start + 7
  else if (end - start >= 8 && bytesEqualLower(buf, start, start + 8, 'https://')) p = start + 8
  else return null
  let q = p
  while (q < end && buf[q] !== 0x2f && buf[q] !== 0x3f && buf[q] !== 0x23) q++ // / ? #
  return byteString(buf, p, q)
}

/**
 * uri-host [":" port] (RFC 3986 3.2.2, 3.2.3): returns the host, lower-case,
 * IPv6 without brackets; undefined for an empty value. needPort: CONNECT.
 */
export function parseHostPort(s: string, needPort: boolean): { host: string | undefined } | { why: string } {
  if (s.length === 0) return needPort ? { why: 'empty' } : { host: undefined }
  if (s.indexOf('@') >= 0) return { why: `${showText(s)} has user info` }
  let host: string
  let rest: string
  if (s[0] === '[') {
    const close = s.indexOf(']')
    if (close < 0) return { why: `${showText(s)} has no closing ]` }
    const v6 = s.slice(1, close)
    if (!isIPv6(v6)) return { why: `${showText(s)} is not an IPv6 address in brackets` }
    host = v6.toLowerCase()
    rest = s.slice(close + 1)
    if (rest.length > 0 && rest[0] !== ':') return { why: `${showText(s)} has bytes after ]` }
  } else {
    const colon = s.indexOf(':')
    const name = colon < 0 ? s : s.slice(0, colon)
    rest = colon < 0 ? '' : s.slice(colon)
    if (name.length === 0) return { why: `${showText(s)} has no host` }
    const c = checkDnsName(name)
    if ('why' in c) return { why: `${showText(s)}: ${c.why}` }
    host = c.name
  }
  if (rest.length > 0) {
    const port = rest.slice(1)
    let ok = port.length <= 5
    for (let k = 0; ok && k < port.length; k++) ok = port.charCodeAt(k) >= 0x30 && port.charCodeAt(k) <= 0x39
    if (!ok || (port.length > 0 && Number(port) > 65535)) return { why: `${showText(s)} has a bad port` }
    if (needPort && port.length === 0) return { why: `${showText(s)} has no port` }
  } else if (needPort) {
    return { why: `${showText(s)} has no port` }
  }
  return { host }
}
