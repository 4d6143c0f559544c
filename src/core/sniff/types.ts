// Results of the protocol sniffers (tls.ts, quic.ts, http.ts, index.ts): the one
// parser result of parse-result.ts. A sniffer consumes nothing, so 'ok'
// carries no length: the first flight is complete and understood (proto,
// host, alpn). need-more and invalid name the protocol once it is
// recognised. A sniffer is called again, with the longer buffer, after each
// read.

import type { Invalid, NeedMore, NotMine, Ok } from '../parse-result.js'

export type SniffProto = 'tls' | 'quic' | 'http' | 'h2' | 'unknown'

export interface Sniffed {
  proto: SniffProto
  /** Lower-case DNS name or IP literal (IPv6 without brackets, no port). */
  host?: string
  /** TLS ALPN protocol names (also QUIC's ClientHello), in the client's order (bytes outside printable ASCII as \xNN). */
  alpn?: string[]
}

/** Set once the protocol is recognised. (Errors start with "tls: ", "quic: " or "http: ".) */
type Recognised = { proto?: SniffProto }

export type SniffResult = (NeedMore & Recognised) | (Invalid & Recognised) | NotMine | Ok<Sniffed>
