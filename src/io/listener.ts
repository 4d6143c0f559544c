// A listening socket that hands each accepted connection to a handler (and,
// for a listener that also speaks UDP, a datagram socket on the same port).
// Accepting is bounded per wake so one busy listener cannot starve the
// others, and pauses when out of fds instead of spinning on EMFILE.

import * as native from 'ugate:native'
import { type Endpoint, formatEndpoint, formatHostPort } from '../core/address.js'
import type { ListenerCommon } from '../core/config.js'
import { StartupError } from '../core/errors.js'
import type { Logger } from '../core/log.js'
import { closeQuietly, describeError, errorCode } from './sockets.js'

/** An accepted client socket: the handler owns `fd` from here on. */
/**
 * The fields every pseudo listener shares: connections this gate dialed to a
 * relay (a reverse tunnel's streams, an SNI relay's parked connections)
 * belong to one for the rules and the access line. It listens nowhere:
 * `listen` names the relay, and any source is allowed.
 */
export function dialedListener(name: string, relay: Endpoint): ListenerCommon {
  return { name, listen: relay, backlog: 1, allow: ['0.0.0.0/0', '::/0'] }
}

export interface Accepted {
  fd: number
  addr: string
  port: number
  family: 4 | 6
}

export interface ListenerOptions {
  name: string
  type: string
  listen: Endpoint
  backlog: number
  log: Logger
  onAccept: (client: Accepted) => void
  /** Also bind a UDP socket on the same address and port; called whenever it is readable. */
  onDatagram?: (sock: DatagramSocket) => void
  /** IP_TRANSPARENT: takes TPROXYed connections (a tproxy listener's TCP side). */
  transparent?: boolean
}

/**
 * A listener's UDP socket. An answer finished after the listener closed
 * must check `open`: the fd number may already belong to another socket.
 */
export interface DatagramSocket {
  readonly fd: number
  readonly open: boolean
}

export interface Listener {
  readonly name: string
  readonly type: string
  /** The address actually bound (port 0 resolved to the real port). */
  readonly bound: native.SockAddr
  /**
   * Serve it in C (native.forwardServe: a native forward or SOCKS handshake),
   * or with onAccept again (null). Called on start and on every reload.
   */
  serveNative(opts: native.GateOptions | null): void
  /** Stop accepting; pending connections in the backlog are reset by the kernel. */
  close(): void
}

const ACCEPT_BATCH = 64
const PAUSE_MS = 1000
/** Out of fds or memory: retrying at once would spin. */
const RESOURCE_ERRORS = new Set(['EMFILE', 'ENFILE', 'ENOBUFS', 'ENOMEM'])

/** Bind, listen and start accepting; throws StartupError when the address cannot be bound. */
export function openListener(o: ListenerOptions): Listener {
  let fd: number
  try {
    fd = native.listen(o.listen.host, o.listen.port, o.backlog, o.transparent === true)
  } catch (e) {
    throw new StartupError(`listener "${o.name}" cannot listen on ${formatEndpoint(o.listen)}: ${describeError(e)}`)
  }
  const bound = native.localAddress(fd)
  let udp: { fd: number; open: boolean } | null = null
  if (o.onDatagram) {
    const onDatagram = o.onDatagram
    try {
      udp = { fd: native.udpBind(o.listen.host, bound.port), open: true }
    } catch (e) {
      closeQuietly(fd)
      throw new StartupError(
        `listener "${o.name}" cannot bind UDP ${formatHostPort(o.listen.host, bound.port)}: ${describeError(e)}`,
      )
    }
    const sock = udp
    native.watch(sock.fd, native.EV_READ, () => onDatagram(sock))
  }
  let closed = false
  let pauseTimer: number | null = null
  let servedNatively = false

  // One native call per wake accepts the whole backlog (up to ACCEPT_BATCH);
  // native.acceptBatch skips the errors of one aborted connection.
  const acceptBatch = () => {
    let clients: Accepted[]
    try {
      clients = native.acceptBatch(fd, ACCEPT_BATCH)
    } catch (e) {
      pause(e)
      return
    }
    for (const client of clients) handOver(client)
  }

  const handOver = (client: Accepted) => {
    try {
      o.onAccept(client)
    } catch (e) {
      // A handler bug must not stop the listener; the handler owned the fd, so it is left alone.
      o.log.error('handler-failed', { name: o.name, error: describeError(e) })
    }
  }

  const pause = (e: unknown) => {
    native.unwatch(fd)
    const fields = { name: o.name, error: errorCode(e), ms: PAUSE_MS }
    if (RESOURCE_ERRORS.has(errorCode(e))) o.log.warn('accept-paused', fields)
    else o.log.error('accept-paused', fields)
    pauseTimer = native.setTimeout(() => {
      pauseTimer = null
      if (!closed) native.watch(fd, native.EV_READ, acceptBatch)
    }, PAUSE_MS)
  }

  const clearPause = () => {
    if (pauseTimer !== null) native.clearTimeout(pauseTimer)
    pauseTimer = null
  }

  native.watch(fd, native.EV_READ, acceptBatch)
  o.log.info('listening', { name: o.name, type: o.type, addr: formatHostPort(bound.addr, bound.port) })

  return {
    name: o.name,
    type: o.type,
    bound,
    serveNative(opts) {
      if (closed) return
      clearPause()
      if (opts !== null) {
        native.forwardServe(fd, opts) // replaces the JS watch
        servedNatively = true
      } else if (servedNatively) {
        native.forwardStop(fd)
        servedNatively = false
        native.watch(fd, native.EV_READ, acceptBatch)
      }
    },
    close() {
      if (closed) return
      closed = true
      clearPause()
      if (servedNatively) native.forwardStop(fd)
      closeQuietly(fd)
      if (udp !== null) {
        udp.open = false
        closeQuietly(udp.fd)
      }
    },
  }
}
