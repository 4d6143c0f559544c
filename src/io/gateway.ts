// Runs a Config: opens every listener, tracks live connections and drives
// the shutdown on SIGINT/SIGTERM. The process exits from the callback that
// ends the last connection; nothing polls.

import * as native from 'ugate:native'
import type { Config, ListenerConfig } from '../core/config.js'
import { ConnTracker } from '../core/conn-tracker.js'
import type { Logger } from '../core/log.js'
import { type HandlerContext, forwardHandler } from './forward.js'
import { type Accepted, type Listener, openListener } from './listener.js'

export interface Gateway {
  /** What SIGINT/SIGTERM do; a second call stops waiting for relays. */
  shutdown(signal: string): void
}

/** Start serving; throws StartupError (with every opened listener closed) if one cannot listen. */
export function startGateway(config: Config, log: Logger): Gateway {
  const conns = new ConnTracker()
  const ctx: HandlerContext = { relay: config.relay, dial: config.dial, log, conns }
  const listeners: Listener[] = []
  try {
    for (const l of config.listeners) {
      const { name, type, listen, backlog } = l
      listeners.push(openListener({ name, type, listen, backlog, log, onAccept: handlerFor(l, ctx) }))
    }
  } catch (e) {
    for (const l of listeners) l.close()
    throw e
  }
  log.info('ready', { listeners: listeners.length })

  let stopping = false
  const shutdown = (signal: string) => {
    if (stopping) {
      log.warn('shutdown-forced', { signal, live: conns.size })
      native.relayAbortAll()
      return
    }
    stopping = true
    for (const l of listeners) l.close()
    const graceMs = config.relay.shutdownGraceMs
    log.info('stopping', { signal, live: conns.size, graceMs })
    conns.cancelDialing('shutdown')
    // Relays get the grace period to finish on their own, then are closed.
    const graceTimer = native.setTimeout(() => native.relayAbortAll(), graceMs)
    conns.onIdle(() => {
      native.clearTimeout(graceTimer)
      stopped()
    })
  }

  const stopped = () => {
    const s = native.relayStats()
    log.info('stats', { relays: s.total, spliceCalls: s.spliceCalls, copyCalls: s.copyCalls })
    log.info('stopped')
    native.exit(0)
  }

  native.onSignal(native.SIGINT, () => shutdown('SIGINT'))
  native.onSignal(native.SIGTERM, () => shutdown('SIGTERM'))
  return { shutdown }
}

/** The accept handler for a listener's type; new types add a case. */
function handlerFor(l: ListenerConfig, ctx: HandlerContext): (client: Accepted) => void {
  switch (l.type) {
    case 'forward':
      return forwardHandler(l, ctx)
  }
}
