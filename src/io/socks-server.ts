// The SOCKS listener: SOCKS5 (RFC 1928, user/pass per RFC 1929 when users
// are configured) and SOCKS4/4a on one port, told apart by the first byte.
// The success reply is sent after the dial and carries the outbound socket's
// bound address; a failed dial gets the reply code that says why.

import * as native from 'ugate:native'
import { formatHostPort } from '../core/address.js'
import { hexByte } from '../core/bytes.js'
import { listenerUsers } from '../core/config.js'
import {
  SOCKS5_CMD,
  SOCKS5_METHOD,
  SOCKS5_REPLY,
  chooseSocks5Method,
  encodeSocks4Reply,
  encodeSocks5MethodChoice,
  encodeSocks5Reply,
  encodeSocks5UserPassReply,
  parseSocks4Request,
  parseSocks5Greeting,
  parseSocks5Request,
  parseSocks5UserPass,
  socks5ReplyForErrno,
} from '../core/socks.js'
import { DialError } from './dial.js'
import { RejectedError, type Routed, connectOut } from './outbound.js'
import { serveUdpAssociate } from './socks-udp.js'
import type { GatewayContext, Outcome, Session } from './session.js'

/** A SOCKS handshake is small; more than this before the request ends is abuse. */
const HANDSHAKE_LIMIT = 1024

export async function serveSocks(s: Session, ctx: GatewayContext): Promise<Outcome> {
  if (s.stream.buffered.length === 0) await s.stream.fill(HANDSHAKE_LIMIT)
  const version = s.stream.buffered[0]
  if (version === 5) return socks5(s, ctx)
  if (version === 4) return socks4(s, ctx)
  return {
    kind: 'close',
    reason: `bad-protocol:first-byte-${hexByte(version ?? 0)}`,
    reset: true,
  }
}

/** A malformed message: logged with the bad value (native/mod_gate.c logs the same line). */
function invalid(s: Session, ctx: GatewayContext, error: string): void {
  ctx.log.info('socks-invalid', { listener: s.listener.name, src: s.src, error })
}

async function socks5(s: Session, ctx: GatewayContext): Promise<Outcome> {
  const hello = await s.stream.read(parseSocks5Greeting, HANDSHAKE_LIMIT)
  if (hello.status !== 'ok') {
    invalid(s, ctx, hello.error)
    return { kind: 'close', reason: 'socks5-invalid', reset: true }
  }
  const accounts = listenerUsers(s.listener)
  const method = chooseSocks5Method(hello.methods, accounts.length > 0)
  await s.stream.writeAll(encodeSocks5MethodChoice(method))
  if (method === SOCKS5_METHOD.NO_ACCEPTABLE) return { kind: 'close', reason: 'auth-required' }
  if (method === SOCKS5_METHOD.USER_PASS) {
    const cred = await s.stream.read(parseSocks5UserPass, HANDSHAKE_LIMIT)
    if (cred.status !== 'ok') {
      invalid(s, ctx, cred.error)
      return { kind: 'close', reason: 'socks5-invalid', reset: true }
    }
    const ok = accounts.some((u) => u.username === cred.username && u.password === cred.password)
    await s.stream.writeAll(encodeSocks5UserPassReply(ok))
    if (!ok) return { kind: 'close', reason: 'auth-failed' }
    s.fields.user = cred.username
  }
  return socks5Request(s, ctx)
}

/**
 * From the request on: after the greeting (and authentication), or for a
 * request the native handshake hands over (UDP ASSOCIATE).
 */
export async function socks5Request(s: Session, ctx: GatewayContext): Promise<Outcome> {
  const req = await s.stream.read(parseSocks5Request, HANDSHAKE_LIMIT)
  if (req.status !== 'ok') {
    invalid(s, ctx, req.error)
    await s.stream.writeAll(encodeSocks5Reply(req.reply))
    return { kind: 'close', reason: 'socks5-invalid' }
  }
  s.fields.dst = formatHostPort(req.host, req.port)
  if (req.cmd === SOCKS5_CMD.UDP_ASSOCIATE) return serveUdpAssociate(s, ctx, req)
  if (req.cmd !== SOCKS5_CMD.CONNECT) {
    await s.stream.writeAll(encodeSocks5Reply(SOCKS5_REPLY.COMMAND_NOT_SUPPORTED))
    return { kind: 'close', reason: `command-not-supported:${req.cmd}` }
  }
  return dialAndReply(s, ctx, req, SOCKS5_REPLIES)
}

const SOCKS5_REPLIES: DialReplies = {
  ok: (bound) => encodeSocks5Reply(SOCKS5_REPLY.SUCCEEDED, bound.addr, bound.port),
  failed: (e) => encodeSocks5Reply(socks5Reply(e)),
}

/** A CONNECT the native handshake read and routed, for JS to dial (a host name, an upstream). */
export function socks5Routed(
  s: Session,
  ctx: GatewayContext,
  target: { host: string; port: number },
  routed: Routed,
): Promise<Outcome> {
  return dialAndReply(s, ctx, target, SOCKS5_REPLIES, routed)
}

/** Reply code for a failed route or dial. */
function socks5Reply(e: DialError): number {
  if (e instanceof RejectedError || e.reason === 'loop') return SOCKS5_REPLY.NOT_ALLOWED
  return socks5ReplyForErrno(e.reason)
}

async function socks4(s: Session, ctx: GatewayContext): Promise<Outcome> {
  const req = await s.stream.read(parseSocks4Request, HANDSHAKE_LIMIT)
  if (req.status !== 'ok') {
    await s.stream.writeAll(encodeSocks4Reply(false))
    return { kind: 'close', reason: 'socks4-invalid' }
  }
  s.fields.dst = formatHostPort(req.host, req.port)
  // SOCKS4 carries no password: with users configured it cannot authenticate.
  if (listenerUsers(s.listener).length > 0) {
    await s.stream.writeAll(encodeSocks4Reply(false))
    return { kind: 'close', reason: 'auth-required' }
  }
  if (req.cmd !== SOCKS5_CMD.CONNECT) {
    await s.stream.writeAll(encodeSocks4Reply(false))
    return { kind: 'close', reason: `command-not-supported:${req.cmd}` }
  }
  return dialAndReply(s, ctx, req, {
    ok: (bound) => encodeSocks4Reply(true, bound.port, bound.family === 4 ? bound.addr : '0.0.0.0'),
    failed: () => encodeSocks4Reply(false),
  })
}

/** The two replies of a SOCKS version: success carries the outbound socket's bound address. */
interface DialReplies {
  ok(bound: native.SockAddr): Uint8Array
  failed(e: DialError): Uint8Array
}

/**
 * The handshake is over: dial the requested target, then send the success
 * reply and relay, or the failure reply and close with the dial's reason.
 */
async function dialAndReply(
  s: Session,
  ctx: GatewayContext,
  target: { host: string; port: number },
  replies: DialReplies,
  routed?: Routed,
): Promise<Outcome> {
  s.handshakeDone()
  const out = await connectOut({ host: target.host, port: target.port }, s, ctx, routed)
  if (out instanceof DialError) {
    await s.stream.writeAll(replies.failed(out))
    return { kind: 'close', reason: out.reason }
  }
  await s.stream.writeAll(replies.ok(out.local ?? native.localAddress(out.fd)))
  return { kind: 'relay', upstream: out.fd, up: s.stream.takeRest(), down: out.down }
}
