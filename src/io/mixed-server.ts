// The mixed listener: SOCKS4/4a/5 and the HTTP proxy on one port, told
// apart by the first byte (0x04, 0x05, else HTTP).

import { serveHttp } from './http-server.js'
import type { GatewayContext, Outcome, Session } from './session.js'
import { serveSocks } from './socks-server.js'

/**
 * The first read takes what has arrived (up to the SOCKS handshake's limit,
 * less than an HTTP head may be), not one byte: a SOCKS5 greeting then needs
 * no second read.
 */
const FIRST_READ = 1024

export async function serveMixed(s: Session, ctx: GatewayContext): Promise<Outcome> {
  // Bytes may be there already: the native handshake hands over what it read.
  if (s.stream.buffered.length === 0) await s.stream.fill(FIRST_READ)
  const first = s.stream.buffered[0]
  return first === 0x04 || first === 0x05 ? serveSocks(s, ctx) : serveHttp(s, ctx)
}
