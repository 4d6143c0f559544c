// HTTP/1.1 forward proxy (RFC 9110, RFC 9112): request and response heads,
// proxy targets (CONNECT authority-form, http:// absolute-form), message
// body framing, a scanner that finds the end of a chunked body without
// changing it, the request head ugate sends an origin, Basic proxy
// authentication, and ugate's own replies.
//
// Parsers answer need-more, invalid (`code` is the status to answer with)
// or ok (parse-result.ts); after a head come its body or the next message.
//
// Strictness, on purpose (request smuggling lives in lenient parsers):
// lines end with CRLF (a bare LF or bare CR is refused), no obs-fold, no
// whitespace between a field name and its colon, no control characters,
// one Host field, Content-Length values that agree, and no Content-Length
// next to Transfer-Encoding in a request.

import { isHostName } from './address.js'
import { isIPv4, isIPv6 } from './ip.js'
import { show } from './errors.js'
import { base64Decode, hexByte, latin1Decode, latin1Encode, showBytes, utf8Decode, utf8Encode } from './bytes.js'
import { NEED_MORE, type Invalid, type NeedMore, type Ok, type Parsed } from './parse-result.js'

// ------------------------------------------------------------------- types

/** A field as received: original name case, value without surrounding whitespace. */
export type Header = [name: string, value: string]

export interface RequestHead {
  method: string
  /** The request-target as sent. */
  target: string
  /** "HTTP/1.1", "HTTP/1.0" (any HTTP/1.x is accepted). */
  version: string
  /** In received order. Strings hold one char per byte (Latin-1), so they re-encode exactly. */
  headers: Header[]
}

export interface ResponseHead {
  version: string
  /** The status code (named so as not to clash with the result's `status`). */
  statusCode: number
  reason: string
  headers: Header[]
}

/** An unusable message, with the HTTP status ugate should answer with. */
export interface HttpInvalid extends Invalid {
  readonly code: number
}

export type RequestHeadResult = NeedMore | HttpInvalid | Parsed<RequestHead>
export type ResponseHeadResult = NeedMore | HttpInvalid | Parsed<ResponseHead>

export const DEFAULT_MAX_HEADER_BYTES = 16384
/** Most header fields accepted in one head. */
const MAX_HEADER_FIELDS = 128

const CR = 0x0d
const LF = 0x0a
const HT = 0x09
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/

function bad(error: string, code = 400): HttpInvalid {
  return { status: 'invalid', error, code }
}

// -------------------------------------------------------------- head scan

type Scan =
  | HttpInvalid
  | { status: 'partial'; start: number; firstLineEnd: number }
  | { status: 'found'; start: number; end: number }

/**
 * Find the empty line ending a head in buf. `start` skips empty lines
 * before a request line (RFC 9112 §2.2); `end` is just past the final CRLF;
 * `firstLineEnd` is the index of the first line's CR (-1 if not seen yet).
 * Refuses control characters, bare LF and bare CR as soon as they arrive.
 */
function scanHead(buf: Uint8Array, max: number, what: string, skipEmptyLines: boolean): Scan {
  const n = buf.length
  let start = 0
  if (skipEmptyLines) {
    while (start + 1 < n && start < max && buf[start] === CR && buf[start + 1] === LF) start += 2
  }
  const limit = Math.min(n, max)
  let lineStart = start
  let firstLineEnd = -1
  for (let p = start; p < limit; p++) {
    const b = buf[p]!
    if (b === LF) {
      if (p === start || buf[p - 1] !== CR) {
        return bad(
          `http: line ${showBytes(buf, lineStart, p)} in ${what} ends with a bare LF (lines must end with CRLF)`,
        )
      }
      if (p - 1 === lineStart) return { status: 'found', start, end: p + 1 }
      if (firstLineEnd < 0) firstLineEnd = p - 1
      lineStart = p + 1
    } else if (b === CR) {
      if (p + 1 < n && buf[p + 1] !== LF) {
        return bad(`http: bare CR in line ${showBytes(buf, lineStart, p + 2)} of ${what}`)
      }
    } else if ((b < 0x20 && b !== HT) || b === 0x7f) {
      return bad(`http: control character ${hexByte(b)} in line ${showBytes(buf, lineStart, p + 1)} of ${what}`)
    }
  }
  if (n > max) return bad(`http: ${what} exceeds ${max} bytes`, what === 'request head' ? 431 : 502)
  return { status: 'partial', start, firstLineEnd }
}

function parseFields(lines: string[], what: string): Header[] | HttpInvalid {
  if (lines.length > MAX_HEADER_FIELDS)
    return bad(`http: ${what} has ${lines.length} header fields, more than ${MAX_HEADER_FIELDS}`, 431)
  const headers: Header[] = []
  for (const line of lines) {
    if (line[0] === ' ' || line[0] === '\t') {
      return bad(`http: obsolete line folding: header line ${show(line)} starts with whitespace`)
    }
    const colon = line.indexOf(':')
    if (colon < 0) return bad(`http: header line ${show(line)} has no colon`)
    const name = line.slice(0, colon)
    if (name === '') return bad(`http: empty header name in line ${show(line)}`)
    if (/[ \t]$/.test(name)) return bad(`http: whitespace before colon in header ${show(name)}`)
    if (!TOKEN.test(name)) return bad(`http: bad header name ${show(name)}`)
    headers.push([name, trimOws(line.slice(colon + 1))])
  }
  return headers
}

function trimOws(s: string): string {
  let a = 0
  let b = s.length
  while (a < b && (s[a] === ' ' || s[a] === '\t')) a++
  while (b > a && (s[b - 1] === ' ' || s[b - 1] === '\t')) b--
  return s.slice(a, b)
}

// ------------------------------------------------------------ request head

/**
 * Parse a request head (request line, fields, empty line). Lines must end
 * with CRLF: a bare LF is refused, not tolerated. Over maxHeaderBytes
 * without the empty line → invalid (code 431).
 */
export function parseRequestHead(buf: Uint8Array, maxHeaderBytes = DEFAULT_MAX_HEADER_BYTES): RequestHeadResult {
  const scan = scanHead(buf, maxHeaderBytes, 'request head', true)
  if (scan.status === 'invalid') return scan
  if (scan.status === 'partial') {
    // Refuse a bad request line without waiting for the rest of the head.
    if (scan.firstLineEnd >= 0) {
      const line = parseRequestLine(latin1Decode(buf, scan.start, scan.firstLineEnd))
      if ('status' in line) return line
    }
    return NEED_MORE
  }
  const lines = latin1Decode(buf, scan.start, scan.end - 4).split('\r\n')
  const line = parseRequestLine(lines[0]!)
  if ('status' in line) return line
  const headers = parseFields(lines.slice(1), 'request head')
  if (!Array.isArray(headers)) return headers
  const head: RequestHead = { ...line, headers }
  const hosts = fieldValues(headers, 'host')
  if (hosts.length > 1) return bad(`http: ${hosts.length} Host header fields (${hosts.map((h) => show(h)).join(', ')})`)
  const framing = bodyFraming(head)
  if (framing.kind === 'invalid') return bad(framing.error)
  return { status: 'ok', consumed: scan.end, ...head }
}

function parseRequestLine(line: string): Omit<RequestHead, 'headers'> | HttpInvalid {
  if (line.includes('\t')) return bad(`http: bad request line ${show(line)} (fields are separated by one space)`)
  const parts = line.split(' ')
  if (parts.length === 2 && parts[0] !== '' && parts[1] !== '' && !parts[1]!.startsWith('HTTP/')) {
    return bad(`http: request line ${show(line)} has no HTTP version`)
  }
  if (parts.length !== 3 || parts.some((p) => p === '')) return bad(`http: bad request line ${show(line)}`)
  const [method, target, version] = parts as [string, string, string]
  if (!TOKEN.test(method)) return bad(`http: bad method ${show(method)}`)
  if (!/^[\x21-\x7e]+$/.test(target)) return bad(`http: bad request target ${show(target)}`)
  const v = checkVersion(version)
  if (v !== null) return v
  return { method, target, version }
}

function checkVersion(version: string): HttpInvalid | null {
  if (!/^HTTP\/[0-9]\.[0-9]$/.test(version)) return bad(`http: bad HTTP version ${show(version)}`)
  if (version[5] !== '1') return bad(`http: unsupported HTTP version ${show(version)}`, 505)
  return null
}

// ----------------------------------------------------------- response head

/** Parse a response head ("HTTP/1.1 200 OK", fields, empty line), e.g. from an upstream HTTP proxy or origin. */
export function parseResponseHead(buf: Uint8Array, maxHeaderBytes = DEFAULT_MAX_HEADER_BYTES): ResponseHeadResult {
  const scan = scanHead(buf, maxHeaderBytes, 'response head', false)
  if (scan.status === 'invalid') return { ...scan, code: 502 }
  if (scan.status === 'partial') return NEED_MORE
  const lines = latin1Decode(buf, scan.start, scan.end - 4).split('\r\n')
  const line = lines[0]!
  const m = /^(HTTP\/[0-9]\.[0-9]) ([0-9]{3})(?: (.*))?$/.exec(line)
  if (m === null) return bad(`http: bad status line ${show(line)}`, 502)
  const version = m[1]!
  if (version[5] !== '1') return bad(`http: unsupported HTTP version ${show(version)} from upstream`, 502)
  const statusCode = Number(m[2])
  if (statusCode < 100) return bad(`http: bad status code ${show(m[2])}`, 502)
  const headers = parseFields(lines.slice(1), 'response head')
  if (!Array.isArray(headers)) return { ...headers, code: 502 }
  return { status: 'ok', consumed: scan.end, version, statusCode, reason: m[3] ?? '', headers }
}

// ---------------------------------------------------------- field helpers

/** Values of every field named `name` (case-insensitive), in order. */
function fieldValues(headers: readonly Header[], name: string): string[] {
  const want = name.toLowerCase()
  const out: string[] = []
  for (const [n, v] of headers) if (n.toLowerCase() === want) out.push(v)
  return out
}

/** First value of the field `name`, or undefined. */
export function fieldValue(headers: readonly Header[], name: string): string | undefined {
  const want = name.toLowerCase()
  for (const [n, v] of headers) if (n.toLowerCase() === want) return v
  return undefined
}

/** Lower-case, non-empty elements of comma-separated list fields named `name`. */
export function listTokens(headers: readonly Header[], name: string): string[] {
  const out: string[] = []
  for (const v of fieldValues(headers, name)) {
    for (const part of v.split(',')) {
      const t = trimOws(part).toLowerCase()
      if (t !== '') out.push(t)
    }
  }
  return out
}

// ------------------------------------------------------------ body framing

export type BodyFraming =
  { kind: 'none' } | { kind: 'length'; length: number } | { kind: 'chunked' } | { kind: 'until-close' }

export type FramingResult = BodyFraming | { kind: 'invalid'; error: string }

/** Largest Content-Length accepted (2^53 - 1, exact in a JS number). */
const MAX_CONTENT_LENGTH = Number.MAX_SAFE_INTEGER

/** undefined (no field), the agreed length, or an error (bad or conflicting values). */
function contentLength(headers: readonly Header[]): number | undefined | { error: string } {
  let length: number | undefined
  let first = ''
  for (const v of fieldValues(headers, 'content-length')) {
    // RFC 9110 §8.6: "42, 42" (a list of equal values) may be taken as 42.
    for (const part of v.split(',')) {
      const text = trimOws(part)
      if (!/^[0-9]{1,16}$/.test(text) || Number(text) > MAX_CONTENT_LENGTH) {
        return { error: `http: bad Content-Length ${show(v)}` }
      }
      const n = Number(text)
      if (length === undefined) {
        length = n
        first = text
      } else if (n !== length) {
        return { error: `http: conflicting Content-Length values ${show(first)} and ${show(text)}` }
      }
    }
  }
  return length
}

/** The transfer codings, and whether chunked is the final one (and appears only there). */
function transferCodings(headers: readonly Header[]): { present: boolean; chunkedLast: boolean; text: string } {
  const values = fieldValues(headers, 'transfer-encoding')
  const codings = listTokens(headers, 'transfer-encoding').map((c) => trimOws(c.split(';')[0]!))
  const i = codings.indexOf('chunked')
  return { present: values.length > 0, chunkedLast: i >= 0 && i === codings.length - 1, text: values.join(', ') }
}

/**
 * How a request's body is delimited (RFC 9112 §6.3): chunked when
 * Transfer-Encoding ends with chunked, else Content-Length, else no body.
 * Invalid: Content-Length with Transfer-Encoding, a Transfer-Encoding that
 * does not end with chunked or in an HTTP/1.0 request, bad or conflicting
 * Content-Length values.
 */
export function bodyFraming(head: Pick<RequestHead, 'version' | 'headers'>): FramingResult {
  const te = transferCodings(head.headers)
  const cl = contentLength(head.headers)
  if (te.present) {
    if (cl !== undefined)
      return { kind: 'invalid', error: 'http: request has both Content-Length and Transfer-Encoding' }
    if (head.version === 'HTTP/1.0')
      return { kind: 'invalid', error: `http: Transfer-Encoding ${show(te.text)} in an HTTP/1.0 request` }
    if (!te.chunkedLast)
      return { kind: 'invalid', error: `http: Transfer-Encoding ${show(te.text)} does not end with chunked` }
    return { kind: 'chunked' }
  }
  if (cl === undefined) return { kind: 'none' }
  if (typeof cl === 'object') return { kind: 'invalid', error: cl.error }
  return { kind: 'length', length: cl }
}

/**
 * How a response's body is delimited (RFC 9112 §6.3): none for 1xx, 204,
 * 304, a reply to HEAD and a 2xx reply to CONNECT (a tunnel follows);
 * chunked when Transfer-Encoding ends with chunked (any other
 * Transfer-Encoding: until-close); else Content-Length; else until-close.
 * Bad or conflicting Content-Length values are invalid (answer 502).
 */
export function responseFraming(
  status: number,
  head: Pick<ResponseHead, 'headers'>,
  requestMethod: string,
): FramingResult {
  if ((status >= 100 && status < 200) || status === 204 || status === 304 || requestMethod === 'HEAD')
    return { kind: 'none' }
  if (requestMethod === 'CONNECT' && status >= 200 && status < 300) return { kind: 'none' }
  const te = transferCodings(head.headers)
  if (te.present) return te.chunkedLast ? { kind: 'chunked' } : { kind: 'until-close' }
  const cl = contentLength(head.headers)
  if (cl === undefined) return { kind: 'until-close' }
  if (typeof cl === 'object') return { kind: 'invalid', error: cl.error }
  return { kind: 'length', length: cl }
}

// ---------------------------------------------------------- chunked bodies

export type ChunkedFeedResult =
  /** All of the buffer is body; the body goes on. */
  | { readonly status: 'need-more'; readonly consumed: number }
  /** The body (last chunk and trailers included) ended after `consumed` bytes. */
  | { readonly status: 'done'; readonly consumed: number }
  | Invalid

export interface ChunkedScannerOptions {
  /** Longest chunk-size line (with extensions) or trailer line, in bytes. Default 4096. */
  maxLineBytes?: number
  /** Most bytes of trailer section. Default 16384. */
  maxTrailerBytes?: number
}

/** Scanner states. */
const St = {
  Size: 0, // hex digits of the chunk size
  SizeWs: 1, // whitespace after the size: then ';' or CR
  Ext: 2, // chunk extensions, up to CR
  SizeLf: 3, // LF ending the size line
  Data: 4, // chunk data
  DataCr: 5, // CR after chunk data
  DataLf: 6, // LF after chunk data
  TrailerStart: 7, // start of a trailer line, or of the final empty line
  Trailer: 8, // inside a trailer line
  TrailerLf: 9, // LF ending a trailer line
  EndLf: 10, // LF of the final empty line
  Done: 11,
  Failed: 12,
} as const

/** Largest chunk size accepted: 2^48 bytes (keeps the arithmetic exact). */
const MAX_CHUNK_SIZE = 2 ** 48

/**
 * Finds where a chunked body ends in a stream of buffers, without changing
 * a byte (the proxy forwards them as they are). Handles chunk extensions,
 * trailers and lines split across reads; refuses garbage or oversized size
 * lines, bare LF line ends, and chunk data not followed by CRLF.
 */
export class ChunkedScanner {
  private st: number = St.Size
  private size = 0
  private digits = 0
  private remaining = 0
  private lineBytes = 0
  private trailerBytes = 0
  private line = '' // start of the current size line, for error messages
  private error = ''
  private readonly maxLine: number
  private readonly maxTrailer: number

  constructor(opts: ChunkedScannerOptions = {}) {
    this.maxLine = opts.maxLineBytes ?? 4096
    this.maxTrailer = opts.maxTrailerBytes ?? 16384
  }

  /** Whether the end of the body has been found. */
  get done(): boolean {
    return this.st === St.Done
  }

  /** Scan the next bytes; after 'done', further calls consume nothing. */
  feed(buf: Uint8Array): ChunkedFeedResult {
    if (this.st === St.Done) return { status: 'done', consumed: 0 }
    if (this.st === St.Failed) return { status: 'invalid', error: this.error }
    let i = 0
    const n = buf.length
    while (i < n) {
      if (this.st === St.Data) {
        const take = Math.min(this.remaining, n - i)
        this.remaining -= take
        i += take
        if (this.remaining === 0) this.st = St.DataCr
        continue
      }
      const b = buf[i]!
      i++
      const err = this.step(b)
      if (err !== null) {
        this.st = St.Failed
        this.error = err
        return { status: 'invalid', error: err }
      }
      if (this.st === St.Done) return { status: 'done', consumed: i }
    }
    return { status: 'need-more', consumed: n }
  }

  /** One byte outside chunk data; an error message, or null. */
  private step(b: number): string | null {
    switch (this.st) {
      case St.Size: {
        const d = hexValue(b)
        if (d >= 0) {
          this.note(b)
          this.size = this.size * 16 + d
          this.digits++
          if (this.digits > 16) return `http: chunk size ${show(this.line)}... has more than 16 hex digits`
          if (this.size > MAX_CHUNK_SIZE) return `http: chunk size ${show(this.line)} is too large`
          return null
        }
        if (this.digits === 0) return `http: bad chunk size line ${show(this.line + String.fromCharCode(b))}`
        return this.afterSize(b)
      }
      case St.SizeWs:
        return this.afterSize(b)
      case St.Ext:
        if (b === CR) {
          this.st = St.SizeLf
          return null
        }
        if (b === LF) return `http: chunk size line ${show(this.line)} ends with a bare LF (lines must end with CRLF)`
        if ((b < 0x20 && b !== HT) || b === 0x7f) {
          return `http: control character ${hexByte(b)} in chunk extension of ${show(this.line)}`
        }
        if (++this.lineBytes > this.maxLine)
          return `http: chunk size line ${show(this.line)}... exceeds ${this.maxLine} bytes`
        this.note(b)
        return null
      case St.SizeLf:
        if (b !== LF) return `http: chunk size line ${show(this.line)} not ended by CRLF (got ${hexByte(b)} after CR)`
        if (this.size === 0) {
          this.st = St.TrailerStart
        } else {
          this.remaining = this.size
          this.st = St.Data
        }
        this.resetLine()
        return null
      case St.DataCr:
        if (b !== CR) return `http: chunk data not followed by CRLF (got ${hexByte(b)})`
        this.st = St.DataLf
        return null
      case St.DataLf:
        if (b !== LF) return `http: chunk data not followed by CRLF (got CR ${hexByte(b)})`
        this.st = St.Size
        return null
      case St.TrailerStart:
        if (b === CR) {
          this.st = St.EndLf
          return this.countTrailer()
        }
        if (b === 0x20 || b === HT) return 'http: obsolete line folding in chunked trailer section'
        this.st = St.Trailer
        return this.trailerByte(b)
      case St.Trailer:
        return this.trailerByte(b)
      case St.TrailerLf:
        if (b !== LF) return `http: trailer line not ended by CRLF (got CR ${hexByte(b)})`
        this.st = St.TrailerStart
        this.lineBytes = 0
        return this.countTrailer()
      case St.EndLf:
        if (b !== LF) return `http: chunked body not ended by CRLF (got CR ${hexByte(b)})`
        this.st = St.Done
        return null
      default:
        return null
    }
  }

  /** After the size digits: optional whitespace, then ';' extensions or CR. */
  private afterSize(b: number): string | null {
    if (++this.lineBytes > this.maxLine)
      return `http: chunk size line ${show(this.line)}... exceeds ${this.maxLine} bytes`
    if (b === CR) {
      this.st = St.SizeLf
      return null
    }
    if (b === LF) return `http: chunk size line ${show(this.line)} ends with a bare LF (lines must end with CRLF)`
    this.note(b)
    if (b === 0x20 || b === HT) {
      this.st = St.SizeWs
      return null
    }
    if (b === 0x3b) {
      this.st = St.Ext
      return null
    }
    return `http: bad chunk size line ${show(this.line)}`
  }

  private trailerByte(b: number): string | null {
    const err = this.countTrailer()
    if (err !== null) return err
    if (b === CR) {
      this.st = St.TrailerLf
      return null
    }
    if (b === LF) return 'http: trailer line ends with a bare LF (lines must end with CRLF)'
    if ((b < 0x20 && b !== HT) || b === 0x7f) return `http: control character ${hexByte(b)} in a trailer line`
    if (++this.lineBytes > this.maxLine) return `http: trailer line exceeds ${this.maxLine} bytes`
    return null
  }

  private countTrailer(): string | null {
    return ++this.trailerBytes > this.maxTrailer ? `http: trailer section exceeds ${this.maxTrailer} bytes` : null
  }

  private note(b: number): void {
    if (this.line.length < 40) this.line += String.fromCharCode(b)
  }

  private resetLine(): void {
    this.size = 0
    this.digits = 0
    this.lineBytes = 0
    this.line = ''
  }
}

function hexValue(b: number): number {
  if (b >= 0x30 && b <= 0x39) return b - 0x30
  if (b >= 0x61 && b <= 0x66) return b - 0x61 + 10
  if (b >= 0x41 && b <= 0x46) return b - 0x41 + 10
  return -1
}

// ----------------------------------------------------------- proxy targets

export type ProxyTarget =
  /** CONNECT host:port: open a tunnel. IPv6 hosts without brackets. */
  | { kind: 'connect'; host: string; port: number }
  /** GET http://host:port/path?q: forward with `path` (origin-form, at least "/"). */
  | { kind: 'absolute'; host: string; port: number; path: string }

export type ProxyTargetResult = Ok<ProxyTarget> | HttpInvalid

/**
 * Where a proxy request goes. CONNECT takes authority-form host:port
 * (IPv6 in brackets; a missing port means 443, as the first ugate did);
 * other methods take an absolute http:// URI (port 80 by default).
 * https:// URIs (a client should use CONNECT), other schemes, origin-form
 * ("/path") and asterisk-form are invalid (400).
 */
export function parseProxyTarget(head: Pick<RequestHead, 'method' | 'target'>): ProxyTargetResult {
  const target = head.target
  if (head.method === 'CONNECT') {
    if (target.includes('/') || target.includes('@')) {
      return bad(`http: CONNECT target ${show(target)} is not host:port`)
    }
    const a = parseAuthority(target, 443, false)
    if (typeof a === 'string') return bad(`http: CONNECT target ${show(target)}: ${a}`)
    return { status: 'ok', kind: 'connect', host: a.host, port: a.port }
  }
  const scheme = /^([A-Za-z][A-Za-z0-9+.-]*):\/\//.exec(target)
  if (scheme === null) {
    if (target.startsWith('/') || target === '*') {
      return bad(`http: request target ${show(target)} is not an absolute http:// URI (this is a proxy)`)
    }
    return bad(`http: request target ${show(target)} is not an absolute http:// URI`)
  }
  const name = scheme[1]!.toLowerCase()
  if (name === 'https') return bad(`http: ${show(target)} is an https URI: use CONNECT for https`)
  if (name !== 'http') return bad(`http: unsupported scheme ${show(scheme[1])} in ${show(target)}`)
  const rest = target.slice(scheme[0].length)
  let cut = rest.length
  for (const c of ['/', '?', '#']) {
    const i = rest.indexOf(c)
    if (i >= 0 && i < cut) cut = i
  }
  const authority = rest.slice(0, cut)
  if (authority.includes('@')) return bad(`http: user info in request target ${show(target)} is not allowed`)
  const a = parseAuthority(authority, 80, true)
  if (typeof a === 'string') return bad(`http: request target ${show(target)}: ${a}`)
  let path = rest.slice(cut)
  const hash = path.indexOf('#')
  if (hash >= 0) path = path.slice(0, hash)
  if (!path.startsWith('/')) path = '/' + path
  return { status: 'ok', kind: 'absolute', host: a.host, port: a.port, path }
}

/** host[:port] or [v6][:port]; an error string otherwise. */
function parseAuthority(
  text: string,
  defaultPort: number,
  emptyPortOk: boolean,
): { host: string; port: number } | string {
  let host: string
  let portText: string | undefined
  if (text.startsWith('[')) {
    const close = text.indexOf(']')
    if (close < 0) return 'missing "]" after the IPv6 address'
    host = text.slice(1, close)
    if (!isIPv6(host)) return `${show(host)} is not an IPv6 address`
    const after = text.slice(close + 1)
    if (after !== '') {
      if (!after.startsWith(':')) return `unexpected ${show(after)} after "]"`
      portText = after.slice(1)
    }
  } else {
    const colon = text.indexOf(':')
    if (colon >= 0 && text.indexOf(':', colon + 1) >= 0) return 'an IPv6 address needs brackets'
    host = colon >= 0 ? text.slice(0, colon) : text
    if (colon >= 0) portText = text.slice(colon + 1)
    if (host === '') return 'missing host'
    const name = host.endsWith('.') ? host.slice(0, -1) : host
    if (!isIPv4(host) && !isHostName(name)) return `host ${show(host)} is not a valid host name or IPv4 address`
  }
  if (portText === undefined || (portText === '' && emptyPortOk)) return { host, port: defaultPort }
  if (!/^[0-9]{1,5}$/.test(portText) || Number(portText) < 1 || Number(portText) > 65535) {
    return `port ${show(portText)} is not a number 1-65535`
  }
  return { host, port: Number(portText) }
}

// ---------------------------------------------------- forwarding a request

/** Always hop-by-hop (RFC 9110 §7.6.1), plus the proxy's own fields. */
const HOP_BY_HOP = new Set([
  'connection',
  'proxy-connection',
  'keep-alive',
  'proxy-authorization',
  'proxy-authenticate',
  'te',
  'trailer',
  'upgrade',
])

/** Never dropped because Connection names them: the body framing and Host must reach the origin as checked. */
const KEEP_ALWAYS = new Set(['content-length', 'transfer-encoding', 'host'])

export interface RewriteOptions {
  /** Append "Connection: close" (ugate relays the rest of the connection as bytes). */
  close?: boolean
}

/**
 * The request head to send the origin: origin-form request line, the
 * hop-by-hop fields removed (Connection, Proxy-Connection, Keep-Alive,
 * Proxy-Authorization, Proxy-Authenticate, TE, Trailer, Upgrade and every
 * field Connection names, except Content-Length, Transfer-Encoding and
 * Host), Host set from the target (RFC 9112 §3.2.2: a proxy replaces the
 * Host it received with the URI's authority, in place; added first when
 * missing), every other field in its original order and case.
 */
export function rewriteForOrigin(
  head: RequestHead,
  target: { host: string; port: number; path: string },
  opts: RewriteOptions = {},
): Uint8Array {
  const named = new Set(listTokens(head.headers, 'connection'))
  const host = authorityText(target.host, target.port, 80)
  const lines = [`${head.method} ${target.path} ${head.version}`]
  let hostDone = false
  for (const [name, value] of head.headers) {
    const lower = name.toLowerCase()
    if (lower === 'host') {
      if (!hostDone) lines.push(`${name}: ${host}`)
      hostDone = true
      continue
    }
    if (HOP_BY_HOP.has(lower)) continue
    if (named.has(lower) && !KEEP_ALWAYS.has(lower)) continue
    lines.push(`${name}: ${value}`)
  }
  if (!hostDone) lines.splice(1, 0, `Host: ${host}`)
  if (opts.close === true) lines.push('Connection: close')
  return latin1Encode(lines.join('\r\n') + '\r\n\r\n')
}

/** "example.com", "example.com:8080", "[::1]:8080" (the port left out when it is the default). */
function authorityText(host: string, port: number, defaultPort: number): string {
  const h = host.includes(':') ? `[${host}]` : host
  return port === defaultPort ? h : `${h}:${port}`
}

/**
 * Whether the client wants the connection kept open after this message:
 * "close" in Connection or Proxy-Connection says no; otherwise yes for
 * HTTP/1.1, and for HTTP/1.0 only with "keep-alive".
 */
export function keepAlive(head: Pick<RequestHead, 'version' | 'headers'>): boolean {
  const tokens = [...listTokens(head.headers, 'connection'), ...listTokens(head.headers, 'proxy-connection')]
  if (tokens.includes('close')) return false
  if (head.version === 'HTTP/1.0') return tokens.includes('keep-alive')
  return true
}

// ------------------------------------------------------ proxy authentication

/** Longest Proxy-Authorization value looked at. */
const MAX_AUTH_CHARS = 4096

/**
 * "Basic dXNlcjpwYXNz" → {user, pass} (RFC 7617): scheme case-insensitive,
 * strict padded base64, UTF-8 credentials split at the first colon. null
 * for anything else.
 */
export function parseBasicAuth(headerValue: string): { user: string; pass: string } | null {
  if (headerValue.length > MAX_AUTH_CHARS) return null
  const m = /^[Bb][Aa][Ss][Ii][Cc] +([A-Za-z0-9+/]+={0,2})$/.exec(trimOws(headerValue))
  if (m === null) return null
  const raw = base64Decode(m[1]!)
  if (raw === null) return null
  const text = utf8Decode(raw)
  if (text === null) return null
  const colon = text.indexOf(':')
  if (colon < 0) return null
  return { user: text.slice(0, colon), pass: text.slice(colon + 1) }
}

/**
 * The user a request authenticates as with its Proxy-Authorization field
 * (exactly one, Basic, matching `users`: name → password), or null.
 */
export function checkProxyAuth(head: Pick<RequestHead, 'headers'>, users: ReadonlyMap<string, string>): string | null {
  const values = fieldValues(head.headers, 'proxy-authorization')
  if (values.length !== 1) return null
  const cred = parseBasicAuth(values[0]!)
  if (cred === null) return null
  const want = users.get(cred.user)
  if (want === undefined) return null
  return sameString(cred.pass, want) ? cred.user : null
}

/** Compare without returning at the first difference. */
export function sameString(a: string, b: string): boolean {
  let diff = a.length ^ b.length
  const n = Math.max(a.length, b.length)
  for (let i = 0; i < n; i++) diff |= (a.charCodeAt(i) | 0) ^ (b.charCodeAt(i) | 0)
  return diff === 0
}

// ----------------------------------------------------------- ugate replies

/** Reason phrases for the statuses ugate sends. */
const HTTP_REASON: Readonly<Record<number, string>> = {
  200: 'OK',
  400: 'Bad Request',
  403: 'Forbidden',
  405: 'Method Not Allowed',
  407: 'Proxy Authentication Required',
  408: 'Request Timeout',
  431: 'Request Header Fields Too Large',
  500: 'Internal Server Error',
  501: 'Not Implemented',
  502: 'Bad Gateway',
  503: 'Service Unavailable',
  504: 'Gateway Timeout',
  505: 'HTTP Version Not Supported',
}

/** What ugate answers a successful CONNECT with; the tunnel starts after it. */
export const CONNECT_ESTABLISHED: Uint8Array = latin1Encode('HTTP/1.1 200 Connection established\r\n\r\n')

/**
 * One of ugate's own replies: status line, Content-Type: text/plain,
 * Content-Length, Connection: close, the extra fields (a 407 gets
 * Proxy-Authenticate: Basic realm="ugate" unless one is given), then the
 * body (a string is sent as UTF-8). Field names and values with CR or LF
 * are a caller bug (RangeError).
 */
export function encodeResponse(
  status: number,
  reason: string = HTTP_REASON[status] ?? '',
  body: string | Uint8Array = '',
  extraHeaders: ReadonlyArray<readonly [string, string]> = [],
): Uint8Array {
  if (!Number.isInteger(status) || status < 100 || status > 999) throw new RangeError(`http: bad status ${status}`)
  const bytes = typeof body === 'string' ? utf8Encode(body) : body
  const fields: Array<readonly [string, string]> = [
    ['Content-Type', 'text/plain'],
    ['Content-Length', String(bytes.length)],
    ['Connection', 'close'],
    ...extraHeaders,
  ]
  if (status === 407 && fieldValue(extraHeaders as Header[], 'proxy-authenticate') === undefined) {
    fields.push(['Proxy-Authenticate', 'Basic realm="ugate"'])
  }
  let text = `HTTP/1.1 ${status} ${reason}\r\n`
  for (const [name, value] of fields) {
    if (/[\r\n]/.test(name + value) || !TOKEN.test(name)) throw new RangeError(`http: bad reply field ${show(name)}`)
    text += `${name}: ${value}\r\n`
  }
  if (/[\r\n]/.test(reason)) throw new RangeError(`http: bad reason phrase ${show(reason)}`)
  const head = utf8Encode(text + '\r\n')
  const out = new Uint8Array(head.length + bytes.length)
  out.set(head, 0)
  out.set(bytes, head.length)
  return out
}

/**
 * The status to answer a failed dial with, from an errno name or an access
 * reason ("connect-timeout", "dns-timeout", "ETIMEDOUT" → 504; else 502).
 */
export function httpStatusForErrno(name: string): number {
  const n = name.slice(name.lastIndexOf(':') + 1).toUpperCase()
  return n === 'ETIMEDOUT' || n === 'CONNECT-TIMEOUT' || n === 'DNS-TIMEOUT' ? 504 : 502
}
