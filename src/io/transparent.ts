// Listeners without a proxy handshake: `redirect` (nftables REDIRECT; the
// destination comes from conntrack through SO_ORIGINAL_DST), the TCP side of
// `tproxy` (nftables TPROXY; the destination is the socket's local address)
// and `sni` (TLS
// passthrough routed by the ClientHello's server name, plain HTTP by Host).
// Both sniff the first bytes without consuming them: everything read goes
// upstream first, so the server sees the client's exact byte stream.

import * as native from 'ugate:native'
import { formatHostPort } from '../core/address.js'
import type { SniListenerConfig } from '../core/config.js'
import { Cancel, CancelledError } from '../core/cancel.js'
import { ipKey, isWildcard } from '../core/ip.js'
import { type SniffOutcome, sniff } from '../core/sniff/index.js'
import { cancelAfter } from './loop.js'
import { DialError } from './dial.js'
import { type Outbound, connectOut } from './outbound.js'
import type { GatewayContext, Outcome, Session } from './session.js'
import { EofError } from './stream.js'
import { pairIncoming } from './sni-relay.js'

/**
 * Read until the sniffer decides, the buffer holds maxBytes, or the time is
 * up. A client that sends nothing in time (server-speaks-first protocols)
 * is 'unknown'; so is anything the sniffers do not recognise.
 */
async function sniffFirstBytes(
  s: Session,
  ctx: GatewayContext,
  timeoutMs: number,
  eofIsUnknown: boolean,
): Promise<SniffOutcome> {
  const { maxBytes } = ctx.config.sniff
  const wait = new Cancel(s.cancel)
  const stop = cancelAfter(wait, timeoutMs, 'sniff-timeout')
  try {
    for (;;) {
      const r = sniff(s.stream.buffered, { maxBytes })
      if (r.status !== 'need-more') return r
      if (s.stream.buffered.length >= maxBytes)
        return { status: 'invalid', error: `no decision within ${maxBytes} bytes` }
      try {
        await s.stream.fill(maxBytes, wait)
      } catch (e) {
        if (e instanceof CancelledError && e.reason === 'sniff-timeout') return { status: 'ok', proto: 'unknown' }
        // A redirected client that sent something and closed still gets it delivered.
        if (e instanceof EofError && eofIsUnknown && s.stream.buffered.length > 0)
          return { status: 'ok', proto: 'unknown' }
        throw e
      }
    }
  } finally {
    stop()
    wait.release()
  }
}

function noteSniff(s: Session, r: SniffOutcome): void {
  s.fields.proto = r.status === 'ok' ? (r.proto ?? 'unknown') : 'unknown'
  if (r.status === 'ok' && r.host !== undefined) s.fields.host = r.host
  if (r.status === 'invalid') s.fields.sniff = r.error
}

export async function serveRedirect(s: Session, ctx: GatewayContext): Promise<Outcome> {
  const orig = native.originalDst(s.client.fd)
  const local = native.localAddress(s.client.fd)
  if (orig === null || (orig.addr === local.addr && orig.port === local.port)) {
    // Connected to the redirect port itself: there is no destination to go to.
    return { kind: 'close', reason: 'not-redirected', reset: true }
  }
  return serveCaptured(s, ctx, orig)
}

/**
 * A tproxy listener's TCP side: TPROXY hands the connection over untouched,
 * so its socket's local address is where the client connected to.
 */
export async function serveTproxy(s: Session, ctx: GatewayContext): Promise<Outcome> {
  const orig = native.localAddress(s.client.fd)
  const l = s.listener
  if (l.type === 'tproxy' && orig.port === l.listen.port && isOwnAddress(orig.addr, l.listen.host)) {
    // Connected to the listener's own port: there is no destination to go to.
    return { kind: 'close', reason: 'not-redirected', reset: true }
  }
  return serveCaptured(s, ctx, orig)
}

/**
 * A client that came straight to the listener (not captured) connected to
 * its port on one of its addresses. (A captured destination port equal to
 * the listener's own is taken for that too: captured ports are
 * capture.ports, 80 and 443 by default.)
 */
function isOwnAddress(addr: string, listenHost: string): boolean {
  return isWildcard(listenHost) || ipKey(addr) === ipKey(listenHost)
}

/** A captured connection to orig: sniff without consuming, route, relay. */
async function serveCaptured(s: Session, ctx: GatewayContext, orig: native.SockAddr): Promise<Outcome> {
  s.fields.dst = formatHostPort(orig.addr, orig.port)
  const r = await sniffFirstBytes(s, ctx, ctx.config.sniff.timeoutMs, true)
  noteSniff(s, r)
  s.handshakeDone()
  const dest = { host: orig.addr, ip: orig.addr, port: orig.port, proto: r.proto ?? 'unknown' }
  const sniffedHost = r.status === 'ok' ? r.host : undefined
  return relayOrReset(await connectOut(sniffedHost === undefined ? dest : { ...dest, sniffedHost }, s, ctx), s)
}

/** An sni listener's handler (its config `l`: the pseudo listener of a relayed connection has none of its settings). */
export async function serveSni(s: Session, ctx: GatewayContext, l: SniListenerConfig): Promise<Outcome> {
  // Without a name there is nowhere to go, so wait as long as a handshake may take.
  const r = await sniffFirstBytes(s, ctx, ctx.config.limits.handshakeTimeoutMs, false)
  noteSniff(s, r)
  if (r.status !== 'ok' || r.host === undefined || (r.proto !== 'tls' && r.proto !== 'http')) {
    return { kind: 'close', reason: r.status === 'invalid' ? 'sniff-invalid' : 'no-server-name', reset: true }
  }
  // A relay's TLS side: the SNI names a NAT-ed gate; nothing goes to the rules.
  if (l.pair !== '') {
    if (r.proto !== 'tls') return { kind: 'close', reason: 'not-tls', reset: true }
    return pairIncoming(s, ctx, l, r.host)
  }
  const port = r.proto === 'tls' ? l.tlsPort : l.httpPort
  s.fields.dst = formatHostPort(r.host, port)
  s.handshakeDone()
  return relayOrReset(await connectOut({ host: r.host, port, sniffedHost: r.host, proto: r.proto }, s, ctx), s)
}

/**
 * The gate's end of relay over SNI: a parked connection the relay paired
 * (pair: the client the relay saw and the SNI it paired on). Routed like a
 * connection captured with that SNI, but only by an explicit rule.
 */
export function serveRelayed(pair: { src: string; sni: string }) {
  return async (s: Session, ctx: GatewayContext): Promise<Outcome> => {
    s.fields.client = pair.src
    const r = await sniffFirstBytes(s, ctx, ctx.config.limits.handshakeTimeoutMs, false)
    noteSniff(s, r)
    if (r.status !== 'ok' || r.proto !== 'tls' || r.host === undefined)
      return { kind: 'close', reason: r.status === 'invalid' ? 'sniff-invalid' : 'no-server-name', reset: true }
    // The relay paired on this name: a ClientHello naming another is not what it vouched for.
    if (r.host.toLowerCase() !== pair.sni.toLowerCase()) return { kind: 'close', reason: 'sni-mismatch', reset: true }
    s.fields.dst = formatHostPort(r.host, 443)
    s.handshakeDone()
    const out = await connectOut(
      { host: r.host, port: 443, sniffedHost: r.host, proto: 'tls', requireRule: true },
      s,
      ctx,
    )
    return relayOrReset(out, s)
  }
}

/** A transparent client gets no protocol reply: a failed dial resets it. */
function relayOrReset(out: Outbound | DialError, s: Session): Outcome {
  if (out instanceof DialError) return { kind: 'close', reason: out.reason, reset: true }
  return { kind: 'relay', upstream: out.fd, up: s.stream.takeRest(), down: out.down }
}
