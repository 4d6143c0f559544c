// The HTTP proxy listener. CONNECT host:port gets "200 Connection
// established" after the dial, then the tunnel. An absolute-URI request
// (GET http://host/path ...) is sent to the origin in origin-form with the
// hop-by-hop fields removed and "Connection: close"; C relays its body (a
// Content-Length body exactly, then stops reading the client) and the
// response. Each request is routed, authenticated and logged on its own: a
// next request (to any host) comes on a new connection, and bytes a client
// pipelines after the first request are never forwarded.
// Chunked request bodies are the one place payload passes through JS: their
// end is only known by parsing the chunk framing.

import { formatHostPort } from '../core/address.js'
import { concatBytes } from '../core/bytes.js'
import { listenerUsers } from '../core/config.js'
import {
  CONNECT_ESTABLISHED,
  ChunkedScanner,
  bodyFraming,
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
import { closeQuietly } from './sockets.js'
import { HandshakeStream, TooLargeError } from './stream.js'

export async function serveHttp(s: Session, ctx: GatewayContext): Promise<Outcome> {
  const reply = async (status: number, body: string, reason: string): Promise<Outcome> => {
    await s.stream.writeAll(encodeResponse(status, undefined, `${body}\n`))
    return { kind: 'close', reason }
  }
  let head
  try {
    head = await s.stream.read((b) => parseRequestHead(b, DEFAULT_MAX_HEADER_BYTES), DEFAULT_MAX_HEADER_BYTES + 1)
  } catch (e) {
    if (e instanceof TooLargeError)
      return reply(431, `request head exceeds ${DEFAULT_MAX_HEADER_BYTES} bytes`, 'too-large')
    throw e
  }
  if (head.status !== 'ok') return reply(head.code, head.error, head.code === 431 ? 'too-large' : 'http-invalid')
  const users = listenerUsers(s.listener)
  if (users.length > 0) {
    const user = checkProxyAuth(head, new Map(users.map((u) => [u.username, u.password])))
    if (user === null) return reply(407, 'proxy authentication required', 'auth-failed')
    s.fields.user = user
  }
  const target = parseProxyTarget(head)
  if (target.status !== 'ok') return reply(target.code, target.error, 'http-invalid')
  s.fields.dst = formatHostPort(target.host, target.port)
  s.handshakeDone()

  const out = await connectOut({ host: target.host, port: target.port }, s, ctx)
  if (out instanceof RejectedError) return reply(403, `rejected by rule ${s.fields.rule}`, out.reason)
  if (out instanceof DialError)
    return reply(httpStatusForErrno(out.reason), `cannot reach ${s.fields.dst}: ${out.reason}`, out.reason)
  if (target.kind === 'connect') {
    await s.stream.writeAll(CONNECT_ESTABLISHED)
    return { kind: 'relay', upstream: out.fd, up: s.stream.takeRest(), down: out.down }
  }
  const first = rewriteForOrigin(head, target, { close: true })
  const framing = bodyFraming(head)
  try {
    switch (framing.kind) {
      case 'invalid':
        closeQuietly(out.fd)
        return reply(400, framing.error, 'http-invalid')
      case 'none':
      case 'until-close': // requests have no until-close body; treated as none
        return { kind: 'relay', upstream: out.fd, up: first, down: out.down, upLimit: 0 }
      case 'length': {
        // What is buffered beyond the body belongs to a later request: dropped.
        const have = s.stream.takeRest()
        const body = have.subarray(0, Math.min(have.length, framing.length))
        return {
          kind: 'relay',
          upstream: out.fd,
          up: concatBytes([first, body]),
          down: out.down,
          upLimit: framing.length - body.length,
        }
      }
      case 'chunked': {
        const sentUp = await sendChunkedBody(s, out.fd, first)
        return { kind: 'relay', upstream: out.fd, down: out.down, upLimit: 0, sentUp }
      }
    }
  } catch (e) {
    closeQuietly(out.fd)
    throw e
  }
}

const CHUNK_READ_LIMIT = 65536

/** Forward head + chunked body to the origin as they are, up to the body's end; returns the bytes sent. */
async function sendChunkedBody(s: Session, upstream: number, head: Uint8Array): Promise<number> {
  const up = new HandshakeStream(upstream, s.cancel)
  await up.writeAll(head)
  let sent = head.length
  const scanner = new ChunkedScanner()
  for (;;) {
    if (s.stream.buffered.length === 0) await s.stream.fill(CHUNK_READ_LIMIT)
    const chunk = s.stream.buffered
    const r = scanner.feed(chunk)
    if (r.status === 'invalid') throw new DialError('http-invalid', r.error)
    await up.writeAll(chunk.subarray(0, r.consumed))
    sent += r.consumed
    s.stream.consume(r.consumed)
    if (r.status === 'done') {
      s.stream.takeRest() // a later request: never forwarded
      return sent
    }
  }
}
