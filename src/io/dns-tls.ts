// A dns listener's DNS-over-TLS resolver (RFC 7858, "tls://[NAME@]IP[:PORT]"):
// one connection, opened by the first query and kept while queries come
// (closed after IDLE_MS without one, or when the server closes it); queries
// are pipelined on it and each answer is matched by its id and question
// (RFC 7766 6.2.1.1). The TLS — handshake, records, the certificate checked
// against the listener's CA bundle and the resolver's name or address — and
// the length framing are native/mod_dot.c's; here: the dial, ids, timeouts,
// and one retry of the queries a server's close left unanswered.

import * as native from 'ugate:native'
import { Cancel, CancelledError } from '../core/cancel.js'
import { type DnsServer, formatDnsServer } from '../core/config.js'
import { answersQuery } from '../core/dns/local.js'
import { type DnsMessage, DnsError, decodeMessage, encodeMessage, messageId } from '../core/dns/message.js'
import type { Logger } from '../core/log.js'
import { DialError, dial } from './dial.js'
import { closeQuietly, describeError } from './sockets.js'

/** An idle connection is closed after this long (servers close theirs after 10 s to minutes). */
const DOT_IDLE_MS = 30_000

export interface DotOptions {
  listener: string
  /** The listener's query timeout, also the TCP connect's. */
  timeoutMs: number
  /** SO_MARK of the connection; 0 = none. */
  mark: number
  log: Logger
}

interface Waiter {
  sent: DnsMessage
  bytes: Uint8Array
  resolve: (reply: DnsMessage) => void
  reject: (e: Error) => void
  timer: number
  /** Already sent again after a connection the server closed. */
  retried: boolean
}

interface Conn {
  /** mod_dot's id; -1 while the TCP connection is dialed. */
  id: number
  ready: boolean
  /** Queries waiting for the dial. */
  queue: Waiter[]
  cancel: Cancel
  openedMs: number
  answered: number
}

export class DotResolver {
  private conn: Conn | null = null
  /** By DNS id: the queries sent on `conn` (or waiting for it). */
  private readonly waiting = new Map<number, Waiter>()
  private idleTimer = -1
  private retired = false
  readonly label: string

  constructor(
    private readonly server: DnsServer,
    private readonly tls: native.TlsWebConfig,
    private readonly o: DotOptions,
  ) {
    this.label = formatDnsServer(server)
  }

  /** The answer to `q` (sent with a fresh id); throws on timeout or when the connection fails. */
  exchange(q: DnsMessage, timeoutMs: number): Promise<DnsMessage> {
    let id: number
    do id = Math.floor(Math.random() * 0x10000)
    while (this.waiting.has(id))
    const sent: DnsMessage = { ...q, id }
    return new Promise((resolve, reject) => {
      const w: Waiter = { sent, bytes: encodeMessage(sent), resolve, reject, timer: -1, retried: false }
      w.timer = native.setTimeout(() => this.timedOut(id), timeoutMs)
      this.waiting.set(id, w)
      this.stopIdle()
      this.send(w)
    })
  }

  /** The listener was reloaded: close the connection once its queries are answered. */
  retire(): void {
    this.retired = true
    if (this.waiting.size === 0) this.drop('retired')
  }

  private send(w: Waiter): void {
    const c = this.conn ?? this.open()
    if (c.id < 0) {
      c.queue.push(w)
      return
    }
    try {
      native.dotSend(c.id, w.bytes)
    } catch (e) {
      this.settle(w.sent.id, new Error(`tls ${describeError(e)}`))
    }
  }

  private open(): Conn {
    const c: Conn = { id: -1, ready: false, queue: [], cancel: new Cancel(), openedMs: native.now(), answered: 0 }
    this.conn = c
    const { host, port } = this.server.endpoint
    dial(host, port, { timeoutMs: this.o.timeoutMs, mark: this.o.mark, cancel: c.cancel, log: this.o.log }).then(
      ({ fd }) => {
        if (this.conn !== c) return closeQuietly(fd)
        try {
          c.id = native.dotOpen(fd, this.tls, this.server.tlsName || host, (ev) => this.onEvent(c, ev))
        } catch (e) {
          closeQuietly(fd)
          return this.lost(c, describeError(e), false)
        }
        for (const w of c.queue.splice(0)) if (this.waiting.get(w.sent.id) === w) this.send(w)
      },
      (e: unknown) => this.lost(c, e instanceof DialError ? `tcp ${e.reason}` : describeError(e), false),
    )
    return c
  }

  private onEvent(c: Conn, ev: native.DotEvent): void {
    if (ev.ready) {
      c.ready = true
      this.o.log.debug('dns-tls-open', {
        listener: this.o.listener,
        server: this.label,
        ms: Math.round(native.now() - c.openedMs),
      })
    }
    for (const buf of ev.answers ?? []) {
      const bytes = new Uint8Array(buf)
      let reply: DnsMessage
      try {
        reply = decodeMessage(bytes)
      } catch (e) {
        if (!(e instanceof DnsError)) throw e
        this.o.log.debug('dns-bad', { listener: this.o.listener, server: this.label, error: e.message })
        continue
      }
      const w = this.waiting.get(messageId(bytes))
      // A late answer (its query timed out) or one that does not answer it is dropped.
      if (w === undefined || !answersQuery(w.sent, reply)) continue
      c.answered++
      this.settle(reply.id, reply)
    }
    if (ev.closed !== undefined) this.lost(c, ev.closed === '' ? 'closed by the server' : ev.closed, ev.closed === '')
  }

  /** The connection ended (closed in C already, or never opened). */
  private lost(c: Conn, why: string, byServer: boolean): void {
    if (this.conn !== c) return
    this.conn = null
    c.cancel.cancel('closed')
    this.stopIdle()
    this.o.log.debug('dns-tls-closed', {
      listener: this.o.listener,
      server: this.label,
      answered: c.answered,
      reason: why,
    })
    // A server may close an idle connection just as a query leaves: those get one more try.
    const again: Waiter[] = []
    for (const w of [...this.waiting.values()]) {
      if (byServer && c.answered > 0 && !w.retried) {
        w.retried = true
        again.push(w)
      } else {
        this.settle(w.sent.id, new Error(c.ready ? `tls ${why}` : `tls handshake: ${why}`))
      }
    }
    for (const w of again) this.send(w)
  }

  private timedOut(id: number): void {
    const c = this.conn
    this.settle(id, new CancelledError('timeout'))
    // No handshake within a query's time: the connection is no good.
    if (c !== null && !c.ready) this.drop('handshake timeout')
  }

  private settle(id: number, result: DnsMessage | Error): void {
    const w = this.waiting.get(id)
    if (w === undefined) return
    this.waiting.delete(id)
    native.clearTimeout(w.timer)
    if (result instanceof Error) w.reject(result)
    else w.resolve(result)
    if (this.waiting.size === 0 && this.conn !== null) {
      if (this.retired) this.drop('retired')
      else
        this.idleTimer = native.setTimeout(() => {
          this.idleTimer = -1
          this.drop('idle')
        }, DOT_IDLE_MS)
    }
  }

  private stopIdle(): void {
    if (this.idleTimer >= 0) native.clearTimeout(this.idleTimer)
    this.idleTimer = -1
  }

  /** Close our side: the waiting queries fail with `why`. */
  private drop(why: string): void {
    const c = this.conn
    if (c === null) return
    if (c.id >= 0) native.dotClose(c.id)
    this.lost(c, why, false)
  }
}
