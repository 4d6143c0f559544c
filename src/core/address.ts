// HOST:PORT endpoints as written in configs and on the command line.
// Listen addresses must be IP literals (the native listen() takes a numeric
// IP); targets may also be host names, resolved when a connection is dialed.

import { hexByte } from './bytes.js'
import { AddressError, show } from './errors.js'
import { ipKey, isIPv4, isIPv6 } from './ip.js'

export type HostKind = 'ipv4' | 'ipv6' | 'name'

/** A parsed endpoint; IPv6 hosts are kept without brackets. */
export interface Endpoint {
  host: string
  port: number
  kind: HostKind
}

/** 'listen' allows port 0 ("any free port") but no host names. */
export type EndpointRole = 'listen' | 'target'

/**
 * The one host-name check (callers drop a trailing root dot first): why `s`
 * is not dot-separated RFC 1123 labels, or null. Labels are 1-63 letters,
 * digits, '-' and '_' (seen in real internal names), the name at most 253
 * characters. A label may start or end with '-' only when `lenient` (what
 * the sniffers accept from the wire).
 */
export function hostNameProblem(s: string, lenient = false): string | null {
  if (s.length === 0) return 'empty name'
  if (s.length > 253) return `name longer than 253 (${s.length})`
  let label = 0
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i)
    if (c === 0x2e) {
      if (label === 0) return `empty label at ${i}`
      if (!lenient && s.charCodeAt(i - 1) === 0x2d) return `label ending with '-' at ${i - 1}`
      label = 0
      continue
    }
    const ok =
      (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) || c === 0x2d || c === 0x5f
    // Above Latin-1 (a config's or a frame's name), the code unit: its low byte would name another.
    if (!ok) return `bad character ${c > 0xff ? `U+${c.toString(16).padStart(4, '0')}` : hexByte(c)} at ${i}`
    if (!lenient && label === 0 && c === 0x2d) return `label starting with '-' at ${i}`
    if (++label > 63) return 'label longer than 63'
  }
  if (label === 0) return `empty label at ${s.length}`
  if (!lenient && s.charCodeAt(s.length - 1) === 0x2d) return `label ending with '-' at ${s.length - 1}`
  return null
}

/**
 * A host name as configs write it (hostNameProblem, no trailing dot) whose
 * last label is not all digits (that would be a mistyped IPv4 address).
 */
export function isHostName(s: string): boolean {
  return hostNameProblem(s) === null && !/(^|\.)[0-9]+$/.test(s)
}

/** Why a text is not of the form HOST:PORT or [IPV6]:PORT (before HOST and PORT are checked). */
export type HostPortProblem =
  | { why: 'no-bracket-close' }
  | { why: 'no-port-after-bracket' }
  | { why: 'not-ipv6'; host: string }
  | { why: 'no-port' }
  | { why: 'unbracketed-ipv6' }
  | { why: 'no-host' }

/**
 * Split "HOST:PORT" or "[IPV6]:PORT" at the port's colon; a bracketed host
 * must be an IPv6 address. The one splitter of endpoints, forward actions and
 * proxy targets; each caller checks HOST and PORT its own way and words the
 * problem for its context.
 */
export function splitHostPort(text: string): { host: string; portText: string } | HostPortProblem {
  if (text.startsWith('[')) {
    const close = text.indexOf(']')
    if (close < 0) return { why: 'no-bracket-close' }
    const host = text.slice(1, close)
    if (text[close + 1] !== ':') return { why: 'no-port-after-bracket' }
    if (!isIPv6(host)) return { why: 'not-ipv6', host }
    return { host, portText: text.slice(close + 2) }
  }
  const colon = text.lastIndexOf(':')
  if (colon < 0) return { why: 'no-port' }
  const host = text.slice(0, colon)
  if (host.includes(':')) return { why: 'unbracketed-ipv6' }
  if (host === '') return { why: 'no-host' }
  return { host, portText: text.slice(colon + 1) }
}

/** Parse "HOST:PORT" or "[IPV6]:PORT"; throws AddressError naming the problem. */
export function parseEndpoint(text: string, role: EndpointRole): Endpoint {
  const bad = (why: string) => new AddressError(`${show(text)} is not HOST:PORT (${why})`)
  const split = splitHostPort(text)
  if ('why' in split) {
    switch (split.why) {
      case 'no-bracket-close':
        throw bad('missing "]" after the IPv6 address')
      case 'no-port-after-bracket':
        throw bad('missing ":PORT" after "]"')
      case 'not-ipv6':
        throw bad(`${show(split.host)} is not an IPv6 address`)
      case 'no-port':
        throw bad('missing ":PORT"')
      case 'unbracketed-ipv6':
        throw bad('an IPv6 address needs brackets, e.g. "[::1]:80"')
      case 'no-host':
        throw bad('missing HOST before ":"')
    }
  }
  const { host, portText } = split
  const minPort = role === 'listen' ? 0 : 1
  const port = parsePort(portText, minPort)
  if (port === null) throw bad(`port ${show(portText)} is not a number ${minPort}-65535`)
  const kind = hostKind(host)
  if (kind === null) {
    const what = /^[0-9.]+$/.test(host) ? 'a valid IPv4 address' : 'a valid host name'
    throw bad(`host ${show(host)} is not ${what}`)
  }
  if (role === 'listen' && kind === 'name') {
    throw new AddressError(
      `${show(text)} is not a listen address (host ${show(host)} must be an IP address, e.g. 0.0.0.0 or [::])`,
    )
  }
  return { host, port, kind }
}

/** "1.2.3.4:80", "[::1]:80", "example.com:80". */
export function formatHostPort(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`
}

export function formatEndpoint(ep: Endpoint): string {
  return formatHostPort(ep.host, ep.port)
}

/**
 * Whether two listen endpoints would fight over the same socket: same port
 * and same address, or a wildcard (0.0.0.0 / ::) of the same family. Port 0
 * never clashes, each such listener gets its own free port. IPv6 listeners
 * are V6ONLY, so :: and 0.0.0.0 do not clash either.
 */
export function listenAddressesClash(a: Endpoint, b: Endpoint): boolean {
  if (a.port === 0 || a.port !== b.port) return false
  // "::" is dual-stack: it holds the port for IPv4 too.
  if (a.kind !== b.kind) return ipKey(a.host) === wildcardKey('ipv6') || ipKey(b.host) === wildcardKey('ipv6')
  const ka = ipKey(a.host)
  const kb = ipKey(b.host)
  return ka === kb || ka === wildcardKey(a.kind) || kb === wildcardKey(b.kind)
}

function wildcardKey(kind: HostKind): string {
  return kind === 'ipv4' ? '0.0.0.0' : '::'
}

function hostKind(host: string): HostKind | null {
  if (isIPv4(host)) return 'ipv4'
  if (isIPv6(host)) return 'ipv6'
  return isHostName(host) ? 'name' : null
}

function parsePort(text: string, min: number): number | null {
  if (!/^[0-9]{1,5}$/.test(text)) return null
  const n = Number(text)
  return n >= min && n <= 65535 ? n : null
}
