// HBONE in JS: only decisions. The listener hands accepted sockets to C
// (native/hbone.c: TLS, HTTP/2 and the payload on the relay's thread); each
// CONNECT comes back as a `request` event and is routed like any connection
// (rules, dialing, the access line), then answered: accepted with the dialed
// socket, or refused with 400 / 401 / 503 as ztunnel answers. The `hbone`
// upstream opens streams on pooled connections to a peer gate; the stream's
// local end is a socket the relay treats like any upstream socket.

import * as native from 'ugate:native'
import { formatHostPort, parseEndpoint } from '../core/address.js'
import { CancelledError } from '../core/cancel.js'
import {
  HBONE_PORT,
  type HboneListenerConfig,
  type HboneServedConfig,
  type HboneUpstreamConfig,
} from '../core/config.js'
import { DialError } from './dial.js'
import type { Accepted } from './listener.js'
import { currentTls, namesThisNode } from './mesh-identity.js'
import { RejectedError, connectOut, type Outbound } from './outbound.js'
import { type MeshRelay, onReverseClosed, onReverseUp, reverseServed, reverseTunnelFor } from './reverse.js'
import { type GatewayContext, type Session, type Tracked, acceptGuard, track } from './session.js'
import { closeQuietly, resetQuietly } from './sockets.js'

/** A tunnel whose CONNECTs this gate serves: a listener's, or a reverse tunnel it dialed (reverse.ts). */
export interface Tunnel {
  listener: HboneServedConfig
  src: string
  /** Only an explicit rule routes its streams (a reverse tunnel exposes nothing by default). */
  requireRule?: boolean
}

/** A server stream between its request and its `done`. */
interface Served {
  t: Tracked | null
  /** The `done` came while JS was still dialing: the dialed socket is not wanted. */
  over: boolean
}

interface Opening {
  resolve: (r: { status: number; reason: string }) => void
}

const tunnels = new Map<number, Tunnel>()

/** The hbone listener that accepted server tunnel `id` (metrics, status). */
export function tunnelListener(id: number): string | undefined {
  return tunnels.get(id)?.listener.name
}
const served = new Map<string, Served>()
const opening = new Map<number, Opening>()

/** The accept callback of an hbone listener: TLS and HTTP/2 run in C from here. */
export function hboneAcceptor(l: HboneListenerConfig, ctx: GatewayContext): (client: Accepted) => void {
  return acceptGuard(l, ctx, (client, src) => {
    const tls = currentTls()?.server
    if (tls === undefined) {
      ctx.log.error('hbone-no-identity', { listener: l.name, src })
      return resetQuietly(client.fd)
    }
    const id = native.hboneServe(client.fd, tls, src, l.reverse.length > 0, l)
    tunnels.set(id, { listener: l, src })
  })
}

/** The one callback of every HBONE event (registered once per gateway). */
export function onHboneBatch(ctx: GatewayContext): (batch: native.HboneEvent[]) => void {
  return (batch) => {
    for (const ev of batch) {
      switch (ev.kind) {
        case 'request':
          onRequest(ev, ctx)
          break
        case 'opened':
          opening.get(ev.tag)?.resolve({ status: ev.status, reason: ev.reason })
          opening.delete(ev.tag)
          break
        case 'done':
          if (ev.tag === 0) onServedDone(ev)
          break
        case 'closed':
          ctx.log.info('hbone-closed', {
            tunnel: ev.tunnel,
            peer: ev.peerAddr,
            reason: ev.reason,
            ...(ev.detail !== '' ? { detail: ev.detail } : {}),
            streams: ev.status,
            out: ev.toTunnel,
            in: ev.toSocket,
          })
          onReverseClosed(ev, ctx.log)
          tunnels.delete(ev.tunnel)
          break
        case 'reverse':
          onReverseUp(ev, tunnels.get(ev.tunnel), ctx.log)
          break
      }
    }
  }
}

/** ztunnel's answers: 400 bad request, 401 policy, 503 no route or dial failure. */
function refuse(ev: native.HboneEvent, status: number): void {
  native.hboneRefuse(ev.tunnel, ev.stream, status)
}

function onRequest(ev: native.HboneEvent, ctx: GatewayContext): void {
  const tunnel = tunnels.get(ev.tunnel) ?? reverseServed(ev.tunnel)
  if (tunnel === undefined) return refuse(ev, 503) // a tunnel from before a reload that dropped it
  const l = tunnel.listener
  const peerIp = tunnel.src.replace(/^\[?(.*?)\]?:\d+$/, '$1')
  const admitted = ctx.admission.admit(peerIp)
  if (typeof admitted === 'string') {
    ctx.log.warn('limit-reached', { listener: l.name, src: tunnel.src, limit: admitted })
    return refuse(ev, 503)
  }
  const t = track(ctx, l.name, peerIp, tunnel.src, admitted)
  const f = t.fields
  f.dst = ev.authority
  f.identity = ev.peerId
  if (ev.peerNode !== '') f.node = ev.peerNode
  if (ev.forwarded !== '') f.forwarded = ev.forwarded
  if (ev.baggage !== '') f.baggage = ev.baggage
  if (ev.traceparent !== '') f.traceparent = ev.traceparent
  f.tunnel = ev.tunnel
  let dest
  try {
    dest = parseEndpoint(ev.authority, 'target')
  } catch {
    refuse(ev, 400)
    return t.finish(0, 0, 'bad-authority', false)
  }
  if (l.peers.length > 0 && !l.peers.includes(ev.peerId)) {
    refuse(ev, 401)
    return t.finish(0, 0, 'identity-denied', false)
  }
  const key = `${ev.tunnel}/${ev.stream}`
  const entry: Served = { t, over: false }
  served.set(key, entry)
  // Double HBONE (docs/mesh.md): a stream to this node's own HBONE endpoint carries an
  // HBONE connection of its own, served like one this tunnel's listener accepted: its
  // CONNECTs go through the rules (with the inner peer's identity), nothing more.
  if (dest.port === HBONE_PORT && namesThisNode(dest.host, ctx.config.mesh)) {
    const inner = native.hboneServeStream(ev.tunnel, ev.stream, currentTls()!.server, `via ${ev.peerAddr}`)
    tunnels.set(inner, { listener: l, src: tunnel.src, requireRule: tunnel.requireRule })
    f.action = 'hbone'
    f.inner = inner
    return t.relaying()
  }
  const [addr, port] = splitSrc(tunnel.src)
  const session: Session = {
    listener: l,
    client: { fd: -1, addr, port, family: addr.includes(':') ? 6 : 4 },
    src: tunnel.src,
    get stream(): never {
      throw new Error('an hbone stream has no handshake to read')
    },
    cancel: t.cancel,
    fields: f,
    handshakeDone: () => {},
    peer: { spiffeId: ev.peerId, nodeId: ev.peerNode },
  }
  connectOut({ host: dest.host, port: dest.port, requireRule: tunnel.requireRule }, session, ctx).then(
    (out: Outbound | DialError) => {
      if (out instanceof DialError) {
        if (!entry.over) refuse(ev, out instanceof RejectedError ? 401 : 503)
        served.delete(key)
        return entry.over ? undefined : t.finish(0, 0, out.reason, false)
      }
      if (entry.over) return closeQuietly(out.fd) // the stream is gone: finished by its `done`
      native.hboneAccept(ev.tunnel, ev.stream, out.fd, out.down.length > 0 ? out.down : undefined)
      t.relaying()
    },
    (e: unknown) => {
      served.delete(key)
      if (entry.over) return
      refuse(ev, 503)
      t.finish(0, 0, e instanceof CancelledError ? e.reason : 'internal-error', false)
    },
  )
}

function onServedDone(ev: native.HboneEvent): void {
  const key = `${ev.tunnel}/${ev.stream}`
  const entry = served.get(key)
  if (entry === undefined) return // refused by JS: finished already
  served.delete(key)
  entry.over = true
  entry.t?.cancel.cancel('peer-gone') // a dial still under way stops
  // up: from the peer (the client side) to the destination.
  const reason = ev.error !== '' ? `${ev.reason}:${ev.error}` : ev.reason
  entry.t?.finish(ev.toSocket, ev.toTunnel, reason, false)
  entry.t = null
}

function splitSrc(src: string): [string, number] {
  const m = /^\[?(.*?)\]?:(\d+)$/.exec(src)
  return m ? [m[1]!, Number(m[2])] : [src, 0]
}

/**
 * A CONNECT to host:port through the hbone upstream u: resolves with the
 * local end of the stream once the peer answered 200 (then the relay moves
 * the client's bytes to it). A refusal is a DialError: upstream-refused:STATUS.
 * When the peer has registered a reverse tunnel here (reverse.ts), the
 * stream goes on it; without one, an upstream without a server fails with
 * no-reverse-tunnel. With `via` (routing by node name), the peer is reached
 * with double HBONE through that relay: a stream to the peer's HBONE endpoint
 * (`host`:15008) on the relay, and TLS + HTTP/2 to the peer inside it.
 */
export async function openHbone(
  u: HboneUpstreamConfig,
  host: string,
  port: number,
  // fields: the access line's, when a connection asks (not the admin API's delay test).
  s: Pick<Session, 'client' | 'cancel'> & { fields?: Session['fields'] },
  ctx: GatewayContext,
  via?: MeshRelay,
): Promise<Outbound> {
  const mesh = currentTls()
  if (mesh === null) throw new DialError('upstream-error', `${u.name}: no mesh identity`)
  const me = /^spiffe:\/\/[^/]+\/ns\/([^/]+)\/sa\/([^/]+)$/.exec(mesh.spiffeId)
  const rev = via === undefined ? reverseTunnelFor(u) : undefined
  const target =
    via !== undefined
      ? {
          via: {
            key: via.key,
            addr: via.addr,
            port: via.port,
            expect: via.expect,
            authority: formatHostPort(host, HBONE_PORT),
          },
        }
      : rev !== undefined
        ? { tunnel: rev.tunnel }
        : u.server !== null
          ? { addr: u.server.host, port: u.server.port }
          : null
  if (target === null)
    throw new DialError('no-reverse-tunnel', `${u.name}: ${u.node || u.identity} has no reverse tunnel here`)
  if (rev !== undefined && s.fields !== undefined) {
    s.fields.tunnel = rev.tunnel
    s.fields.node = rev.node
  }
  const [tag, fd] = native.hboneOpen(
    {
      key: u.name,
      ...target,
      mark: ctx.config.dial.mark,
      // The exact id, else "spiffe://TD" (tls.h: any id of TD), else '' (the mesh's trust domain).
      expect: u.identity !== '' ? u.identity : u.trustDomain !== '' ? `spiffe://${u.trustDomain}` : '',
      authority: formatHostPort(host, port),
      // As ztunnel sends them: who the source is, and where it came from.
      baggage: me === null ? '' : `k8s.namespace.name=${me[1]},service.name=${me[2]}`,
      forwarded: `for=${JSON.stringify(s.client.addr.includes(':') ? `[${s.client.addr}]` : s.client.addr)}`,
      traceparent: traceparent(),
      // A named node must hold the key its id is the hash of.
      ...(u.node !== '' ? { node: u.node } : {}),
      pingIntervalMs: u.pingIntervalMs,
      pingTimeoutMs: u.pingTimeoutMs,
    },
    mesh.client,
  )
  ctx.stats.mesh.opening(tag, u.name)
  let off = () => {}
  const answer = await new Promise<{ status: number; reason: string }>((resolve, reject) => {
    opening.set(tag, { resolve })
    off = s.cancel.onCancel((reason) => {
      opening.delete(tag)
      closeQuietly(fd) // the stream in C sees its socket close and ends
      reject(new CancelledError(reason))
    })
  }).finally(() => off())
  // fd is one end of a socket pair: a SOCKS reply names no address ("0.0.0.0:0").
  if (answer.status === 200) return { fd, down: new Uint8Array(0), local: { addr: '0.0.0.0', port: 0, family: 4 } }
  // (cancelled meanwhile: the handler closed fd already, and the promise rejected)
  closeQuietly(fd)
  if (answer.status > 0) throw new DialError(`upstream-refused:${answer.status}`, `${u.name}`)
  // Double HBONE's own failures (hbone.h) are reasons of their own: the relay's answer, the node's key.
  if (/^(relay-|node-mismatch$)/.test(answer.reason)) throw new DialError(answer.reason, `${u.name}`)
  throw new DialError('upstream-error', `${u.name}: ${answer.reason}`)
}

/** A new W3C trace context (version 00, not sampled): ids only need to be unique. */
function traceparent(): string {
  const hex = (n: number) => {
    let s = ''
    for (let i = 0; i < n; i++) s += Math.floor(Math.random() * 16).toString(16)
    return s
  }
  return `00-${hex(32)}-${hex(16)}-00`
}
