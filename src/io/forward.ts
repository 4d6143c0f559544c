// The forward listener's data path: accepted client → dial the fixed target
// → hand both sockets to the native relay → one access line when it ends.

import * as native from 'ugate:native'
import { formatEndpoint, formatHostPort } from '../core/address.js'
import type { Config, ForwardListenerConfig } from '../core/config.js'
import type { ConnTracker } from '../core/conn-tracker.js'
import { type AccessRecord, type Logger, accessFields, relayReason } from '../core/log.js'
import { DialError, dial } from './dial.js'
import type { Accepted } from './listener.js'
import { closeQuietly, errorCode, resetQuietly } from './sockets.js'

export interface HandlerContext {
  relay: Config['relay']
  dial: Config['dial']
  log: Logger
  conns: ConnTracker
}

/** idleTimeout 0 means never; the relay gets the longest timer value instead. */
const NEVER_IDLE_MS = 0x7fffffff

type Outcome = Pick<AccessRecord, 'up' | 'down' | 'reason' | 'splice'>

/** The accept handler of one forward listener. */
export function forwardHandler(l: ForwardListenerConfig, ctx: HandlerContext): (client: Accepted) => void {
  const dst = formatEndpoint(l.target)

  async function serve(client: Accepted): Promise<void> {
    const conn = ctx.conns.open()
    const acceptedAt = native.now()
    const src = formatHostPort(client.addr, client.port)
    const finish = (o: Outcome) => {
      ctx.log.info('conn', accessFields({ listener: l.name, src, dst, ms: native.now() - acceptedAt, ...o }))
      conn.done()
    }

    let upstream: number
    try {
      const dialed = await dial(l.target.host, l.target.port, {
        timeoutMs: ctx.dial.connectTimeoutMs,
        mark: ctx.dial.mark,
        cancel: conn.cancel,
        log: ctx.log,
      })
      upstream = dialed.fd
      const ms = Math.round(native.now() - acceptedAt)
      ctx.log.debug('connected', { listener: l.name, src, dst, addr: dialed.addr, ms })
    } catch (e) {
      // A RST tells the client at once that there is no way through.
      resetQuietly(client.fd)
      return finish({ up: 0, down: 0, reason: e instanceof DialError ? e.reason : 'internal-error', splice: false })
    }

    // Shutdown may have begun while the connect completed.
    if (conn.cancel.cancelled) {
      resetQuietly(client.fd)
      closeQuietly(upstream)
      return finish({ up: 0, down: 0, reason: conn.cancel.reason!, splice: false })
    }

    conn.relaying()
    const opts = { splice: ctx.relay.splice, idleMs: ctx.relay.idleTimeoutMs || NEVER_IDLE_MS }
    try {
      native.relay(client.fd, upstream, opts, (r) => {
        finish({ up: r.bytesUp, down: r.bytesDown, reason: relayReason(r.reason, r.error), splice: r.spliced })
      })
    } catch (e) {
      // Assumes a throwing relay() did not take the sockets.
      resetQuietly(client.fd)
      closeQuietly(upstream)
      finish({ up: 0, down: 0, reason: `relay-error:${errorCode(e)}`, splice: false })
    }
  }

  return (client) => {
    serve(client).catch((e: unknown) => {
      ctx.log.error('internal-error', { listener: l.name, error: e instanceof Error ? e.message : String(e) })
    })
  }
}
