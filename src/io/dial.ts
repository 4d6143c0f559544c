// Outbound connections: resolve the host (unless it is an IP literal), then
// try its addresses in order until one connects. Each attempt has its own
// timeout. Every fd opened here is closed again unless it is returned.

import * as native from 'ugate:native'
import { formatHostPort } from '../core/address.js'
import { isIpLiteral } from '../core/ip.js'
import { Histograms, RESOLVE_BUCKETS } from '../core/metrics.js'
import { Cancel, CancelledError } from '../core/cancel.js'
import type { Logger } from '../core/log.js'
import { cancelAfter, waitWritable } from './loop.js'
import { closeQuietly, describeError, errorCode } from './sockets.js'

/** Why a dial failed, as the access line's reason: 'connect-error:ECONNREFUSED', 'connect-timeout', 'dns-error', 'dns-timeout', or the cancel reason ('shutdown'). */
export class DialError extends Error {
  readonly reason: string
  constructor(reason: string, detail?: string) {
    super(detail === undefined ? reason : `${reason}: ${detail}`)
    this.name = 'DialError'
    this.reason = reason
  }
}

export interface DialOptions {
  /** Per address attempt, and for the DNS lookup. */
  timeoutMs: number
  /** SO_MARK; 0 = none. */
  mark: number
  /** Cancelling it (e.g. with 'shutdown') ends the dial with that reason. */
  cancel: Cancel
  log: Logger
  /** Addresses never to connect to (ugate's own listeners: a loop); reason 'loop'. */
  refuse?: (addr: string, port: number) => boolean
}

export interface Dialed {
  fd: number
  /** The address that answered, IP:PORT. */
  addr: string
}

/** Connect to host:port; throws only DialError. */
export async function dial(host: string, port: number, opts: DialOptions): Promise<Dialed> {
  if (opts.cancel.cancelled) throw new DialError(opts.cancel.reason!)
  const addrs = isIpLiteral(host) ? [host] : await resolveHost(host, opts)
  let reason = 'connect-error'
  for (const addr of addrs) {
    if (opts.refuse?.(addr, port)) {
      reason = 'loop'
      opts.log.debug('connect-refused', { host, addr: formatHostPort(addr, port), reason })
      continue
    }
    const fd = await attempt(addr, port, opts)
    if (typeof fd === 'number') return { fd, addr: formatHostPort(addr, port) }
    reason = fd.reason
    opts.log.debug('connect-failed', { host, addr: formatHostPort(addr, port), reason })
  }
  throw new DialError(reason)
}

/**
 * result (ok, error) → seconds from each host name lookup's start to its
 * answer on the loop (/metrics ugate_resolve_duration_seconds). One per
 * process, as the resolver's worker threads (native/mod_dns.c).
 */
export const resolveLatency = new Histograms(RESOLVE_BUCKETS)

/**
 * native.resolve, timed: counted when the lookup completes, also when its
 * caller stopped waiting (dns-timeout, a cancel) — getaddrinfo runs on.
 */
export function lookup(host: string, cb: (err: string | null, addrs: string[]) => void): void {
  const start = native.now()
  native.resolve(host, (err, addrs) => {
    const ok = err === null && addrs.length > 0
    resolveLatency.observe(ok ? 'ok' : 'error', (native.now() - start) / 1000)
    cb(err, addrs)
  })
}

/** All addresses of `host`, in getaddrinfo's order (off the loop, within opts.timeoutMs). */
export function resolveHost(host: string, opts: Pick<DialOptions, 'timeoutMs' | 'cancel' | 'log'>): Promise<string[]> {
  return new Promise((ok, fail) => {
    let settled = false
    let off = () => {}
    const settle = (done: () => void) => {
      if (settled) return
      settled = true
      native.clearTimeout(timer)
      off()
      done()
    }
    const timer = native.setTimeout(() => settle(() => fail(new DialError('dns-timeout'))), opts.timeoutMs)
    off = opts.cancel.onCancel((reason) => settle(() => fail(new DialError(reason))))
    const failed = (error: string) => {
      opts.log.debug('dns-failed', { host, error })
      fail(new DialError('dns-error', error))
    }
    try {
      lookup(host, (err, addrs) => {
        settle(() => (err === null && addrs.length > 0 ? ok(addrs) : failed(err ?? 'no addresses')))
      })
    } catch (e) {
      settle(() => failed(describeError(e)))
    }
  })
}

/** One connect: the connected fd, or the failure to report if no later address works. */
async function attempt(addr: string, port: number, opts: DialOptions): Promise<number | DialError> {
  let fd: number
  try {
    fd = native.connect(addr, port, opts.mark > 0 ? { mark: opts.mark } : {})
  } catch (e) {
    return new DialError(`connect-error:${errorCode(e)}`)
  }
  const cancel = new Cancel(opts.cancel)
  const stopTimer = cancelAfter(cancel, opts.timeoutMs, 'connect-timeout')
  try {
    await waitWritable(fd, cancel)
    const err = native.socketError(fd)
    if (err === 0) return fd
    closeQuietly(fd)
    return new DialError(`connect-error:${native.errnoName(err)}`)
  } catch (e) {
    closeQuietly(fd)
    if (!(e instanceof CancelledError)) return new DialError(`connect-error:${errorCode(e)}`)
    if (e.reason === 'connect-timeout') return new DialError(e.reason)
    throw new DialError(e.reason) // cancelled from outside: stop trying other addresses
  } finally {
    stopTimer()
    cancel.release()
  }
}
