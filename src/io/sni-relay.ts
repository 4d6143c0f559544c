// Relay over SNI (docs/mesh.md): both ends. The protocol, the registry and
// the pool's arithmetic are runtime-free in src/core/sni-relay.ts; here are
// the sockets, the signatures (native/identity.c) and the timers.
//
// Relay: a `park` listener verifies each registration and keeps the socket
// parked; an `sni` listener with `pair` hands an incoming TLS connection and
// a parked one of the gate its SNI names to the native relay (the sniffed
// bytes, after a pair frame, are the relay's first bytes upstream).
// Gate: each `sniRelay` entry keeps `pool` connections parked at its relay;
// a paired one becomes a connection of a listener named after the entry,
// routed by its sniffed SNI through the rules, which must match explicitly.

import * as native from 'ugate:native'
import { formatEndpoint } from '../core/address.js'
import { Cancel, CancelledError } from '../core/cancel.js'
import type {
  MeshConfig,
  SniListenerConfig,
  SniRelayConfig,
  SniServedConfig,
  ParkListenerConfig,
} from '../core/config.js'
import { StartupError } from '../core/errors.js'
import { parseSpiffeId, validityProblem } from '../core/identity.js'
import {
  type GateId,
  MAX_FRAME,
  NONCE_BYTES,
  PoolTarget,
  SniRegistry,
  backoffMs,
  challengeFrame,
  decodeFrame,
  gateText,
  helloFrame,
  nameGranted,
  pairFrame,
  parseChallenge,
  parseHello,
  parsePair,
  parseRegister,
  parseVerdict,
  registerFrame,
  relayText,
  verdictFrame,
} from '../core/sni-relay.js'
import { concatBytes } from '../core/bytes.js'
import { DialError, dial } from './dial.js'
import { cancelAfter, waitReadable, waitWritable } from './loop.js'
import type { GatewayContext, Outcome, Session } from './session.js'
import { dialedListener } from './listener.js'
import { serveWith } from './session.js'
import { closeQuietly, describeError } from './sockets.js'

/**
 * TCP keepalive of parked connections (both ends): NATs forget idle mappings
 * (RFC 5382 allows it after 2 h 4 min; many sooner), and a gate or relay that
 * vanished without a FIN is noticed.
 */
const KEEPALIVE_S = 60

/** A gate's pool refills after this long without a pairing (RelayPool.refillWhenQuiet). */
const REFILL_QUIET_MS = 50

// ---- identity -------------------------------------------------------------------

/** This node's identity as the relay protocol uses it: PEM texts and names. */
export interface MeshIdentity {
  chain: string
  key: string
  roots: string
  spiffe: string
  nodeId: string
  trustDomain: string
}

function readPem(file: string): string {
  try {
    return native.readFile(file)
  } catch (e) {
    throw new StartupError(`${file}: cannot read: ${describeError(e)}`)
  }
}

/** Reads and checks the identity files; throws StartupError naming the file. */
function loadMeshIdentity(m: MeshConfig): MeshIdentity {
  const chain = readPem(m.certChain)
  const key = readPem(m.key)
  const roots = readPem(m.rootCert)
  const r = native.identityInspect(chain, roots, key)
  if ('error' in r) {
    const file = r.error === 'chain' ? m.certChain : r.error === 'root' ? m.rootCert : m.key
    throw new StartupError(`${file}: ${r.message}`)
  }
  if (r.verify !== '') throw new StartupError(`${m.certChain}: does not verify against ${m.rootCert}: ${r.verify}`)
  if (r.keyMatches !== true) throw new StartupError(`${m.key}: is not the private key of ${m.certChain}`)
  const leaf = r.certs[0]!
  const problem = validityProblem(m.certChain, leaf.notBefore, leaf.notAfter, native.wallClock())
  if (problem !== null) throw new StartupError(problem)
  const spiffe = leaf.uris.find((u) => 'id' in parseSpiffeId(u))
  if (spiffe === undefined) throw new StartupError(`${m.certChain}: no SPIFFE id in the certificate's URI SANs`)
  if (leaf.nodeId === null) throw new StartupError(`${m.certChain}: the certificate's key is not P-256`)
  return { chain, key, roots, spiffe, nodeId: leaf.nodeId, trustDomain: m.trustDomain }
}

/**
 * Chains that verified against our trust anchors, by anchors and chain: a
 * gate registers every connection it parks with the same chain, and each
 * verification is ECDSA on the loop thread, the thread that also pairs
 * (docs/mesh.md, Benchmark). Dates are checked on each use; bounded (valid
 * chains only).
 */
const trustedChains = new Map<string, native.CertInfo[]>()
const MAX_TRUSTED_CHAINS = 256

/**
 * A peer's chain and signature, checked against our trust anchors only:
 * the chain verifies and is valid now, its SPIFFE id is in our trust domain
 * (any the roots vouch for when that is '') and is `expect` when given, and
 * its key signed `signed`.
 */
function verifyPeer(
  me: MeshIdentity,
  chain: string,
  signed: Uint8Array,
  sig: Uint8Array,
  expect: string,
): { spiffe: string; nodeId: string } | Error {
  const key = `${me.roots}\n${chain}`
  let certs = trustedChains.get(key)
  if (certs === undefined) {
    const r = native.identityInspect(chain, me.roots)
    if ('error' in r) return new Error(`chain: ${r.message}`)
    if (r.verify !== '') return new Error(`chain not trusted: ${r.verify}`)
    certs = r.certs
    if (trustedChains.size >= MAX_TRUSTED_CHAINS) trustedChains.clear()
    trustedChains.set(key, certs)
  }
  for (const c of certs) {
    const problem = validityProblem('chain', c.notBefore, c.notAfter, native.wallClock())
    if (problem !== null) return new Error(problem)
  }
  const leaf = certs[0]!
  const ids = leaf.uris.flatMap((u) => {
    const p = parseSpiffeId(u)
    return 'id' in p ? [{ u, td: p.id.trustDomain }] : []
  })
  if (ids.length === 0) return new Error('no SPIFFE id in the certificate')
  const id = ids[0]!
  if (me.trustDomain !== '' && id.td !== me.trustDomain)
    return new Error(`${id.u} is not in trust domain ${me.trustDomain}`)
  if (expect !== '' && id.u !== expect) return new Error(`${id.u} is not the expected ${expect}`)
  if (leaf.nodeId === null) return new Error(`${id.u}: key is not P-256`)
  let good: boolean
  try {
    good = native.identityVerifySignature(chain, signed, sig)
  } catch (e) {
    return new Error(`signature: ${describeError(e)}`)
  }
  if (!good) return new Error(`${id.u}: bad signature`)
  return { spiffe: id.u, nodeId: leaf.nodeId }
}

// ---- exact frame I/O ------------------------------------------------------------------

/**
 * One frame read without reading past it: what follows may be a relayed
 * stream that is not ours to read.
 */
async function readFrame(fd: number, cancel: Cancel): Promise<Record<string, unknown>> {
  const exact = async (n: number): Promise<Uint8Array> => {
    const out = new Uint8Array(n)
    let off = 0
    while (off < n) {
      cancel.throwIfCancelled()
      const chunk = native.read(fd, n - off)
      if (chunk === null) {
        await waitReadable(fd, cancel)
        continue
      }
      if (chunk.byteLength === 0) throw new Error(off === 0 && n === 4 ? 'closed' : 'closed mid-frame')
      out.set(new Uint8Array(chunk), off)
      off += chunk.byteLength
    }
    return out
  }
  const head = await exact(4)
  const len = new DataView(head.buffer).getUint32(0)
  if (len === 0 || len > MAX_FRAME) throw new Error(`frame length ${len} (1-${MAX_FRAME})`)
  const r = decodeFrame(concatBytes([head, await exact(len)]))
  if (r.status !== 'ok') throw new Error(r.status === 'invalid' ? r.error : 'short frame')
  return r.value
}

async function writeAll(fd: number, bytes: Uint8Array, cancel: Cancel): Promise<void> {
  let off = 0
  while (off < bytes.length) {
    cancel.throwIfCancelled()
    const n = native.write(fd, off === 0 ? bytes : bytes.subarray(off))
    off += n
    if (n === 0) await waitWritable(fd, cancel)
  }
}

const must = <T>(v: T | Error): T => {
  if (v instanceof Error) throw v
  return v
}

// ---- relay side ---------------------------------------------------------------------

/** A registered connection waiting at the relay. */
interface Parked {
  fd: number
  src: string
  /** Ends its watch: it now belongs to a pairing. */
  claim(): void
  /** Ends it: its session closes it with this reason. */
  drop(reason: string): void
}

/** The relay's state, kept across reloads: a registry per park listener. */
export class RelayState {
  readonly registries = new Map<string, SniRegistry<Parked>>()
  identity: MeshIdentity | null = null

  registry(name: string): SniRegistry<Parked> | undefined {
    return this.registries.get(name)
  }

  /** After (re)load: a registry per park listener, with its limits; the identity when anything needs it. */
  configure(ctx: GatewayContext): void {
    const parks = ctx.config.listeners.filter((l): l is ParkListenerConfig => l.type === 'park')
    // First: a bad identity file leaves everything as it was.
    const mesh = ctx.config.mesh // validateConfig requires it for parks and sniRelay entries
    const identity =
      mesh !== null && (parks.length > 0 || ctx.config.sniRelay.length > 0) ? loadMeshIdentity(mesh) : null
    for (const p of parks) {
      // The sni listeners pairing with it bound the waiters together.
      const waiting = ctx.config.listeners.reduce(
        (n, l) => n + (l.type === 'sni' && l.pair === p.name ? l.maxWaiting : 0),
        0,
      )
      const reg = this.registries.get(p.name)
      const suffix = mesh?.nodeSuffix ?? ''
      if (reg) reg.setLimits(p.maxParked, waiting, suffix)
      else this.registries.set(p.name, new SniRegistry<Parked>(p.maxParked, waiting, suffix))
    }
    for (const [name, reg] of this.registries) {
      if (parks.some((p) => p.name === name)) continue
      for (const c of reg.all()) c.drop('listener-removed')
      this.registries.delete(name)
    }
    this.identity = identity
  }
}

/** Handler of a `park` listener: verify the registration, then park the socket until it is paired. */
export async function servePark(s: Session, ctx: GatewayContext): Promise<Outcome> {
  const l = s.listener
  if (l.type !== 'park') throw new Error(`servePark on a ${l.type} listener`)
  const me = ctx.relayState.identity!
  const reg = ctx.relayState.registry(l.name)!
  const fd = s.client.fd
  let gate: GateId
  try {
    const hello = must(parseHello(await readFrame(fd, s.cancel)))
    const nonce = native.randomBytes(NONCE_BYTES)
    const sig = native.identitySign(me.key, relayText(hello.nonce, nonce))
    await writeAll(fd, challengeFrame({ nonce, chain: me.chain, sig }), s.cancel)
    const r = must(parseRegister(await readFrame(fd, s.cancel)))
    const who = must(verifyPeer(me, r.chain, gateText(nonce, hello.nonce, r.names), r.sig, ''))
    const granted = l.grants[who.spiffe] ?? []
    const extra = r.names.find((n) => !nameGranted(n, granted))
    if (extra !== undefined) throw new Error(`${who.spiffe} may not register ${extra}`)
    gate = { spiffe: who.spiffe, nodeId: who.nodeId, names: r.names }
  } catch (e) {
    if (e instanceof CancelledError) throw e
    const why = describeError(e)
    ctx.log.warn('sni-relay-refused', { listener: l.name, src: s.src, why })
    s.fields.why = why
    // The verdict is best effort: the gate may be gone, and the socket is closed anyway.
    native.write(fd, verdictFrame({ ok: false, error: why }))
    return { kind: 'close', reason: 'registration-refused' }
  }
  s.fields.node = gate.nodeId
  s.fields.id = gate.spiffe
  native.keepalive(fd, KEEPALIVE_S)
  await writeAll(fd, verdictFrame({ ok: true, node: gate.nodeId }), s.cancel)
  s.handshakeDone()
  const parked = new Cancel(s.cancel)
  let claimed = false
  const conn: Parked = {
    fd,
    src: s.src,
    claim: () => {
      claimed = true
      parked.cancel('paired')
    },
    drop: (reason) => parked.cancel(reason),
  }
  const result = reg.park(gate, conn)
  if (typeof result === 'object') {
    ctx.log.warn('sni-relay-refused', { listener: l.name, src: s.src, node: gate.nodeId, why: result.refused })
    parked.release()
    return { kind: 'close', reason: 'registration-refused' }
  }
  ctx.log.debug('sni-relay-parked', { listener: l.name, src: s.src, node: gate.nodeId, names: gate.names.join(',') })
  if (result === 'paired') return { kind: 'handed', reason: 'paired' }
  try {
    // Anything from a parked gate (its FIN or stray bytes) ends it: it is not paired yet.
    await waitReadable(fd, parked)
    reg.remove(conn)
    return { kind: 'close', reason: 'gate-closed' }
  } catch (e) {
    if (claimed) return { kind: 'handed', reason: 'paired' }
    reg.remove(conn)
    throw e
  } finally {
    parked.release()
  }
}

/**
 * An `sni` listener with `pair`: the incoming TLS connection whose SNI names
 * a registered gate goes to one of its parked connections, waiting up to
 * pairTimeout for one; otherwise it is refused. Never routed by the rules.
 */
export async function pairIncoming(
  s: Session,
  ctx: GatewayContext,
  l: SniListenerConfig,
  sni: string,
): Promise<Outcome> {
  const reg = ctx.relayState.registry(l.pair)!
  const unpaired = (why: string): Outcome => {
    ctx.log.warn('sni-relay-unpaired', { listener: l.name, src: s.src, sni, why })
    s.fields.why = why
    return { kind: 'close', reason: 'unpaired', reset: true }
  }
  let got = reg.take(sni)
  if (got === undefined) {
    const wait = new Cancel(s.cancel)
    const stopTimer = cancelAfter(wait, l.pairTimeoutMs, 'pair-timeout')
    let stopWaiting: (() => void) | null = null
    try {
      got = await new Promise<{ conn: Parked; gate: GateId } | { refused: string } | undefined>((resolve, reject) => {
        stopWaiting = reg.wait(
          sni,
          (conn, gate) => resolve({ conn, gate }),
          (refused) => resolve({ refused }),
        )
        if (stopWaiting === null) return resolve(undefined)
        wait.onCancel((reason) => (reason === 'pair-timeout' ? resolve(undefined) : reject(new CancelledError(reason))))
      })
    } finally {
      ;(stopWaiting as (() => void) | null)?.()
      stopTimer()
      wait.release()
    }
    if (got === undefined)
      return unpaired(stopWaiting === null ? `${l.maxWaiting} already waiting` : `none within ${l.pairTimeoutMs} ms`)
  }
  if ('refused' in got) return unpaired(got.refused)
  got.conn.claim()
  s.fields.node = got.gate.nodeId
  s.fields.via = `park:${got.conn.src}`
  s.handshakeDone()
  const up = concatBytes([pairFrame({ src: s.src, sni }), s.stream.takeRest()])
  return { kind: 'relay', upstream: got.conn.fd, up }
}

// ---- gate side ----------------------------------------------------------------------

/** The pseudo listener a relayed connection belongs to: what the rules and the access line see. */
function relayedListener(r: SniRelayConfig): SniServedConfig {
  return { ...dialedListener(r.name, r.relay), type: 'sni' }
}

/** One relay's pool of parked connections. */
class RelayPool {
  private readonly parked = new Set<{ fd: number; cancel: Cancel }>()
  private connecting = 0
  private failures = 0
  private retryTimer: number | null = null
  private tickTimer: number | null = null
  private refillTimer: number | null = null
  private up = false
  private stopped = false
  readonly target: PoolTarget
  /** Pair frames of connections handed to the session, by fd. */
  private readonly pairs = new Map<number, { src: string; sni: string }>()
  private readonly accept: (c: { fd: number; addr: string; port: number; family: 4 | 6 }) => void

  constructor(
    private cfg: SniRelayConfig,
    private readonly ctx: GatewayContext,
    private readonly stopAll: Cancel,
    serve: (pair: { src: string; sni: string }) => (s: Session, ctx: GatewayContext) => Promise<Outcome>,
  ) {
    this.target = new PoolTarget(cfg.pool, cfg.maxPool)
    this.accept = serveWith(
      (s, c) => {
        const pair = this.pairs.get(s.client.fd)!
        this.pairs.delete(s.client.fd)
        return serve(pair)(s, c)
      },
      relayedListener(cfg),
      ctx,
    )
    const tick = () => {
      this.target.tick(native.now())
      this.trim()
      this.tickTimer = native.setTimeout(tick, 10_000)
    }
    this.tickTimer = native.setTimeout(tick, 10_000)
    this.fill()
  }

  get where(): string {
    return formatEndpoint(this.cfg.relay)
  }

  status(): { name: string; relay: string; parked: number; target: number; up: boolean; failures: number } {
    return {
      name: this.cfg.name,
      relay: this.where,
      parked: this.parked.size,
      target: this.target.target,
      up: this.up,
      failures: this.failures,
    }
  }

  stop(): void {
    this.stopped = true
    if (this.retryTimer !== null) native.clearTimeout(this.retryTimer)
    if (this.tickTimer !== null) native.clearTimeout(this.tickTimer)
    if (this.refillTimer !== null) native.clearTimeout(this.refillTimer)
    for (const p of this.parked) p.cancel.cancel('stopped')
  }

  /** More parked connections up to the target, unless waiting out a backoff. */
  private fill(): void {
    while (!this.stopped && this.retryTimer === null && this.parked.size + this.connecting < this.target.target) {
      this.connecting++
      this.open().then(
        () => {},
        (e: unknown) => this.ctx.log.error('internal-error', { relay: this.where, error: describeError(e) }),
      )
    }
  }

  /** Over the target (it shrank): close the extra parked ones. */
  private trim(): void {
    for (const p of this.parked) {
      if (this.parked.size <= this.target.target) break
      p.cancel.cancel('trim')
    }
  }

  private failed(why: string): void {
    this.failures++
    const delay = backoffMs(this.failures, this.cfg.retryMs, this.cfg.retryMaxMs, Math.random())
    if (this.up || this.failures === 1)
      this.ctx.log.warn('sni-relay-down', { relay: this.where, name: this.cfg.name, why, retryMs: delay })
    this.up = false
    if (this.retryTimer === null && !this.stopped) {
      this.retryTimer = native.setTimeout(() => {
        this.retryTimer = null
        this.fill()
      }, delay)
    }
  }

  private async open(): Promise<void> {
    const me = this.ctx.relayState.identity!
    const cancel = new Cancel(this.stopAll)
    const stopTimer = cancelAfter(cancel, this.ctx.config.limits.handshakeTimeoutMs, 'handshake-timeout')
    let fd = -1
    try {
      const d = await dial(this.cfg.relay.host, this.cfg.relay.port, {
        timeoutMs: this.ctx.config.dial.connectTimeoutMs,
        mark: this.ctx.config.dial.mark,
        cancel,
        log: this.ctx.log,
      })
      fd = d.fd
      const nonce = native.randomBytes(NONCE_BYTES)
      await writeAll(fd, helloFrame({ nonce }), cancel)
      const ch = must(parseChallenge(await readFrame(fd, cancel)))
      must(verifyPeer(me, ch.chain, relayText(nonce, ch.nonce), ch.sig, this.cfg.relayId))
      const names = this.cfg.names
      const sig = native.identitySign(me.key, gateText(ch.nonce, nonce, names))
      await writeAll(fd, registerFrame({ chain: me.chain, names, sig }), cancel)
      const v = must(parseVerdict(await readFrame(fd, cancel)))
      if (!v.ok) throw new Error(`refused: ${v.error}`)
      native.keepalive(fd, KEEPALIVE_S)
    } catch (e) {
      stopTimer()
      cancel.release()
      this.connecting--
      if (fd >= 0) closeQuietly(fd)
      if (this.stopped) return
      this.failed(e instanceof DialError ? e.message : describeError(e))
      return
    }
    stopTimer()
    this.connecting--
    this.failures = 0
    if (!this.up) this.ctx.log.info('sni-relay-registered', { relay: this.where, name: this.cfg.name, node: me.nodeId })
    this.up = true
    const entry = { fd, cancel }
    this.parked.add(entry)
    this.fill()
    let pair: { src: string; sni: string }
    try {
      pair = must(parsePair(await readFrame(fd, cancel)))
    } catch (e) {
      this.parked.delete(entry)
      cancel.release()
      closeQuietly(fd)
      if (this.stopped || (e instanceof CancelledError && e.reason === 'trim')) return
      // The relay closed it (restart, or it dropped it): register again.
      this.failed(describeError(e))
      return
    }
    this.parked.delete(entry)
    cancel.release()
    this.target.paired(this.parked.size, native.now())
    this.pairs.set(fd, pair)
    const peer = native.peerAddress(fd)
    this.accept({ fd, addr: peer.addr, port: peer.port, family: peer.family })
    this.refillWhenQuiet()
  }

  /**
   * After a pairing: refill once pairings pause for REFILL_QUIET_MS, or at
   * once when none is left parked. A registration costs ECDSA signatures and
   * verifications on the loop threads of both ends, the threads that pair
   * the next connection: refilled after each pairing, it held up the next
   * setup by 20-30 ms (bench/mesh-relay.sh, docs/mesh.md).
   */
  private refillWhenQuiet(): void {
    if (this.refillTimer !== null) native.clearTimeout(this.refillTimer)
    this.refillTimer = null
    if (this.parked.size + this.connecting === 0) return this.fill()
    this.refillTimer = native.setTimeout(() => {
      this.refillTimer = null
      this.fill()
    }, REFILL_QUIET_MS)
  }
}

/** The gate's pools, one per sniRelay entry; rebuilt on reload when the entries change. */
export class GatePools {
  private pools: RelayPool[] = []
  private key = ''
  private stopAll = new Cancel()

  constructor(
    private readonly serve: (pair: {
      src: string
      sni: string
    }) => (s: Session, ctx: GatewayContext) => Promise<Outcome>,
  ) {}

  configure(ctx: GatewayContext): void {
    const key = JSON.stringify(ctx.config.sniRelay) + JSON.stringify(ctx.config.mesh)
    if (key === this.key) return
    this.stop()
    this.key = key
    this.stopAll = new Cancel()
    this.pools = ctx.config.sniRelay.map((r) => new RelayPool(r, ctx, this.stopAll, this.serve))
  }

  stop(): void {
    for (const p of this.pools) p.stop()
    this.stopAll.cancel('shutdown')
    this.pools = []
    this.key = ''
  }

  status() {
    return this.pools.map((p) => p.status())
  }
}
