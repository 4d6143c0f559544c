// The HTTP proxy listener. CONNECT host:port gets "200 Connection
// established" after the dial, then the tunnel. An absolute-URI request
// (GET http://host/path ...) is sent to the origin in origin-form with the
// hop-by-hop fields removed and "Connection: close", and the rest of the
// connection (body, response) is relayed by C: each request is routed on its
// own, and a next request (to any host) comes on a new connection.

import { formatHostPort } from '../core/address.js'
import { concatBytes } from '../core/bytes.js'
import {
  CONNECT_ESTABLISHED,
  DEFAULT_MAX_HEADER_BYTES,
  checkProxyAuth,
  encodeResponse,
  httpStatusForErrno,
  parseProxyTarget,
  parseRequestHead,
  rewriteForOrigin,
} from '../core/http-proxy.js'
import { DialError } from './dial.js'
import { RejectedError, connectOut } from './outbound.js'
import type { GatewayContext, Outcome, Session } from './session.js'
import { TooLargeError } from './stream.js'

export async function serveHttp(s: Session, ctx: GatewayContext): Promise<Outcome> {
  const reply = async (status: number, body: string, reason: string): Promise<Outcome> => {
    await s.stream.writeAll(encodeResponse(status, undefined, `${body}\n`))
    return { kind: 'close', reason }
  }
  let head
  try {
    head = await s.stream.read((b) => parseRequestHead(b, DEFAULT_MAX_HEADER_BYTES), DEFAULT_MAX_HEADER_BYTES + 1)
  } catch (e) {
    if (e instanceof TooLargeError) return reply(431, `request head exceeds ${DEFAULT_MAX_HEADER_BYTES} bytes`, 'too-large')
    throw e
  }
  if (head.status !== 'ok') return reply(head.code, head.error, 'http-invalid')
  const l = s.listener
  const users = l.type === 'http' || l.type === 'mixed' || l.type === 'socks' ? l.users : []
  if (users.length > 0) {
    const user = checkProxyAuth(head, new Map(users.map((u) => [u.username, u.password])))
    if (user === null) return reply(407, 'proxy authentication required', 'auth-failed')
    s.fields.user = user
  }
  const target = parseProxyTarget(head)
  if (target.status !== 'ok') return reply(target.code, target.error, 'http-invalid')
  s.fields.dst = formatHostPort(target.host, target.port)
  s.handshakeDone()

  let out
  try {
    out = await connectOut({ host: target.host, port: target.port }, s, ctx)
  } catch (e) {
    if (!(e instanceof DialError)) throw e
    if (e instanceof RejectedError) return reply(403, `rejected by rule ${s.fields.rule}`, e.reason)
    return reply(httpStatusForErrno(e.reason), `cannot reach ${s.fields.dst}: ${e.reason}`, e.reason)
  }
  if (target.kind === 'connect') {
    await s.stream.writeAll(CONNECT_ESTABLISHED)
    return { kind: 'relay', upstream: out.fd, up: s.stream.takeRest(), down: out.down }
  }
  const first = rewriteForOrigin(head, target, { close: true })
  return { kind: 'relay', upstream: out.fd, up: concatBytes([first, s.stream.takeRest()]), down: out.down }
}
