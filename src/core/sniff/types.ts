// Results of the protocol sniffers (tls.ts, http.ts, index.ts).
//
// A sniffer gets every byte read from the client so far and is called again,
// with the longer buffer, after each read. It never throws on bad input and
// never keeps state between calls: it answers with one of these statuses.
//
//   ok         the first flight is complete and understood (proto, host, alpn)
//   need-more  nothing wrong so far, but the buffer is too short to decide
//   not-mine   these bytes are not this sniffer's protocol (try another)
//   invalid    this sniffer's protocol, but malformed or over a limit (error)

export type SniffStatus = 'ok' | 'need-more' | 'not-mine' | 'invalid'

export type SniffProto = 'tls' | 'http' | 'h2' | 'unknown'

export interface SniffResult {
  status: SniffStatus
  /** Set with 'ok'; also with 'need-more'/'invalid' once the protocol is recognised. */
  proto?: SniffProto
  /** Lower-case DNS name or IP literal (IPv6 without brackets, no port). */
  host?: string
  /** TLS ALPN protocol names, in the client's order (bytes outside printable ASCII as \xNN). */
  alpn?: string[]
  /** Why the status is 'invalid' (or 'not-mine'): starts with "tls: " or "http: ". */
  error?: string
}
