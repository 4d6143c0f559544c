// Protocol sniffing of a client's first bytes: TLS (SNI, ALPN), the HTTP/2
// preface, HTTP/1 (Host), or 'unknown' (the caller then routes by address).

import { sniffHttp } from './http.js'
import { sniffTls, TLS_MAX_HELLO } from './tls.js'
import { NEED_MORE, type NotMine } from '../parse-result.js'
import type { SniffResult } from './types.js'

export type { Sniffed, SniffProto, SniffResult } from './types.js'

/** What sniff() answers: a guess among protocols is never not-mine. */
export type SniffOutcome = Exclude<SniffResult, NotMine>
export { H2_PREFACE, sniffHttp } from './http.js'
export { sniffTls, TLS_MAX_HELLO } from './tls.js'
export type { TlsSniffOptions } from './tls.js'

export interface SniffOptions {
  /**
   * Most bytes to wait for: a first flight still incomplete when the buffer
   * holds this many bytes is 'invalid'. Also the HTTP request-head limit.
   * (A ClientHello split into tiny records needs 5 bytes of record header per
   * record on top of the hello itself.)
   */
  maxBytes: number
  /** Largest ClientHello body (default TLS_MAX_HELLO, 16 KiB). */
  maxHello?: number
}

/**
 * Sniff buf (every byte read from the client so far), choosing the protocol
 * by the first bytes: 0x16 TLS, else the h2 preface or HTTP/1. Bytes that
 * are none of these give status 'ok', proto 'unknown'.
 */
export function sniff(buf: Uint8Array, opts: SniffOptions): SniffOutcome {
  if (buf.length === 0) return NEED_MORE
  const r =
    buf[0] === 0x16 ? sniffTls(buf, { maxHello: opts.maxHello ?? TLS_MAX_HELLO }) : sniffHttp(buf, opts.maxBytes)
  if (r.status === 'not-mine') return { status: 'ok', proto: 'unknown' }
  if (r.status === 'need-more' && buf.length >= opts.maxBytes) {
    const out: SniffOutcome = {
      status: 'invalid',
      error: `sniff: first flight incomplete after ${buf.length} bytes (limit ${opts.maxBytes})`,
    }
    if (r.proto !== undefined) out.proto = r.proto
    return out
  }
  return r
}
