// The native forward (native/mod_gate.c): a forward to a numeric IP runs in C
// with no JS per connection. What a forward listener promised before must
// hold there too: exact bytes, one access line each, the allow list, the
// limits (one count shared with the JS listeners), dial failures with their
// reason, and no fd left behind after a burst of short connections.

import { spawn } from 'node:child_process'
import net from 'node:net'
import t from 'tap'
import { connsOf, listener, proxyConfig, startConfig, waitConnsOf } from '../lib/config.js'
import {
  connect,
  echoRoundTrip,
  echoServer,
  pollUntil,
  prngBytes,
  refusedPort,
  sha256,
  track,
  waitClose,
  within,
} from '../lib/servers.js'
import { checkFds, finish, parseLogLine, runUgate, settleFds } from '../lib/ugate.js'
import { joinResumed, straced } from '../lib/strace.js'
import { tempSocket } from '../lib/temp.js'

/** Connect without waiting for 'connect' (ugate may reset at once); resolves with how it closed. */
function tryConnect(port: number) {
  return waitClose(track(net.connect({ port, host: '127.0.0.1', allowHalfOpen: true })))
}

t.test('500 short connections: exact bytes, one access line each, fds back to baseline', async (t) => {
  const srv = await echoServer(t)
  const ug = await startConfig(t, proxyConfig([listener('fwd', 'forward', { target: srv.target })]))
  const port = ug.port('fwd')
  const N = 500
  const WIDTH = 50
  const sizes = Array.from({ length: N }, (_, i) => 1 + ((i * 7919) % 20000))
  const bad: string[] = []
  for (let start = 0; start < N; start += WIDTH) {
    const batch = sizes.slice(start, start + WIDTH).map(async (size, j) => {
      const payload = prngBytes(start + j, size)
      const got = await echoRoundTrip(port, payload)
      if (sha256(got) !== sha256(payload)) bad.push(`#${start + j}: ${got.length} of ${size} bytes, or other bytes`)
    })
    await within(Promise.all(batch), 60_000, `connections ${start}..${start + WIDTH - 1}`)
  }
  t.same(bad, [], 'every connection echoed exactly its payload')
  const conns = await waitConnsOf(ug, 'fwd', N)
  t.same(
    conns.map((c) => Number(c.fields.up)).sort((a, b) => a - b),
    [...sizes].sort((a, b) => a - b),
    'up counts are the payload sizes',
  )
  t.same(
    conns.map((c) => Number(c.fields.down)).sort((a, b) => a - b),
    [...sizes].sort((a, b) => a - b),
    'down counts are the payload sizes',
  )
  t.same(new Set(conns.map((c) => `${c.fields.dst} ${c.fields.reason}`)), new Set([`${srv.target} eof`]))
  t.equal(srv.accepted, N, 'the target saw one connection per client')
  await finish(t, ug, N)
})

t.test('allow list: a source outside it is reset and logged, no access line', async (t) => {
  const srv = await echoServer(t)
  const ug = await startConfig(
    t,
    proxyConfig([
      listener('lan', 'forward', { target: srv.target, allow: ['10.0.0.0/8', '::ffff:127.0.0.1/128'] }),
      listener('v6only', 'forward', { target: srv.target, allow: ['::1'] }),
      listener('local', 'forward', { target: srv.target, allow: ['127.0.0.0/8'] }),
    ]),
  )
  const r = await within(tryConnect(ug.port('v6only')), 10_000, 'denied client closed')
  t.equal(r.bytes, 0, 'denied client got no bytes')
  const line = parseLogLine(await ug.waitForLine(/ warn denied listener=v6only /))!
  t.match(line.fields, { listener: 'v6only', src: /^127\.0\.0\.1:\d+$/, why: 'source not in allow list' })
  // An IPv4-mapped allow entry is an IPv4 one (as the JS listeners read it).
  const ok = await echoRoundTrip(ug.port('lan'), Buffer.from('mapped'))
  t.equal(ok.toString(), 'mapped', 'the ::ffff:127.0.0.1 entry admits 127.0.0.1')
  t.equal((await echoRoundTrip(ug.port('local'), Buffer.from('x'))).toString(), 'x')
  await waitConnsOf(ug, 'local', 1)
  t.equal(ug.events('conn').filter((c) => c.fields.listener === 'v6only').length, 0, 'no access line when denied')
  await finish(t, ug, 2)
})

t.test('limits: maxPerSource on a native forward, one count with the JS listeners', async (t) => {
  const srv = await echoServer(t)
  const ug = await startConfig(
    t,
    proxyConfig([listener('fwd', 'forward', { target: srv.target }), listener('socks', 'socks')], {
      limits: { maxPerSource: 2, maxConnections: 3, handshakeTimeout: 10 },
    }),
  )
  // Two relaying forwards from 127.0.0.1 reach maxPerSource.
  const held = [await connect(ug.port('fwd')), await connect(ug.port('fwd'))]
  for (const s of held) {
    const echoed = new Promise<void>((res) => s.once('data', () => res()))
    s.write('hold')
    await within(echoed, 10_000, 'held connection echoes')
  }
  const third = await within(tryConnect(ug.port('fwd')), 10_000, 'third forward closed')
  t.equal(third.bytes, 0, 'the third forward got nothing')
  const limit = parseLogLine(await ug.waitForLine(/ warn limit-reached listener=fwd /))!
  t.match(limit.fields, { src: /^127\.0\.0\.1:\d+$/, limit: 'maxPerSource=2' })
  // The SOCKS listener (JS) sees the same count.
  const socks = await within(tryConnect(ug.port('socks')), 10_000, 'socks client closed')
  t.equal(socks.bytes, 0)
  const socksLimit = parseLogLine(await ug.waitForLine(/ warn limit-reached listener=socks /))!
  t.equal(socksLimit.fields.limit, 'maxPerSource=2')
  // One ends: a new forward is admitted again.
  const closed = waitClose(held[0]!)
  held[0]!.end()
  await closed
  await waitConnsOf(ug, 'fwd', 1)
  t.equal((await echoRoundTrip(ug.port('fwd'), Buffer.from('again'))).toString(), 'again', 'admitted after a release')
  const last = waitClose(held[1]!)
  held[1]!.end()
  await last
  await finish(t, ug, 3)
})

t.test('dial failure: the client is reset, the access line names the reason', async (t) => {
  const dead = await refusedPort()
  const ug = await startConfig(t, proxyConfig([listener('dead', 'forward', { target: `127.0.0.1:${dead}` })]))
  const r = await within(tryConnect(ug.port('dead')), 10_000, 'client closed')
  t.equal(r.bytes, 0)
  t.equal(r.error?.code, 'ECONNRESET', 'the client got a RST')
  const [line] = await waitConnsOf(ug, 'dead', 1)
  t.match(line!.fields, {
    listener: 'dead',
    src: /^127\.0\.0\.1:\d+$/,
    dst: `127.0.0.1:${dead}`,
    up: '0',
    down: '0',
    reason: 'connect-error:ECONNREFUSED',
    splice: '0',
  })
  checkFds(t, ug)
  await finish(t, ug, 1)
})

/**
 * A port whose connects hang: a listening socket (backlog 1) held by a child
 * that does not accept, its queue filled. SYNs beyond it are dropped, until
 * `release` makes the child accept (and echo, FIN included): a dial that
 * waits, then completes (the SYN is resent).
 */
async function hangingPort(t: { teardown(fn: () => void): void }): Promise<{ port: number; release: () => void }> {
  const srv = net.createServer()
  await new Promise<void>((res) => srv.listen({ port: 0, host: '127.0.0.1', backlog: 1 }, () => res()))
  const port = (srv.address() as net.AddressInfo).port
  const fd = (srv as unknown as { _handle: { fd: number } })._handle.fd
  const script = "process.stdin.once('data', () => require('net').createServer((s) => s.pipe(s)).listen({ fd: 3 }))"
  const holder = spawn(process.execPath, ['-e', script], { stdio: ['pipe', 'ignore', 'ignore', fd] })
  t.teardown(() => holder.kill())
  await new Promise<void>((res) => srv.close(() => res()))
  // Backlog 1 queues two; a third connect stays in SYN-SENT.
  for (let i = 0; i < 2; i++) await connect(port)
  return { port, release: () => holder.stdin!.write('go\n') }
}

t.test('connect timeout: the client is reset, the access line says connect-timeout', async (t) => {
  const { port } = await hangingPort(t)
  const adminSock = tempSocket(t, 'ugate-nf-')
  const ug = await startConfig(t, {
    ...proxyConfig([listener('slow', 'forward', { target: `127.0.0.1:${port}` })]),
    dial: { connectTimeout: 1 },
    admin: { socket: adminSock },
  })
  const r = await within(tryConnect(ug.port('slow')), 10_000, 'client closed by the connect timeout')
  t.equal(r.error?.code, 'ECONNRESET', 'the client got a RST')
  const [timedOut] = await waitConnsOf(ug, 'slow', 1)
  t.match(timedOut!.fields, { dst: `127.0.0.1:${port}`, up: '0', down: '0', reason: 'connect-timeout' })
  t.ok(Number(timedOut!.fields.ms) >= 1000, 'after the connect timeout', { ms: timedOut!.fields.ms })
  await finish(t, ug, 1)
})

t.test(
  'the client hangs up while dialing: client-eof at once, slot and fds freed; a half-close with data is relayed',
  async (t) => {
    const { port: hanging } = await hangingPort(t)
    const late = await hangingPort(t)
    const srv = await echoServer(t)
    // A connect timeout far beyond the test: only the hang-up can end the dial.
    const ug = await startConfig(t, {
      ...proxyConfig(
        [
          listener('slow', 'forward', { target: `127.0.0.1:${hanging}` }),
          listener('late', 'forward', { target: `127.0.0.1:${late.port}` }),
          listener('echo', 'forward', { target: srv.target }),
        ],
        { limits: { maxConnections: 1 } },
      ),
      dial: { connectTimeout: 60 },
    })
    const gone = await connect(ug.port('slow'))
    gone.destroy()
    const [line] = await waitConnsOf(ug, 'slow', 1)
    t.match(line!.fields, { dst: `127.0.0.1:${hanging}`, up: '0', down: '0', reason: 'client-eof' })
    // A RST instead of a FIN: client-error with its errno.
    const reset = await connect(ug.port('slow'))
    reset.resetAndDestroy()
    const [, resetLine] = await waitConnsOf(ug, 'slow', 2)
    t.match(resetLine!.fields, { up: '0', down: '0', reason: 'client-error:ECONNRESET' })
    // maxConnections=1: the slot is free again.
    t.equal((await echoRoundTrip(ug.port('echo'), Buffer.from('next'))).toString(), 'next', 'the slot is free')
    await waitConnsOf(ug, 'echo', 1)
    await settleFds(ug)
    checkFds(t, ug)

    // Request and FIN while the dial waits: not a hang-up; relayed once it connects.
    const half = track(net.connect({ port: ug.port('late'), host: '127.0.0.1', allowHalfOpen: true }))
    const closed = waitClose(half)
    half.end('request')
    late.release()
    const got = await within(closed, 20_000, 'the half-closed client answered')
    t.same([got.bytes, got.ended, got.error], [7, true, null], 'echoed, then a FIN')
    const [relayed] = await waitConnsOf(ug, 'late', 1)
    t.match(relayed!.fields, { up: '7', down: '7', reason: 'eof' })
    await settleFds(ug)
    await finish(t, ug, 3)
  },
)

t.test('a dial that completes at once costs no watch of its client and no SO_ERROR read', async (t) => {
  const srv = await echoServer(t)
  const st = straced(t, 'epoll_ctl,getsockopt')
  const ug = await startConfig(t, proxyConfig([listener('fwd', 'forward', { target: srv.target })]), st.opts)
  const N = 12
  for (let i = 0; i < N; i++) {
    const payload = Buffer.from(`ping ${i}`)
    t.same(await echoRoundTrip(ug.port('fwd'), payload), payload, `connection ${i} echoed`)
  }
  await waitConnsOf(ug, 'fwd', N)
  await finish(t, ug, N)
  const trace = st.lines(t)
  // The client's hang-up watch (EPOLLRDHUP one-shot) is set only for a dial
  // still waiting after a while; a dial to loopback rarely is (a loaded
  // machine may delay some, not all twelve).
  const hup = trace.filter((l) => /epoll_ctl\(.*\{events=EPOLLRDHUP\|EPOLLONESHOT/.test(l))
  t.ok(hup.length < N, `hang-up watches: ${hup.length} for ${N} connections`, { sample: hup })
  // EPOLLOUT alone says connected: no getsockopt(SO_ERROR) per dial.
  const soError = trace.filter((l) => /getsockopt\(.*SO_ERROR/.test(l))
  t.equal(soError.length, 0, 'no SO_ERROR read for a successful connect', { sample: soError })
})

// A read shorter than the buffer after the peer's FIN was reported
// (EPOLLRDHUP) has reached that FIN: the relay takes it as EOF and makes no
// recv that could only return 0. The client sends its bytes and FIN in one
// segment (TCP_CORK, then shutdown), so the relay thread always sees them in
// one event: its recv of the client's socket returns the bytes and no recv of
// it returns 0.
t.test('a short read after the FIN is EOF: no recv of the client returns 0', async (t) => {
  const srv = await echoServer(t)
  // -yy: each fd with its addresses, so a client's socket is told by its port
  // (an fd number is reused between the loop thread's accept and the relay's close).
  const st = straced(t, 'recvfrom', ['-yy'])
  const ug = await startConfig(t, proxyConfig([listener('fwd', 'forward', { target: srv.target })]), st.opts)
  const N = 6
  // Per connection "echo|client port|late": late when the client was held up
  // over 150 ms between its send and its shutdown, as Linux sends corked
  // bytes alone after 200 ms (tcp(7)): then the FIN comes in a later segment.
  const client = `
import socket, sys, time
for i in range(int(sys.argv[2])):
    s = socket.create_connection(('127.0.0.1', int(sys.argv[1])))
    s.settimeout(10)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 1)
    t0 = time.monotonic()
    s.sendall(b'ping %d' % i)
    s.shutdown(socket.SHUT_WR)
    late = time.monotonic() - t0 > 0.15
    got = b''
    while True:
        d = s.recv(65536)
        if not d: break
        got += d
    sys.stdout.write('%s|%d|%d;' % (got.decode(), s.getsockname()[1], late))
    s.close()
`
  const py = spawn('python3', ['-c', client, String(ug.port('fwd')), String(N)], {
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  let out = ''
  py.stdout.on('data', (d: Buffer) => (out += d.toString()))
  const code = await within(new Promise<number | null>((res) => py.once('close', res)), 30_000, 'python client')
  t.equal(code, 0, 'python client exit 0')
  const conns = out
    .split(';')
    .filter((c) => c !== '')
    .map((c) => c.split('|'))
  t.same(
    conns.map((c) => c[0]),
    Array.from({ length: N }, (_, i) => `ping ${i}`),
    'every connection echoed',
  )
  await waitConnsOf(ug, 'fwd', N)
  await finish(t, ug, N)
  const onTime = conns.filter((c) => c[2] === '0').map((c) => c[1]!)
  t.ok(onTime.length > 0, `${onTime.length} of ${N} clients sent bytes and FIN in one segment`)
  // The trace holds only recvfrom: a client's reads are the lines naming its socket.
  const reads = joinResumed(st.lines(t)).filter((l) =>
    onTime.some((port) => l.includes(`<TCP:[127.0.0.1:${ug.port('fwd')}->127.0.0.1:${port}]>`)),
  )
  const zero = reads.filter((l) => /\) = 0$/.test(l))
  t.equal(reads.length, onTime.length, 'one recv of each client', { sample: reads })
  t.equal(zero.length, 0, 'no recv of a client returned 0', { sample: zero })
})

t.test('a dialing native connection is listed and ended by shutdown', async (t) => {
  const { port } = await hangingPort(t)
  const adminSock = tempSocket(t, 'ugate-nf-')
  // A connect timeout far beyond the test: the connection is still dialing when listed and stopped.
  const ug = await startConfig(t, {
    ...proxyConfig([listener('slow', 'forward', { target: `127.0.0.1:${port}` })]),
    dial: { connectTimeout: 60 },
    admin: { socket: adminSock },
  })
  const waiting = waitClose(await connect(ug.port('slow')))
  type Live = { listener: string; stage: string; dst: string }
  const list = () =>
    (JSON.parse(runUgate(['ctl', '--json', '--socket', adminSock, 'connections']).stdout) as { connections: Live[] })
      .connections
  // Until the accept reached ugate's list (bounded: a miss fails, it does not hang).
  const live = await pollUntil(list, (l) => l.length > 0, 10_000, 0)
  t.match(live, [{ listener: 'slow', stage: 'handshake', dst: `127.0.0.1:${port}` }], 'listed while dialing')
  ug.signal('SIGTERM')
  const closed = await within(waiting, 10_000, 'dialing client closed by shutdown')
  t.equal(closed.bytes, 0)
  const res = await ug.waitExit()
  t.equal(res.code, 0, 'exits 0 without waiting for the connect timeout')
  t.match(connsOf(ug, 'slow')[0]?.fields, { reason: 'shutdown' }, 'the dialing one ends with reason shutdown')
  t.same(ug.sanitizerLines(), [], 'no sanitizer reports')
})
