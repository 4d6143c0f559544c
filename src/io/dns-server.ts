// Listener type `dns`: a small forwarding DNS server on UDP and TCP (one
// address and port). A query is answered locally when src/core/dns/local.ts
// says so (rules, static names, cache), else sent to the configured
// resolvers in order: UDP, again over TCP when the reply is truncated (or
// DNS over TLS for a tls:// resolver: src/io/dns-tls.ts), the next resolver on
// a timeout or error, SERVFAIL (and a warning) when none answers. Every answer given teaches ctx.names its addresses, so later
// connections to them are routed by name (src/io/outbound.ts).
//
// A DNS listener is an application, not relayed payload: its UDP socket is
// read in JS (native udpBind/recvFrom/sendTo). Replies leave from the
// address the query was sent to (a REDIRECTed query's conntrack entry only
// matches that source).

import * as native from 'ugate:native'
import { type Endpoint, formatHostPort } from '../core/address.js'
import { Cancel, CancelledError } from '../core/cancel.js'
import { type DnsListenerConfig, type DnsServer, formatDnsServer } from '../core/config.js'
import { StartupError } from '../core/errors.js'
import { DnsCache, DEFAULT_CACHE_LIMITS } from '../core/dns/cache.js'
import { StaticHosts } from '../core/dns/hosts.js'
import { answerLocally, answersQuery, clientReply, servfail } from '../core/dns/local.js'
import {
  type DnsMessage,
  DnsError,
  FLAG,
  HEADER_BYTES,
  decodeMessage,
  encodeMessage,
  encodeWithin,
  formErrBytes,
  messageId,
  rcodeOf,
  typeName,
  udpLimit,
} from '../core/dns/message.js'
import { ipKey } from '../core/ip.js'
import type { Fields } from '../core/log.js'
import { labelKey } from '../core/metrics.js'
import { allowList } from '../core/rules/cidr-tree.js'
import { DialError, dial } from './dial.js'
import { DotResolver } from './dns-tls.js'
import { cancelAfter, waitReadable } from './loop.js'
import type { DatagramSocket } from './listener.js'
import type { GatewayContext, Outcome, Session } from './session.js'
import { closeQuietly, describeError, errorCode } from './sockets.js'
import { EofError, HandshakeStream } from './stream.js'

/** Largest query datagram read; a larger one is dropped (no real query comes near it). */
const MAX_QUERY = 4096
/** Datagrams read per wake, so one busy socket cannot starve the loop. */
const UDP_BATCH = 64
/** Queries waiting for an upstream at once; more are dropped (each holds a socket). */
const MAX_PENDING = 256

/** Counters of one DNS listener since start (in `ugate ctl status`). */
export interface DnsCounters {
  queries: number
  /** Answered from the cache. */
  cached: number
  /** Answered by a rule (reject) or a static hosts entry. */
  local: number
  /** Asked upstream; of those, `failed` got no answer from any resolver (SERVFAIL). */
  forwarded: number
  failed: number
  malformed: number
  dropped: number
}

/** One configured `dns` listener: its cache, static names and counters (new on each reload). */
export class DnsService {
  private readonly counters: DnsCounters
  private readonly cache: DnsCache
  private readonly hosts: StaticHosts
  private readonly allowed: (addr: string) => boolean
  private pending = 0
  /** The tls:// resolvers' connections. */
  private readonly dot = new Map<DnsServer, DotResolver>()

  constructor(
    private readonly l: DnsListenerConfig,
    private readonly ctx: GatewayContext,
  ) {
    this.cache = new DnsCache({ ...DEFAULT_CACHE_LIMITS, maxEntries: l.cacheSize })
    this.hosts = new StaticHosts(l.hosts)
    this.allowed = allowList(l.allow)
    const known = ctx.stats.dns.get(l.name)
    this.counters = known ?? { queries: 0, cached: 0, local: 0, forwarded: 0, failed: 0, malformed: 0, dropped: 0 }
    if (!known) ctx.stats.dns.set(l.name, this.counters)
    if (l.servers.some((s) => s.transport === 'tls')) {
      let tls: native.TlsWebConfig
      try {
        tls = native.tlsWebConfig(l.caBundle)
      } catch (e) {
        throw new StartupError(`listener ${l.name}: caBundle (for its tls:// resolvers): ${describeError(e)}`)
      }
      ctx.log.debug('dns-tls-ca', { listener: l.name, file: l.caBundle, certificates: native.tlsConfigInfo(tls).roots })
      const o = { listener: l.name, timeoutMs: l.timeoutMs, mark: ctx.config.dial.mark, log: ctx.log }
      for (const s of l.servers) if (s.transport === 'tls') this.dot.set(s, new DotResolver(s, tls, o))
    }
  }

  /** A reload replaced this service: its DNS-over-TLS connections close once their queries are answered. */
  retire(): void {
    for (const d of this.dot.values()) d.retire()
  }

  /** The UDP socket is readable: answer what is waiting (a bounded batch). */
  readonly onDatagram = (sock: DatagramSocket): void => {
    for (let i = 0; i < UDP_BATCH; i++) {
      let d: native.Datagram | null
      try {
        d = native.recvFrom(sock.fd, MAX_QUERY)
      } catch (e) {
        // ICMP errors of earlier replies surface here (ECONNREFUSED); the socket is fine.
        this.ctx.log.debug('dns-recv-error', { listener: this.l.name, error: errorCode(e) })
        continue
      }
      if (d === null) return
      this.datagram(sock, d)
    }
  }

  private datagram(sock: DatagramSocket, d: native.Datagram): void {
    const src = formatHostPort(d.addr, d.port)
    if (!this.allowed(d.addr)) {
      this.counters.dropped++
      this.ctx.log.debug('denied', { listener: this.l.name, src, why: 'source not in allow list' })
      return
    }
    if (d.size > MAX_QUERY) return this.bad(src, `oversized datagram of ${d.size} bytes`)
    const send = (bytes: Uint8Array) => {
      if (!sock.open) return // the listener closed while the upstream answered
      try {
        native.sendTo(sock.fd, bytes, d.addr, d.port, d.local ?? undefined)
      } catch (e) {
        this.ctx.log.debug('dns-send-error', { listener: this.l.name, src, error: describeError(e) })
      }
    }
    const bytes = new Uint8Array(d.data)
    let query: DnsMessage
    try {
      query = decodeMessage(bytes)
    } catch (e) {
      if (!(e instanceof DnsError)) throw e
      this.bad(src, e.message)
      // A readable header that is not a response gets FORMERR (RFC 1035 §4.1.1).
      if (bytes.length >= HEADER_BYTES && !(bytes[2]! & 0x80)) send(formErrBytes(messageId(bytes)))
      return
    }
    this.answer(query, d.addr, src).then(
      (reply) => {
        if (reply !== null) send(encodeWithin(reply, udpLimit(query)))
      },
      (e: unknown) => this.ctx.log.error('internal-error', { listener: this.l.name, src, error: describeError(e) }),
    )
  }

  private bad(src: string, why: string): void {
    this.counters.malformed++
    this.ctx.log.debug('dns-bad', { listener: this.l.name, src, error: why })
  }

  /** The reply to a decoded query (null: none is sent), logged at debug level. */
  private async answer(q: DnsMessage, srcIp: string, src: string): Promise<DnsMessage | null> {
    const started = native.now()
    const decision = answerLocally(q, {
      rules: this.ctx.rules,
      listener: this.l.name,
      srcIp,
      hosts: this.hosts,
      cache: this.cache,
      rejectAddresses: this.l.rejectAddresses,
      nowMs: started,
    })
    if (decision.kind === 'drop') {
      this.counters.dropped++
      return null
    }
    this.counters.queries++
    let reply: DnsMessage
    let from: string
    let server: DnsServer | undefined
    if (decision.kind === 'reply') {
      reply = decision.reply
      from = decision.source
      if (from === 'cache') this.counters.cached++
      else if (from === 'static' || from === 'reject') this.counters.local++
      if (from !== 'reject') this.ctx.names.learn(reply, started)
    } else {
      if (this.pending >= MAX_PENDING) {
        this.counters.dropped++
        this.ctx.log.warn('dns-busy', { listener: this.l.name, src, pending: this.pending })
        return null
      }
      this.counters.forwarded++
      this.pending++
      let upstream: { reply: DnsMessage; server: DnsServer } | null
      try {
        upstream = await this.forward(q)
      } finally {
        this.pending--
      }
      if (upstream === null) {
        this.counters.failed++
        reply = servfail(q)
        from = 'servfail'
      } else {
        this.cache.store(upstream.reply, native.now())
        this.ctx.names.learn(upstream.reply, native.now())
        reply = clientReply(q, upstream.reply)
        from = 'upstream'
        server = upstream.server
      }
    }
    const ms = native.now() - started
    this.ctx.stats.dnsLatency.observe(labelKey(this.l.name, from), ms / 1000)
    if (this.ctx.log.enabled('debug')) {
      const question = q.questions[0]
      const fields: Fields = { listener: this.l.name, src }
      if (question !== undefined) {
        fields.name = question.name
        fields.type = typeName(question.type)
      }
      fields.rcode = rcodeOf(reply)
      fields.answers = reply.answers.length
      fields.from = from
      if (server !== undefined) fields.server = formatDnsServer(server)
      fields.cached = from === 'cache' ? 1 : 0
      if (decision.rule !== undefined) fields.rule = decision.rule
      fields.ms = Math.round(ms)
      this.ctx.log.debug('dns', fields)
    }
    return reply
  }

  /** Ask each resolver in turn; null when none answered. */
  private async forward(q: DnsMessage): Promise<{ reply: DnsMessage; server: DnsServer } | null> {
    const question = q.questions[0]!
    const errors: string[] = []
    for (const server of this.l.servers) {
      // A fresh id (and a fresh source port per socket) for every attempt.
      const sent: DnsMessage = { ...q, id: Math.floor(Math.random() * 0x10000) }
      try {
        const dot = this.dot.get(server)
        if (dot !== undefined) return { reply: await dot.exchange(q, this.l.timeoutMs), server }
        const reply = await this.exchangeUdp(server.endpoint, sent)
        if (!(reply.flags & FLAG.TC)) return { reply, server }
        return { reply: await this.exchangeTcp(server.endpoint, sent), server }
      } catch (e) {
        errors.push(`${formatDnsServer(server)} ${e instanceof CancelledError ? e.reason : describeError(e)}`)
      }
    }
    this.ctx.log.warn('dns-failed', {
      listener: this.l.name,
      name: question.name,
      type: typeName(question.type),
      error: errors.join('; '),
    })
    return null
  }

  /** One UDP query on its own socket; throws on timeout or a socket error. */
  private async exchangeUdp(server: Endpoint, sent: DnsMessage): Promise<DnsMessage> {
    const mark = this.ctx.config.dial.mark
    const fd = native.udpBind(server.kind === 'ipv6' ? '::' : '0.0.0.0', 0, mark > 0 ? { mark } : {})
    const wait = new Cancel()
    const stop = cancelAfter(wait, this.l.timeoutMs, 'timeout')
    const want = ipKey(server.host)
    try {
      native.sendTo(fd, encodeMessage(sent), server.host, server.port)
      for (;;) {
        await waitReadable(fd, wait)
        for (;;) {
          const d = native.recvFrom(fd, 65535)
          if (d === null) break
          // Anything but the resolver's answer to this very query is ignored (spoofing).
          if (ipKey(d.addr) !== want || d.port !== server.port) continue
          let reply: DnsMessage
          try {
            reply = decodeMessage(new Uint8Array(d.data))
          } catch (e) {
            if (e instanceof DnsError) continue
            throw e
          }
          if (answersQuery(sent, reply)) return reply
        }
      }
    } finally {
      stop()
      wait.release()
      closeQuietly(fd)
    }
  }

  /** One query over TCP (RFC 1035 §4.2.2: a 2-byte length before each message). */
  private async exchangeTcp(server: Endpoint, sent: DnsMessage): Promise<DnsMessage> {
    const wait = new Cancel()
    const stop = cancelAfter(wait, this.l.timeoutMs, 'timeout')
    let fd = -1
    try {
      const dialed = await dial(server.host, server.port, {
        timeoutMs: this.l.timeoutMs,
        mark: this.ctx.config.dial.mark,
        cancel: wait,
        log: this.ctx.log,
      })
      fd = dialed.fd
      const stream = new HandshakeStream(fd, wait)
      await stream.writeAll(frame(encodeMessage(sent)))
      const reply = decodeMessage(await readFrame(stream, wait))
      if (!answersQuery(sent, reply)) throw new DnsError('TCP reply does not answer the query')
      return reply
    } catch (e) {
      if (e instanceof DialError) throw new Error(`tcp ${e.reason}`)
      throw e
    } finally {
      stop()
      wait.release()
      if (fd >= 0) closeQuietly(fd)
    }
  }

  /** Handler of the listener's TCP connections: queries in turn until EOF or idle. */
  readonly serveTcp = async (s: Session): Promise<Outcome> => {
    s.handshakeDone() // the idle timer below bounds the connection instead
    let answered = 0
    for (;;) {
      // Each exchange (read, answer, write) must end within the idle time: a
      // client that stops sending, or stops reading its answers, is closed.
      // (limits.handshakeTimeout, default 10 s: RFC 7766 §6.2.3 suggests seconds.)
      const stop = cancelAfter(s.cancel, this.ctx.config.limits.handshakeTimeoutMs, 'idle')
      try {
        let bytes: Uint8Array
        try {
          bytes = await readFrame(s.stream, s.cancel)
        } catch (e) {
          s.fields.queries = answered
          if (e instanceof EofError && s.stream.buffered.length === 0) return { kind: 'close', reason: 'eof' }
          if (e instanceof CancelledError && e.reason === 'idle') return { kind: 'close', reason: 'idle' }
          throw e
        }
        let query: DnsMessage
        try {
          query = decodeMessage(bytes)
        } catch (e) {
          if (!(e instanceof DnsError)) throw e
          this.bad(s.src, e.message)
          s.fields.queries = answered
          if (bytes.length >= HEADER_BYTES) await s.stream.writeAll(frame(formErrBytes(messageId(bytes))))
          return { kind: 'close', reason: 'dns-formerr' }
        }
        const reply = await this.answer(query, s.client.addr, s.src)
        if (reply === null) continue
        await s.stream.writeAll(frame(encodeWithin(reply, 0xffff)))
        answered++
      } finally {
        stop()
      }
    }
  }
}

function frame(msg: Uint8Array): Uint8Array {
  const out = new Uint8Array(msg.length + 2)
  out[0] = msg.length >> 8
  out[1] = msg.length & 0xff
  out.set(msg, 2)
  return out
}

/** One length-prefixed message from a stream. */
async function readFrame(stream: HandshakeStream, cancel: Cancel): Promise<Uint8Array> {
  while (stream.buffered.length < 2) await stream.fill(0x10001, cancel)
  const len = (stream.buffered[0]! << 8) | stream.buffered[1]!
  while (stream.buffered.length < 2 + len) await stream.fill(0x10001, cancel)
  const msg = stream.buffered.slice(2, 2 + len)
  stream.consume(2 + len)
  return msg
}
