// Routing by node name (docs/mesh.md): the rule action `mesh` sends a
// connection whose host names a mesh node (src/core/node-name.ts) to that
// node, the first way that exists:
//   1. its reverse tunnel, when it registered one at this gate;
//   2. an hbone upstream that names it (`node`) with a server: HBONE to it;
//   3. a relay (an hbone upstream with `relay`, then the public gates of the
//      `reverse` entries), in turn until one has it: double HBONE, so the
//      relay sees only ciphertext and the authority.
// A stream that came in over HBONE is only routed by 1 and 2 (one hop: a
// relay never passes a node name on to another relay). This gate's own name
// goes to its own service on loopback. The host's port is the node's port:
// on the node, its rules decide what that reaches.

import { formatHostPort } from '../core/address.js'
import type { HboneUpstreamConfig } from '../core/config.js'
import { parseSpiffeId } from '../core/identity.js'
import { type NodeName, formatNodeName, nodeNameMismatch, parseNodeName } from '../core/node-name.js'
import { DialError, type DialOptions, dial } from './dial.js'
import { openHbone } from './hbone.js'
import { currentTls, nodeNameForms } from './mesh-identity.js'
import type { Outbound } from './outbound.js'
import { type MeshRelay, reverseRelays, reverseTunnelOfNode } from './reverse.js'
import type { GatewayContext, Session } from './session.js'

/** The access line and the warning of a name no route reaches. */
function unknown(s: Session, ctx: GatewayContext, host: string, reason: string, why: string): DialError {
  ctx.log.warn('mesh-node-unreachable', { listener: s.listener.name, src: s.src, host, reason, why })
  return new DialError(reason, why)
}

/** The name sent on: the full name when the node's namespace is known, else the host as given. */
function canonical(name: NodeName, host: string, id: string): string {
  if (name.namespace !== '') return formatNodeName(name.node, name.namespace, name.trustDomain)
  const p = id === '' ? null : parseSpiffeId(id)
  return p !== null && 'id' in p ? formatNodeName(name.node, p.id.namespace, p.id.trustDomain) : host.toLowerCase()
}

/** An upstream for a node no upstream names: its pool is the node's own. */
function nodeUpstream(name: NodeName): HboneUpstreamConfig {
  return {
    name: `node:${name.node}`,
    type: 'hbone',
    server: null,
    node: name.node,
    identity: '',
    trustDomain: name.trustDomain,
    relay: false,
    // 0: the engine's keep-alive (ztunnel's 10 s / 20 s).
    pingIntervalMs: 0,
    pingTimeoutMs: 0,
  }
}

/** Node id → the name of the relay that last reached it (one entry per node reached). */
const lastRelay = new Map<string, string>()

/** The relays this gate may route a node name through, in the order tried. */
function relays(ctx: GatewayContext): MeshRelay[] {
  const own: MeshRelay[] = []
  for (const u of ctx.config.upstreams)
    if (u.type === 'hbone' && u.relay && u.server !== null)
      own.push({
        name: u.name,
        key: u.name,
        addr: u.server.host,
        port: u.server.port,
        expect: u.identity !== '' ? u.identity : u.trustDomain !== '' ? `spiffe://${u.trustDomain}` : '',
      })
  return [...own, ...reverseRelays()]
}

/** The `mesh` action: a connected stream to the node `host` names, on its port `port`. */
export async function openNode(
  host: string,
  port: number,
  s: Session,
  ctx: GatewayContext,
  opts: DialOptions,
): Promise<Outbound> {
  const me = currentTls()
  if (me === null) throw unknown(s, ctx, host, 'no-identity', 'routing by node name needs the mesh section')
  const forms = nodeNameForms(ctx.config.mesh)
  const name = parseNodeName(host, forms)
  if (name === null) {
    const shapes = [
      forms.trustDomain && `NODEID.NAMESPACE.${forms.trustDomain}`,
      forms.suffix && `NODEID.${forms.suffix}`,
    ]
    throw unknown(
      s,
      ctx,
      host,
      'not-a-node-name',
      `${host} is not ${shapes.filter((x) => x).join(' or ') || 'a node name'}`,
    )
  }
  s.fields.node = name.node
  // This gate's own name: its own service.
  if (name.node === me.nodeId) {
    s.fields.via = 'self'
    return { fd: (await dial('127.0.0.1', port, opts)).fd, down: new Uint8Array(0) }
  }
  const rev = reverseTunnelOfNode(name.node)
  if (rev !== undefined) {
    const mismatch = nodeNameMismatch(name, rev.identity)
    if (mismatch !== null) throw unknown(s, ctx, host, 'node-name-mismatch', mismatch)
    s.fields.via = 'reverse'
    return openHbone(nodeUpstream(name), canonical(name, host, rev.identity), port, s, ctx)
  }
  const u = ctx.config.upstreams.find((x) => x.type === 'hbone' && x.node === name.node && x.server !== null) as
    HboneUpstreamConfig | undefined
  if (u !== undefined) {
    const mismatch = nodeNameMismatch(name, u.identity)
    if (mismatch !== null) throw unknown(s, ctx, host, 'node-name-mismatch', mismatch)
    s.fields.via = u.name
    return openHbone(u, canonical(name, host, u.identity), port, s, ctx)
  }
  // One hop: what came over HBONE is not passed on to a relay.
  const hops = s.peer !== undefined ? [] : relays(ctx)
  if (hops.length === 0)
    throw unknown(
      s,
      ctx,
      host,
      'unknown-node',
      `node ${name.node} has no reverse tunnel here and no hbone upstream names it${s.peer !== undefined ? '' : ', and no relay is configured'}`,
    )
  // The relay that last reached the node goes first: the node's pooled inner
  // connection (if still open) runs through it, and the others may be down.
  const good = lastRelay.get(name.node)
  hops.sort((x, y) => Number(y.name === good) - Number(x.name === good))
  let last: DialError | undefined
  for (const relay of hops) {
    s.fields.via = `relay:${relay.name}`
    try {
      const out = await openHbone(nodeUpstream(name), canonical(name, host, ''), port, s, ctx, relay)
      lastRelay.set(name.node, relay.name)
      return out
    } catch (e) {
      // Refused or unreachable there: the next relay may have it.
      if (!(e instanceof DialError) || !e.reason.startsWith('relay-')) throw e
      ctx.log.warn('mesh-relay-failed', {
        listener: s.listener.name,
        src: s.src,
        host,
        relay: relay.name,
        reason: e.reason,
      })
      last = e
    }
  }
  throw unknown(s, ctx, host, last!.reason, `no relay reached node ${name.node} (${formatHostPort(host, port)})`)
}
