/// <reference path="../../src/io/native.d.ts" />
// The io layer (listener → dial → relay, shutdown) against an in-memory
// stand-in of `ugate:native`, until the C module exists. The fake keeps a
// virtual clock; run() fires ready watches and due timers until the
// process exits or nothing is left to do.

import { register } from 'node:module'
import t from 'tap'
import type { RelayOptions, RelayResult } from 'ugate:native'
import { type HboneListenerConfig, validateConfig } from '../../src/core/config.js'
import { createLogger } from '../../src/core/log.js'
import type { GatewayContext } from '../../src/io/session.js'

// Resolve `ugate:native` to a module whose functions call the current fake
// (globalThis.__ugateFake), so each test can install a fresh one. (tap's
// mockImport cannot follow the .js → .ts imports of nested modules.)
const FUNCTIONS = [
  'now',
  'wallClock',
  'writeStderr',
  'writeStdout',
  'readFile',
  'exit',
  'fdCount',
  'peakRssKiB',
  'setTimeout',
  'clearTimeout',
  'watch',
  'unwatch',
  'onSignal',
  'listen',
  'accept',
  'acceptBatch',
  'connect',
  'socketError',
  'errnoName',
  'strerror',
  'read',
  'peek',
  'write',
  'shutdown',
  'close',
  'reset',
  'localAddress',
  'peerAddress',
  'originalDst',
  'resolve',
  'relay',
  'relayAbort',
  'relayAbortAll',
  'relayStats',
  'relayBytes',
  'udpStats',
  'udpFlows',
  'admit',
  'release',
  'setLimits',
  'gateStats',
  'forwardServe',
  'forwardStop',
  'onForwardEvents',
  'onSocksRequests',
  'socksKeep',
  'socksKeptHits',
  'socksKeptForget',
  'forwardConnections',
  'forwardClose',
  'forwardCancelDialing',
  'onHboneEvents',
  'hboneStats',
  'hboneCloseAll',
]
const CONSTANTS = {
  EV_READ: 1,
  EV_WRITE: 4,
  EV_ERR: 8,
  EV_HUP: 16,
  SIGINT: 2,
  SIGTERM: 15,
  SIGHUP: 1,
  SHUT_RD: 0,
  SHUT_WR: 1,
  SHUT_RDWR: 2,
  argv: [],
  engineVersion: 'fake',
}
const fakeModule =
  FUNCTIONS.map((f) => `export function ${f}(...a) { return globalThis.__ugateFake.${f}(...a) }`).join('\n') +
  Object.entries(CONSTANTS)
    .map(([k, v]) => `\nexport const ${k} = ${JSON.stringify(v)}`)
    .join('')
const dataUrl = (src: string) => 'data:text/javascript,' + encodeURIComponent(src)
register(
  dataUrl(`export async function resolve(spec, ctx, next) {
  if (spec === 'ugate:native') return { url: ${JSON.stringify(dataUrl(fakeModule))}, shortCircuit: true }
  return next(spec, ctx)
}`),
)
const { startGateway } = await import('../../src/io/gateway.js')
const { ugateMethods } = await import('../../src/io/ubus-object.js')
const { GatewayStats } = await import('../../src/io/session.js')
const { hboneAcceptor } = await import('../../src/io/hbone.js')

type Behaviour = 'ok' | 'refused' | 'hang' | 'unreachable'

interface FakeFd {
  kind: 'listen' | 'client' | 'upstream'
  addr: string
  port: number
  pending?: Array<{ addr: string; port: number }>
  acceptErrors?: string[]
  behaviour?: Behaviour
  mark?: number
}

interface FakeRelay {
  a: number
  b: number
  opts: RelayOptions
  cb: (r: RelayResult) => void
  done: boolean
}

const ERRNO: Record<string, number> = { ECONNREFUSED: 111, ENETUNREACH: 101, EADDRINUSE: 98, EBADF: 9, EMFILE: 24 }

function nativeError(code: string): Error {
  return Object.assign(new Error(code), { code, errno: ERRNO[code] ?? 0, syscall: 'fake' })
}

class FakeNative {
  EV_READ = 1
  EV_WRITE = 4
  EV_ERR = 8
  EV_HUP = 16
  SIGINT = 2
  SIGTERM = 15
  SIGHUP = 1

  t = 0
  exitCode: number | null = null
  fds = new Map<number, FakeFd>()
  nextFd = 10
  nextPort = 40000
  watches = new Map<number, { events: number; cb: (revents: number) => void }>()
  timers = new Map<number, { due: number; cb: () => void }>()
  nextTimer = 1
  signals = new Map<number, () => void>()
  relays: FakeRelay[] = []
  resets: number[] = []
  /** addr:port → how a connect there ends. */
  routes = new Map<string, Behaviour>()
  /** host → addresses, an error text, or 'hang'. */
  dns = new Map<string, string[] | string>()
  /** host → ms the lookup takes (default 1). */
  dnsMs = new Map<string, number>()
  listenError: string | null = null

  now = () => this.t
  wallClock = () => Date.UTC(2026, 10, 25, 7, 30) + this.t
  writeStderr = (_s: string) => {}
  exit = (code: number) => {
    if (this.exitCode === null) this.exitCode = code
    return undefined as never
  }
  strerror = (n: number) => `strerror ${n}`
  errnoName = (n: number) => Object.keys(ERRNO).find((k) => ERRNO[k] === n) ?? `E${n}`

  setTimeout = (cb: () => void, ms: number) => {
    const id = this.nextTimer++
    this.timers.set(id, { due: this.t + ms, cb })
    return id
  }
  clearTimeout = (id: number) => void this.timers.delete(id)
  watch = (fd: number, events: number, cb: (revents: number) => void) => {
    if (!this.fds.has(fd)) throw nativeError('EBADF')
    this.watches.set(fd, { events, cb })
  }
  unwatch = (fd: number) => void this.watches.delete(fd)
  onSignal = (signo: number, cb: (() => void) | null) => {
    if (cb) this.signals.set(signo, cb)
    else this.signals.delete(signo)
  }

  listen = (addr: string, port: number, _backlog: number) => {
    if (this.listenError) throw nativeError(this.listenError)
    return this.alloc({ kind: 'listen', addr, port: port || this.nextPort++, pending: [], acceptErrors: [] })
  }
  accept = (fd: number) => {
    const l = this.fds.get(fd)!
    const err = l.acceptErrors!.shift()
    if (err) throw nativeError(err)
    const c = l.pending!.shift()
    if (!c) return null
    return { fd: this.alloc({ kind: 'client', ...c }), ...c, family: 4 as const }
  }
  acceptBatch = (fd: number, max: number) => {
    const out = []
    for (let i = 0; i < max; i++) {
      let c
      try {
        c = this.accept(fd)
      } catch (e) {
        if (out.length === 0) throw e
        break
      }
      if (c === null) break
      out.push(c)
    }
    return out
  }
  localAddress = (fd: number) => {
    const s = this.fds.get(fd)!
    return { addr: s.addr, port: s.port, family: 4 as const }
  }
  connect = (addr: string, port: number, opts?: { mark?: number }) => {
    const behaviour = this.routes.get(`${addr}:${port}`) ?? 'refused'
    if (behaviour === 'unreachable') throw nativeError('ENETUNREACH')
    return this.alloc({ kind: 'upstream', addr, port, behaviour, mark: opts?.mark ?? 0 })
  }
  socketError = (fd: number) => (this.fds.get(fd)!.behaviour === 'ok' ? 0 : ERRNO.ECONNREFUSED!)
  resolve = (host: string, cb: (err: string | null, addrs: string[]) => void) => {
    const answer = this.dns.get(host) ?? 'Name or service not known'
    if (answer === 'hang') return
    this.setTimeout(() => (typeof answer === 'string' ? cb(answer, []) : cb(null, answer)), this.dnsMs.get(host) ?? 1)
  }
  close = (fd: number) => {
    if (!this.fds.delete(fd)) throw nativeError('EBADF')
    this.watches.delete(fd)
  }
  reset = (fd: number) => {
    this.close(fd)
    this.resets.push(fd)
  }
  relay = (a: number, b: number, opts: RelayOptions, cb: (r: RelayResult) => void) => {
    if (!this.fds.has(a) || !this.fds.has(b)) throw nativeError('EBADF')
    // The relay owns (and will close) both sockets now.
    this.fds.delete(a)
    this.fds.delete(b)
    this.relays.push({ a, b, opts, cb, done: false })
    return this.relays.length
  }
  relayAbort = (id: number) => {
    const r = this.relays[id - 1]
    if (!r || r.done) return false
    this.setTimeout(() => this.endRelay(r, 'closed'), 0)
    return true
  }
  relayAbortAll = () => {
    for (const r of this.relays) if (!r.done) this.setTimeout(() => this.endRelay(r, 'shutdown'), 0)
  }
  relayBytes = () => this.relays.flatMap((r, i) => (r.done ? [] : [i + 1, 0, 0]))
  relayStats = () => ({
    active: this.relays.filter((r) => !r.done).length,
    total: this.relays.length,
    spliceCalls: 7,
    copyCalls: 0,
    pipesPooled: 0,
  })
  // No tproxy listener in these tests: the UDP engine never started.
  udpStats = () => ({ flowsTotal: 0, flowsLive: 0, bytesUp: 0, bytesDown: 0 })
  udpFlows = () => []

  // The gate (native/mod_gate.c): admission as C counts it. These tests log at
  // debug, where forwards run in JS, so the native forward is never asked for.
  admitted = 0
  perSource = new Map<string, number>()
  limits = [0, 0]
  admit = (ip: string) => {
    const n = this.perSource.get(ip) ?? 0
    if (this.limits[0]! > 0 && this.admittedLive() >= this.limits[0]!) return -1
    if (this.limits[1]! > 0 && n >= this.limits[1]!) return -2
    this.perSource.set(ip, n + 1)
    return ++this.admitted
  }
  release = (ip: string) => {
    const n = (this.perSource.get(ip) ?? 1) - 1
    if (n > 0) this.perSource.set(ip, n)
    else this.perSource.delete(ip)
  }
  admittedLive = () => [...this.perSource.values()].reduce((a, b) => a + b, 0)
  setLimits = (max: number, perSource: number) => void (this.limits = [max, perSource])
  gateStats = () => ({
    total: this.admitted,
    live: this.admittedLive(),
    forwardLive: 0,
    socksAsked: 0,
    socksKept: 0,
    socksKeptRoutes: 0,
    socksRuleSets: this.ruleSets,
  })
  // No native SOCKS5 in the fake: C keeps no answers, so it has no hits to hand back.
  ruleSets = 0
  socksKeep = () => (this.ruleSets++, [])
  socksKeptHits = () => []
  socksKeptForget = () => {}
  forwardServe = () => {
    throw new Error('the fake has no native forward')
  }
  forwardStop = () => false
  onForwardEvents = () => {}
  onSocksRequests = () => {}
  forwardConnections = () => []
  forwardClose = () => false
  forwardCancelDialing = () => {}
  onHboneEvents = () => {}
  hboneStats = () => []
  hboneCloseAll = () => {}

  // ---- test controls ----
  alloc(s: FakeFd): number {
    const fd = this.nextFd++
    this.fds.set(fd, s)
    return fd
  }
  /** A client connects to the listener bound on `port`. */
  arrive(port: number, from = { addr: '10.0.0.9', port: 5555 }): void {
    const l = [...this.fds.values()].find((s) => s.kind === 'listen' && s.port === port)!
    l.pending!.push(from)
  }
  endRelay(r: FakeRelay, reason: RelayResult['reason'] = 'eof', error = ''): void {
    if (r.done) return
    r.done = true
    r.cb({ bytesUp: 10, bytesDown: 20, ms: 5, reason, error, spliced: r.opts.splice })
  }
  signal(signo: number): void {
    this.signals.get(signo)!()
  }
  openKinds(): string[] {
    return [...this.fds.values()].map((s) => s.kind)
  }
  private revents(fd: number, events: number): number {
    const s = this.fds.get(fd)
    if (!s) return 0
    if (s.kind === 'listen') return s.pending!.length + s.acceptErrors!.length > 0 ? events & this.EV_READ : 0
    if (s.kind === 'upstream' && s.behaviour !== 'hang') return events & this.EV_WRITE
    return 0
  }
  /** Fire ready watches (level-triggered) until none is ready; the clock stands still. */
  async settle(): Promise<void> {
    for (let turn = 0; turn < 100 && this.exitCode === null; turn++) {
      await new Promise((r) => setImmediate(r))
      if (!this.fireReady()) return
    }
  }
  private fireReady(): boolean {
    let fired = false
    for (const [fd, w] of [...this.watches]) {
      const rev = this.revents(fd, w.events)
      if (rev && this.watches.get(fd) === w) {
        w.cb(rev)
        fired = true
      }
    }
    return fired
  }
  /** Drive the loop: ready watches first, else the next timer (advancing the clock). */
  async run(maxTurns = 1000): Promise<void> {
    for (let turn = 0; turn < maxTurns && this.exitCode === null; turn++) {
      await new Promise((r) => setImmediate(r))
      if (this.fireReady()) continue
      const next = [...this.timers].sort((x, y) => x[1].due - y[1].due)[0]
      if (!next) {
        await new Promise((r) => setImmediate(r))
        if (this.timers.size === 0) return
        continue
      }
      this.timers.delete(next[0])
      this.t = Math.max(this.t, next[1].due)
      next[1].cb()
    }
  }
}

async function setup(raw: unknown) {
  const fake = new FakeNative()
  const lines: string[] = []
  const log = createLogger('debug', fake.wallClock, (l) => lines.push(l.replace(/^\S+ /, '')))
  ;(globalThis as { __ugateFake?: FakeNative }).__ugateFake = fake
  return { fake, lines, log, start: () => startGateway(validateConfig(raw), log) }
}

const forward = (extra: Record<string, unknown> = {}) => ({
  listeners: [{ name: 't', type: 'forward', listen: '127.0.0.1:0', target: '127.0.0.1:5201' }],
  ...extra,
})

const events = (lines: string[], event: string) => lines.filter((l) => l.split(' ')[1] === event)

t.test('forward: accept, dial, relay, access line', async (t) => {
  const { fake, lines, start } = await setup(forward())
  fake.routes.set('127.0.0.1:5201', 'ok')
  start()
  t.same(lines, ['info listening name=t type=forward addr=127.0.0.1:40000', 'info ready listeners=1'])
  fake.arrive(40000)
  await fake.run()
  t.equal(fake.relays.length, 1)
  t.same(fake.relays[0]!.opts, { splice: true, idleMs: 900000 })
  t.same(fake.openKinds(), ['listen'], 'sockets now belong to the relay')
  fake.endRelay(fake.relays[0]!)
  t.match(events(lines, 'conn'), [
    /^info conn listener=t src=10\.0\.0\.9:5555 dst=127\.0\.0\.1:5201 up=10 down=20 ms=\d+ reason=eof splice=1$/,
  ])
  fake.endRelay(fake.relays[0]!, 'client-error', 'ECONNRESET')
  t.equal(events(lines, 'conn').length, 1, 'one access line per connection')
})

t.test('relay reasons with errors, no splice, idle 0', async (t) => {
  const { fake, lines, start } = await setup(forward({ relay: { splice: false, idleTimeout: 0 } }))
  fake.routes.set('127.0.0.1:5201', 'ok')
  start()
  fake.arrive(40000)
  await fake.run()
  t.same(fake.relays[0]!.opts, { splice: false, idleMs: 0 }) // 0 = never
  fake.endRelay(fake.relays[0]!, 'server-error', 'EPIPE')
  t.match(events(lines, 'conn')[0], /reason=server-error:EPIPE splice=0$/)
})

t.test('ubus close ends a relaying connection through relayAbort', async (t) => {
  const { fake, lines, start } = await setup(forward())
  fake.routes.set('127.0.0.1:5201', 'ok')
  start()
  fake.arrive(40000)
  await fake.run()
  t.equal(fake.relays.length, 1)
  // A context holding just this relay's live entry, as session.ts records it.
  const stats = new GatewayStats()
  const cancel = { cancel: () => t.fail('a relay is not cancelled through its handshake Cancel') }
  stats.live.add({ id: 7, listener: 't', src: '', startedAt: 0, stage: 'relay', fields: {}, cancel, relay: 1 } as never)
  const close = ugateMethods({ stats } as never, {} as never, () => {}).close!
  t.same(close.call({ id: 7 }), { closed: 7 })
  await fake.run()
  t.ok(fake.relays[0]!.done)
  t.match(events(lines, 'conn')[0], /reason=closed splice=1$/)
  t.not(close.call({ id: 8 }), { closed: 8 }, 'an unknown id is not closed')
})

t.test('connect refused: client reset, access line, listener keeps serving', async (t) => {
  const { fake, lines, start } = await setup(forward())
  start()
  fake.arrive(40000)
  await fake.run()
  t.match(events(lines, 'conn'), [/ up=0 down=0 ms=\d+ reason=connect-error:ECONNREFUSED splice=0$/])
  t.equal(fake.resets.length, 1, 'client got a RST')
  t.same(fake.openKinds(), ['listen'], 'no fd leaked')
  fake.routes.set('127.0.0.1:5201', 'ok')
  fake.arrive(40000)
  await fake.run()
  t.equal(fake.relays.length, 1)
})

t.test('allow list: a source outside it is reset and logged, on a proxy and on an hbone listener', async (t) => {
  const { fake, lines, log, start } = await setup({
    listeners: [{ name: 's', type: 'socks', listen: '127.0.0.1:0', allow: ['192.168.0.0/16'] }],
  })
  start()
  fake.arrive(40000)
  await fake.run()
  // The hbone listener's accept without a gateway: it needs a mesh identity to start.
  const ctx = { log } as unknown as GatewayContext
  const accept = hboneAcceptor({ name: 'h', allow: ['192.168.0.0/16'] } as HboneListenerConfig, ctx)
  const client = (addr: string, port: number) => ({
    fd: fake.alloc({ kind: 'client', addr, port }),
    addr,
    port,
    family: 4 as const,
  })
  const denied = client('10.0.0.9', 5555)
  accept(denied)
  t.same(
    events(lines, 'denied'),
    [
      'warn denied listener=s src=10.0.0.9:5555 why="source not in allow list"',
      'warn denied listener=h src=10.0.0.9:5555 why="source not in allow list"',
    ],
    'one line a listener, naming the source',
  )
  t.equal(fake.resets.length, 2, 'both clients got a RST')
  t.equal(fake.resets[1], denied.fd, "the hbone listener's client")
  t.same(fake.openKinds(), ['listen'], 'no fd leaked')
  const allowed = client('192.168.1.2', 6666)
  accept(allowed)
  t.match(events(lines, 'hbone-no-identity'), [/listener=h src=192\.168\.1\.2:6666/], 'an allowed source goes on')
  t.equal(fake.resets.at(-1), allowed.fd, '(and a RST: no identity)')
})

t.test('connect timeout closes the upstream fd', async (t) => {
  const { fake, lines, start } = await setup(forward({ dial: { connectTimeout: 2 } }))
  fake.routes.set('127.0.0.1:5201', 'hang')
  start()
  fake.arrive(40000)
  await fake.run()
  t.match(events(lines, 'conn'), [/ ms=2000 reason=connect-timeout splice=0$/])
  t.same(fake.openKinds(), ['listen'])
  t.equal(fake.watches.size, 1, 'only the listener is watched')
})

t.test('host names: every address is tried in order', async (t) => {
  const raw = forward()
  raw.listeners[0]!.target = 'svc.lan:80'
  const { fake, lines, start } = await setup(raw)
  fake.dns.set('svc.lan', ['fd00::1', '10.0.0.1', '10.0.0.2'])
  fake.routes.set('fd00::1:80', 'unreachable')
  fake.routes.set('10.0.0.1:80', 'hang')
  fake.routes.set('10.0.0.2:80', 'ok')
  start()
  fake.arrive(40000)
  await fake.run()
  t.equal(fake.relays.length, 1)
  t.match(events(lines, 'connect-failed'), [
    /addr=\[fd00::1\]:80 reason=connect-error:ENETUNREACH$/,
    /addr=10\.0\.0\.1:80 reason=connect-timeout$/,
  ])
  t.match(events(lines, 'connected'), [/dst=svc\.lan:80 addr=10\.0\.0\.2:80 ms=10001$/])
  t.same(fake.openKinds(), ['listen'])
})

t.test('dns failures', async (t) => {
  const raw = forward()
  raw.listeners[0]!.target = 'nx.lan:80'
  raw.listeners.push({ name: 'u', type: 'forward', listen: '127.0.0.1:0', target: 'slow.lan:80' })
  const { fake, lines, start } = await setup({ ...raw, dial: { connectTimeout: 3 } })
  fake.dns.set('slow.lan', 'hang')
  start()
  fake.arrive(40000)
  fake.arrive(40001)
  await fake.run()
  const conn = events(lines, 'conn')
  t.match(
    conn.find((l) => l.includes('listener=t')),
    /dst=nx\.lan:80 .*reason=dns-error splice=0$/,
  )
  t.match(
    conn.find((l) => l.includes('listener=u')),
    /ms=3000 reason=dns-timeout splice=0$/,
  )
  t.match(events(lines, 'dns-failed'), [/host=nx\.lan error="Name or service not known"$/])
  t.same(fake.openKinds(), ['listen', 'listen'])
})

t.test('dial-time lookups in the resolve histogram, counted when they complete', async (t) => {
  const { resolveLatency } = await import('../../src/io/dial.js')
  // Earlier tests looked names up too: compare with what was there before.
  const counts = () =>
    new Map(
      resolveLatency.samples(['result']).map((s) => [`${s.suffix} ${s.labels!.result} ${s.labels!.le ?? ''}`, s.value]),
    )
  const before = counts()
  const raw = forward()
  raw.listeners[0]!.target = 'svc.lan:80'
  raw.listeners.push(
    { name: 'nx', type: 'forward', listen: '127.0.0.1:0', target: 'nx.lan:80' },
    { name: 'slow', type: 'forward', listen: '127.0.0.1:0', target: 'slow.lan:80' },
  )
  const { fake, lines, start } = await setup({ ...raw, dial: { connectTimeout: 3 } })
  fake.dns.set('svc.lan', ['10.0.0.1'])
  fake.routes.set('10.0.0.1:80', 'ok')
  fake.dnsMs.set('nx.lan', 30)
  fake.dns.set('slow.lan', ['10.0.0.2'])
  fake.dnsMs.set('slow.lan', 4000) // the dial gives up at 3 s; the lookup still ends at 4 s
  start()
  fake.arrive(40000)
  fake.arrive(40001)
  fake.arrive(40002)
  await fake.run()
  t.match(
    events(lines, 'conn').find((l) => l.includes('listener=slow')),
    /ms=3000 reason=dns-timeout splice=0$/,
  )
  const after = counts()
  const delta = new Map<string, number>()
  for (const [k, v] of after) if (v !== (before.get(k) ?? 0)) delta.set(k, v - (before.get(k) ?? 0))
  const sums = ['_sum ok ', '_sum error '].map((k) => delta.get(k))
  for (const k of ['_sum ok ', '_sum error ']) delta.delete(k)
  const bounds = [
    '0.0005',
    '0.001',
    '0.0025',
    '0.005',
    '0.01',
    '0.025',
    '0.05',
    '0.1',
    '0.25',
    '0.5',
    '1',
    '2.5',
    '5',
    '10',
    '30',
    '+Inf',
  ]
  const cumulative = (result: string, at: Record<string, number>) => {
    const out: Array<[string, number]> = []
    let n = 0
    for (const le of bounds) {
      n += at[le] ?? 0
      if (n > 0) out.push([`_bucket ${result} ${le}`, n])
    }
    return out
  }
  t.same(
    Object.fromEntries(delta),
    Object.fromEntries([
      ...cumulative('ok', { '0.001': 1, '5': 1 }),
      ['_count ok ', 2],
      ...cumulative('error', { '0.05': 1 }),
      ['_count error ', 1],
    ]),
    'svc.lan in 1 ms and slow.lan in 4 s (ok), nx.lan in 30 ms (error): exact buckets',
  )
  t.ok(Math.abs(sums[0]! - 4.001) < 1e-9, `ok: 4.001 s in all (${sums[0]})`)
  t.ok(Math.abs(sums[1]! - 0.03) < 1e-9, `error: 0.03 s (${sums[1]})`)
})

t.test('SO_MARK is passed to connect', async (t) => {
  const { fake, start } = await setup(forward({ dial: { mark: 66 } }))
  fake.routes.set('127.0.0.1:5201', 'hang')
  const connect = fake.connect
  const marks: Array<number | undefined> = []
  fake.connect = (addr, port, opts) => {
    marks.push(opts?.mark)
    return connect(addr, port, opts)
  }
  start()
  fake.arrive(40000)
  await fake.settle()
  t.same(marks, [66])
})

t.test('EMFILE pauses accepting for a second', async (t) => {
  const { fake, lines, start } = await setup(forward())
  fake.routes.set('127.0.0.1:5201', 'ok')
  start()
  const l = [...fake.fds.values()].find((s) => s.kind === 'listen')!
  l.acceptErrors!.push('EMFILE')
  fake.arrive(40000)
  await fake.settle()
  t.match(events(lines, 'accept-paused'), [/^warn accept-paused name=t error=EMFILE ms=1000$/])
  t.equal(fake.watches.size, 0, 'not watched while paused')
  t.equal(fake.relays.length, 0)
  await fake.run()
  t.equal(fake.relays.length, 1, 'accepting resumed after the pause')
  t.ok(fake.t >= 1000)
})

t.test('a listen failure closes the listeners already open', async (t) => {
  const raw = forward()
  raw.listeners.push({ name: 'u', type: 'forward', listen: '127.0.0.1:7000', target: '127.0.0.1:1' })
  const { fake, start } = await setup(raw)
  const listen = fake.listen
  fake.listen = (addr, port, backlog) => {
    if (port === 7000) throw nativeError('EADDRINUSE')
    return listen(addr, port, backlog)
  }
  t.throws(start, {
    name: 'StartupError',
    message: 'listener "u" cannot listen on 127.0.0.1:7000: EADDRINUSE (strerror 98)',
  })
  t.same(fake.openKinds(), [])
})

t.test('shutdown: dialing ones cancelled, relays get the grace, then exit 0', async (t) => {
  const raw = forward({ relay: { shutdownGrace: 5 } })
  raw.listeners.push({ name: 'slow', type: 'forward', listen: '127.0.0.1:0', target: '127.0.0.1:9' })
  const { fake, lines, start } = await setup(raw)
  fake.routes.set('127.0.0.1:5201', 'ok')
  fake.routes.set('127.0.0.1:9', 'hang')
  start()
  fake.arrive(40000)
  fake.arrive(40000, { addr: '10.0.0.8', port: 1 })
  fake.arrive(40001)
  await fake.settle()
  t.equal(fake.relays.length, 2)
  fake.endRelay(fake.relays[1]!) // one relay ends on its own before shutdown
  fake.signal(fake.SIGTERM)
  t.same(fake.openKinds(), ['client', 'upstream'], 'listeners closed, the dialing pair still open')
  await fake.run()
  t.equal(fake.exitCode, 0)
  t.equal(fake.t, 5000, 'relays were aborted when the grace ran out')
  t.same(fake.openKinds(), [], 'nothing left open')
  const conn = events(lines, 'conn')
  t.equal(conn.length, 3)
  t.match(
    conn.find((l) => l.includes('listener=slow')),
    /reason=shutdown splice=0$/,
  )
  t.match(
    conn.filter((l) => l.includes('listener=t')),
    [/reason=eof/, /reason=shutdown/],
  )
  t.equal(lines.at(-2), 'info stats relays=2 spliceCalls=7 copyCalls=0')
  t.equal(lines.at(-1), 'info stopped')
  t.match(events(lines, 'stopping'), [/^info stopping signal=SIGTERM live=2 graceMs=5000$/])
})

t.test('shutdown exits as soon as the last relay ends', async (t) => {
  const { fake, lines, start } = await setup(forward())
  fake.routes.set('127.0.0.1:5201', 'ok')
  start()
  fake.arrive(40000)
  await fake.run()
  fake.signal(fake.SIGINT)
  t.equal(fake.exitCode, null)
  fake.t = 100
  fake.endRelay(fake.relays[0]!)
  t.equal(fake.exitCode, 0, 'exit from the relay callback')
  t.equal(lines.at(-1), 'info stopped')
  t.equal(fake.timers.size, 0, 'grace timer cleared')
})

t.test('shutdown with nothing live exits at once; a second signal forces', async (t) => {
  const idle = await setup(forward())
  idle.start()
  idle.fake.signal(idle.fake.SIGINT)
  t.equal(idle.fake.exitCode, 0)
  t.same(idle.lines.slice(-2), ['info stats relays=0 spliceCalls=7 copyCalls=0', 'info stopped'])

  const busy = await setup(forward({ relay: { shutdownGrace: 60 } }))
  busy.fake.routes.set('127.0.0.1:5201', 'ok')
  busy.start()
  busy.fake.arrive(40000)
  await busy.fake.run()
  busy.fake.signal(busy.fake.SIGTERM)
  busy.fake.signal(busy.fake.SIGTERM)
  await busy.fake.run()
  t.equal(busy.fake.exitCode, 0)
  t.equal(busy.fake.t, 0, 'did not wait for the grace period')
  t.match(events(busy.lines, 'shutdown-forced'), [/signal=SIGTERM live=1/])
})
