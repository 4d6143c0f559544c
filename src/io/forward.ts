// The forward listener: every client goes to one fixed target. No routing
// rules apply (the target is the route); the relay starts once it connects.

import * as native from 'ugate:native'
import { formatEndpoint } from '../core/address.js'
import { dial } from './dial.js'
import { isOwnAddress } from './outbound.js'
import type { GatewayContext, Outcome, Session } from './session.js'

export async function serveForward(s: Session, ctx: GatewayContext): Promise<Outcome> {
  const l = s.listener
  if (l.type !== 'forward') throw new Error(`serveForward on a ${l.type} listener`)
  s.fields.dst = formatEndpoint(l.target)
  s.handshakeDone()
  const debug = ctx.log.enabled('debug')
  const startedAt = debug ? native.now() : 0
  const dialed = await dial(l.target.host, l.target.port, {
    timeoutMs: ctx.config.dial.connectTimeoutMs,
    mark: ctx.config.dial.mark,
    cancel: s.cancel,
    log: ctx.log,
    refuse: (addr, port) => isOwnAddress(ctx.own, addr, port),
  })
  if (debug) {
    const ms = Math.round(native.now() - startedAt)
    ctx.log.debug('connected', { listener: l.name, src: s.src, dst: s.fields.dst, addr: dialed.addr, ms })
  }
  return { kind: 'relay', upstream: dialed.fd }
}
