// Relay over SNI, runtime-free: the registration protocol's frames and the
// texts that are signed, which names a gate may register, the relay's
// registry of parked connections (pairing by SNI, bounded waiters), the
// gate's pool size and its reconnect backoff. Sockets, timers and crypto are
// src/io/sni-relay.ts's.
//
// A NAT-ed gate opens plain TCP connections to the relay and parks them:
//
//   gate  → relay  hello     {v, nonce: Ng}
//   relay → gate   challenge {v, nonce: Nr, chain, sig: relay's key over relayText(Ng, Nr)}
//   gate  → relay  register  {chain, names, sig: gate's key over gateText(Nr, Ng, names)}
//   relay → gate   verdict   {ok: true, node} | {error}
//   ... parked ...
//   relay → gate   pair      {src, sni}, then the client's bytes, spliced
//
// Each frame is a 4-byte big-endian length and a JSON object. Both nonces
// are fresh random bytes per connection, so a captured header signs a
// challenge no relay will ever send again: it cannot be replayed, and the
// gate knows the relay holds the key of the identity it expects.

import { hostNameProblem } from './address.js'
import { base64Decode, base64Encode, utf8Decode, utf8Encode } from './bytes.js'
import { show } from './errors.js'
import { nodeNameProblem } from './node-name.js'
import type { Invalid, NeedMore, Parsed } from './parse-result.js'

const PROTOCOL_VERSION = 1
/** A frame holds at most a certificate chain and a few names. */
export const MAX_FRAME = 32 * 1024
/** Bytes of each side's nonce. */
export const NONCE_BYTES = 32
/** Names one gate registers at most (besides its node id). */
const MAX_NAMES = 64

// ---- frames -------------------------------------------------------------------

export function encodeFrame(value: object): Uint8Array {
  const body = utf8Encode(JSON.stringify(value))
  const out = new Uint8Array(4 + body.length)
  new DataView(out.buffer).setUint32(0, body.length)
  out.set(body, 4)
  return out
}

/** One frame from the start of buf: a JSON object, or why not. */
export function decodeFrame(buf: Uint8Array): NeedMore | Invalid | Parsed<{ value: Record<string, unknown> }> {
  if (buf.length < 4) return { status: 'need-more' }
  const len = new DataView(buf.buffer, buf.byteOffset, 4).getUint32(0)
  if (len === 0 || len > MAX_FRAME) return { status: 'invalid', error: `frame length ${len} (1-${MAX_FRAME})` }
  if (buf.length < 4 + len) return { status: 'need-more' }
  const text = utf8Decode(buf, 4, 4 + len)
  if (text === null) return { status: 'invalid', error: 'frame is not UTF-8' }
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch {
    return { status: 'invalid', error: 'frame is not JSON' }
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    return { status: 'invalid', error: 'frame is not a JSON object' }
  return { status: 'ok', consumed: 4 + len, value: value as Record<string, unknown> }
}

// ---- messages -------------------------------------------------------------------

export interface Hello {
  nonce: Uint8Array
}
export interface Challenge {
  nonce: Uint8Array
  chain: string
  sig: Uint8Array
}
export interface Register {
  chain: string
  names: string[]
  sig: Uint8Array
}
export type Verdict = { ok: true; node: string } | { ok: false; error: string }
export interface Pair {
  /** The client's address as the relay saw it. */
  src: string
  sni: string
}

const hex = (b: Uint8Array): string => Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('')

function unhex(s: unknown, bytes: number, what: string): Uint8Array | string {
  if (typeof s !== 'string' || s.length !== bytes * 2 || !/^[0-9a-f]*$/.test(s))
    return `${what} is not ${bytes} bytes of lower-case hex`
  const out = new Uint8Array(bytes)
  for (let i = 0; i < bytes; i++) out[i] = parseInt(s.slice(2 * i, 2 * i + 2), 16)
  return out
}

function pem(s: unknown, what: string): string | Error {
  if (typeof s !== 'string' || !s.includes('-----BEGIN CERTIFICATE-----'))
    return new Error(`${what} is not a PEM chain`)
  return s
}

function signature(s: unknown): Uint8Array | Error {
  const b = typeof s === 'string' ? base64Decode(s) : null
  return b === null || b.length === 0 || b.length > 1024 ? new Error('sig is not a base64 signature') : b
}

export const helloFrame = (h: Hello) => encodeFrame({ v: PROTOCOL_VERSION, nonce: hex(h.nonce) })
export const challengeFrame = (c: Challenge) =>
  encodeFrame({ v: PROTOCOL_VERSION, nonce: hex(c.nonce), chain: c.chain, sig: base64Encode(c.sig) })
export const registerFrame = (r: Register) => encodeFrame({ chain: r.chain, names: r.names, sig: base64Encode(r.sig) })
export const verdictFrame = (v: Verdict) => encodeFrame(v.ok ? { ok: true, node: v.node } : { error: v.error })
export const pairFrame = (p: Pair) => encodeFrame({ pair: { src: p.src, sni: p.sni } })

function version(v: Record<string, unknown>): string | null {
  return v.v === PROTOCOL_VERSION ? null : `protocol version ${show(v.v)} (this gate speaks ${PROTOCOL_VERSION})`
}

export function parseHello(v: Record<string, unknown>): Hello | Error {
  const bad = version(v)
  if (bad !== null) return new Error(bad)
  const nonce = unhex(v.nonce, NONCE_BYTES, 'nonce')
  return typeof nonce === 'string' ? new Error(nonce) : { nonce }
}

export function parseChallenge(v: Record<string, unknown>): Challenge | Error {
  const hello = parseHello(v)
  if (hello instanceof Error) return hello
  const chain = pem(v.chain, 'chain')
  if (chain instanceof Error) return chain
  const sig = signature(v.sig)
  return sig instanceof Error ? sig : { nonce: hello.nonce, chain, sig }
}

export function parseRegister(v: Record<string, unknown>): Register | Error {
  const chain = pem(v.chain, 'chain')
  if (chain instanceof Error) return chain
  const names = registeredNames(v.names)
  if (names instanceof Error) return names
  const sig = signature(v.sig)
  return sig instanceof Error ? sig : { chain, names, sig }
}

export function parseVerdict(v: Record<string, unknown>): Verdict | Error {
  if (v.ok === true && typeof v.node === 'string') return { ok: true, node: v.node }
  if (typeof v.error === 'string') return { ok: false, error: v.error.slice(0, 300) }
  return new Error('not a verdict')
}

export function parsePair(v: Record<string, unknown>): Pair | Error {
  const p = v.pair as Record<string, unknown> | undefined
  if (typeof p !== 'object' || p === null || typeof p.src !== 'string' || typeof p.sni !== 'string')
    return new Error('not a pair frame')
  return { src: p.src.slice(0, 64), sni: p.sni.slice(0, 253) }
}

/** Names as a gate registers them: host names, lower case, no duplicates, at most MAX_NAMES. */
export function registeredNames(value: unknown): string[] | Error {
  if (!Array.isArray(value)) return new Error('names is not an array')
  if (value.length > MAX_NAMES) return new Error(`${value.length} names (at most ${MAX_NAMES})`)
  const out: string[] = []
  for (const n of value) {
    if (typeof n !== 'string') return new Error(`name ${show(n)} is not a string`)
    const problem = hostNameProblem(n)
    if (problem !== null) return new Error(`name ${show(n)}: ${problem}`)
    const lower = n.toLowerCase()
    if (!out.includes(lower)) out.push(lower)
  }
  return out
}

// ---- what is signed -------------------------------------------------------------

/** The relay signs both nonces, gate's first: the gate knows the answer is fresh. */
export function relayText(gateNonce: Uint8Array, relayNonce: Uint8Array): Uint8Array {
  return utf8Encode(`ugate-sni-relay/${PROTOCOL_VERSION} relay\n${hex(gateNonce)}\n${hex(relayNonce)}\n`)
}

/** The gate signs both nonces, relay's first, and the names it registers. */
export function gateText(relayNonce: Uint8Array, gateNonce: Uint8Array, names: readonly string[]): Uint8Array {
  return utf8Encode(
    `ugate-sni-relay/${PROTOCOL_VERSION} gate\n${hex(relayNonce)}\n${hex(gateNonce)}\n${names.join('\n')}\n`,
  )
}

// ---- names a gate may register (relay side) ---------------------------------------

/**
 * Whether `name` is granted by `patterns`: exact names, or "*.suffix" for
 * any name below suffix (not suffix itself). Lower case on both sides.
 */
export function nameGranted(name: string, patterns: readonly string[]): boolean {
  return patterns.some((p) => (p.startsWith('*.') ? name.endsWith(p.slice(1)) : name === p))
}

/** The first label of an SNI, upper-cased: a node id when the SNI is `<NODEID>.<ns>.<td>`. */
export function sniNodeLabel(sni: string): string {
  const dot = sni.indexOf('.')
  return (dot < 0 ? sni : sni.slice(0, dot)).toUpperCase()
}

// ---- the relay's registry -----------------------------------------------------------

export interface GateId {
  /** Its SPIFFE id. */
  spiffe: string
  nodeId: string
  /** Names granted and registered, lower case (besides the node id). */
  names: readonly string[]
}

interface Gate<C> {
  id: GateId
  parked: C[]
}

interface Waiter<C> {
  sni: string
  give: (conn: C, gate: GateId) => void
  /** A gate registered whose node id the SNI names, but the rest of it is not that gate's. */
  refuse: (why: string) => void
}

export type ParkResult = 'parked' | 'paired' | { refused: string }

/**
 * Parked connections by gate, found by SNI: an exact registered name, or the
 * gate's node name (gateFor). Oldest parked first (the freshest stay: a NAT
 * forgets idle connections first). Incoming connections that found none wait
 * in a bounded list until a registration arrives or their time is up.
 */
export class SniRegistry<C> {
  private readonly gates = new Map<string, Gate<C>>()
  private readonly byName = new Map<string, string>()
  private readonly waiters = new Set<Waiter<C>>()

  /** nodeSuffix: the short form of node names (mesh.nodeSuffix), '' = none. */
  constructor(
    private maxParkedPerGate: number,
    private maxWaiting: number,
    private nodeSuffix = '',
  ) {}

  setLimits(maxParkedPerGate: number, maxWaiting: number, nodeSuffix = ''): void {
    this.maxParkedPerGate = maxParkedPerGate
    this.maxWaiting = maxWaiting
    this.nodeSuffix = nodeSuffix
  }

  /**
   * The gate an SNI names, if registered: by a registered name, else by its
   * node name, which must be the whole name (namespace and trust domain of
   * the gate's SPIFFE id, or the short form): a name whose first label is a
   * gate's node id but whose rest is not that gate's is refused.
   */
  gateFor(sni: string): GateId | { refused: string } | undefined {
    const g = this.find(sni)
    return g === undefined || 'refused' in g ? g : g.id
  }

  private find(sni: string): Gate<C> | { refused: string } | undefined {
    const lower = sni.toLowerCase()
    const named = this.byName.get(lower)
    if (named !== undefined) return this.gates.get(named)
    const g = this.gates.get(sniNodeLabel(lower))
    if (g === undefined) return undefined
    const problem = nodeNameProblem(lower, g.id.nodeId, g.id.spiffe, this.nodeSuffix)
    return problem === null ? g : { refused: problem }
  }

  /** A connection of `gate` is registered: given to a waiter, or parked. */
  park(gate: GateId, conn: C): ParkResult {
    for (const name of gate.names) {
      const owner = this.byName.get(name)
      if (owner !== undefined && owner !== gate.nodeId)
        return { refused: `name ${name} is registered by node ${owner}` }
    }
    let g = this.gates.get(gate.nodeId)
    if (g === undefined) {
      g = { id: gate, parked: [] }
      this.gates.set(gate.nodeId, g)
    } else {
      for (const name of g.id.names) if (!gate.names.includes(name)) this.byName.delete(name)
      g.id = gate
    }
    for (const name of gate.names) this.byName.set(name, gate.nodeId)
    let paired = false
    for (const w of this.waiters) {
      const found = this.gateFor(w.sni)
      if (found !== undefined && 'refused' in found) {
        // It names this gate's node id, but not as this gate proved it.
        this.waiters.delete(w)
        w.refuse(found.refused)
      } else if (!paired && found?.nodeId === gate.nodeId) {
        this.waiters.delete(w)
        w.give(conn, gate)
        paired = true
      }
    }
    if (paired) return 'paired'
    if (g.parked.length >= this.maxParkedPerGate) {
      return { refused: `node ${gate.nodeId} already has ${this.maxParkedPerGate} parked connections` }
    }
    g.parked.push(conn)
    return 'parked'
  }

  /** A parked connection for this SNI, taken out of the registry; refused when it names a gate wrongly (gateFor). */
  take(sni: string): { conn: C; gate: GateId } | { refused: string } | undefined {
    const g = this.find(sni)
    if (g === undefined || 'refused' in g) return g
    const conn = g.parked.shift()
    if (conn === undefined) return undefined
    if (g.parked.length === 0) this.drop(g)
    return { conn, gate: g.id }
  }

  /** A parked connection died or the relay closes it; false when it was not parked. */
  remove(conn: C): boolean {
    for (const g of this.gates.values()) {
      const i = g.parked.indexOf(conn)
      if (i < 0) continue
      g.parked.splice(i, 1)
      if (g.parked.length === 0) this.drop(g)
      return true
    }
    return false
  }

  /**
   * Wait for a registration whose gate this SNI names (`refuse` when one
   * registers whose node id it names wrongly). Returns a function
   * that stops waiting, or null when maxWaiting are already waiting.
   */
  wait(sni: string, give: (conn: C, gate: GateId) => void, refuse: (why: string) => void): (() => void) | null {
    if (this.waiters.size >= this.maxWaiting) return null
    const w: Waiter<C> = { sni: sni.toLowerCase(), give, refuse }
    this.waiters.add(w)
    return () => this.waiters.delete(w)
  }

  /** Every parked connection, each once (for closing them all). */
  all(): C[] {
    return [...this.gates.values()].flatMap((g) => g.parked)
  }

  /** Gates and their parked counts, for status views and logs. */
  snapshot(): Array<GateId & { parked: number }> {
    return [...this.gates.values()].map((g) => ({ ...g.id, parked: g.parked.length }))
  }

  get waiting(): number {
    return this.waiters.size
  }

  private drop(g: Gate<C>): void {
    this.gates.delete(g.id.nodeId)
    for (const name of g.id.names) if (this.byName.get(name) === g.id.nodeId) this.byName.delete(name)
  }
}

// ---- the gate's pool ---------------------------------------------------------------

/**
 * How many parked connections a gate keeps: `min` at rest; when a pairing
 * leaves none parked, demand outran the pool: it doubles, up to `max`. A
 * quiet period (no pairing for `quietMs`) halves it back towards `min`.
 */
export class PoolTarget {
  private size: number
  private lastPairing = -Infinity

  constructor(
    readonly min: number,
    readonly max: number,
    private readonly quietMs = 60_000,
  ) {
    this.size = min
  }

  get target(): number {
    return this.size
  }

  /** A parked connection was paired; `parkedLeft` are still parked. */
  paired(parkedLeft: number, nowMs: number): void {
    this.lastPairing = nowMs
    if (parkedLeft === 0) this.size = Math.min(this.max, this.size * 2)
  }

  /** Periodic: shrink after a quiet period. */
  tick(nowMs: number): void {
    if (this.size > this.min && nowMs - this.lastPairing >= this.quietMs) {
      this.size = Math.max(this.min, Math.floor(this.size / 2))
      this.lastPairing = nowMs
    }
  }
}

/**
 * Delay before reconnect attempt `failures` (1, 2, ...): exponential from
 * baseMs, capped at maxMs, with jitter (50-100 % of it) so gates that lost
 * the same relay do not all come back in the same instant. random01 in [0, 1).
 */
export function backoffMs(failures: number, baseMs: number, maxMs: number, random01: number): number {
  const full = Math.min(maxMs, baseMs * 2 ** Math.min(30, Math.max(0, failures - 1)))
  return Math.round(full * (0.5 + random01 / 2))
}
