// Results of the protocol sniffers (tls.ts, http.ts, index.ts): the
// statuses of parse-result.ts; with 'ok' the first flight is complete and
// understood (proto, host, alpn). A sniffer is called again, with the longer
// buffer, after each read.

import type { ParseStatus } from '../parse-result.js'

export type SniffProto = 'tls' | 'http' | 'h2' | 'unknown'

export interface SniffResult {
  status: ParseStatus
  /** Set with 'ok'; also with 'need-more'/'invalid' once the protocol is recognised. */
  proto?: SniffProto
  /** Lower-case DNS name or IP literal (IPv6 without brackets, no port). */
  host?: string
  /** TLS ALPN protocol names, in the client's order (bytes outside printable ASCII as \xNN). */
  alpn?: string[]
  /** Why the status is 'invalid' (or 'not-mine'): starts with "tls: " or "http: ". */
  error?: string
}
