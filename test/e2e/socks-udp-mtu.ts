// SOCKS5 UDP ASSOCIATE when the kernel refuses a segmented send: the relay
// sends same-size replies to the client as one UDP_SEGMENT message, and a
// segment larger than the route's MTU is refused (loopback's MTU never is,
// hence namespaces of the test's own: ugate and an echo server in one, the
// client in the other, joined by a veth of MTU 1280). The relay must then
// send them again one datagram at a time (the kernel fragments each): every
// reply arrives exact, the refusal is counted in `gsoRefused`, nothing in
// `sendFailed`.

import { spawn } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { proxyConfig, startConfig, waitConnsOf } from '../lib/config.js'
import { createNamespaces, inNs, ipBatch } from '../lib/netns.js'
import { prngBytes, within } from '../lib/servers.js'
import { finish, runUgate } from '../lib/ugate.js'
import { startAgent } from '../lib/udp.js'

const GW = '198.18.7.1'
const CLIENT = '198.18.7.2'
const MTU = 1280
const SOCKS_PORT = 15110
const COUNT = 48
// The relay makes a segmented send only of replies it reads in one batch;
// whether the echo's back-to-back replies meet in one is the scheduler's
// choice, so bursts repeat (each checked whole) until one was refused.
const MAX_BURSTS = 10
const SIZE = 1400 // + the 10-byte SOCKS header: above the MTU, one segment each

// The client, in its namespace: UDP ASSOCIATE on the control connection;
// on `warm` (a stdin line) one datagram to the echo and its reply (the
// destination is routed: the burst is not held in its queue of 32); on
// `burst` COUNT framed datagrams (hex, a line each in a file), then every
// reply of that burst (hex, without its header) on one JSON line. The control connection
// stays open until stdin ends (the association lives as long).
const CLIENT_SCRIPT = `
import dgram from 'node:dgram'
import { readFileSync } from 'node:fs'
import net from 'node:net'
const [proxy, port, echoPort] = [process.argv[2], +process.argv[3], +process.argv[4]]
const payloads = readFileSync(process.argv[5], 'utf8').trim().split('\\n')
const ctl = net.connect(port, proxy)
let buf = Buffer.alloc(0)
const need = (n) => new Promise((res) => {
  const check = () => { if (buf.length >= n) { const b = buf.subarray(0, n); buf = buf.subarray(n); ctl.off('data', on); res(b) } }
  const on = (d) => { buf = Buffer.concat([buf, d]); check() }
  ctl.on('data', on)
  check()
})
await new Promise((res) => ctl.once('connect', res))
const udp = dgram.createSocket({ type: 'udp4', recvBufferSize: 4 << 20 })
await new Promise((res) => udp.bind(0, res))
ctl.write(Buffer.from([5, 1, 0]))
await need(2)
const me = Buffer.from([5, 3, 0, 1, 0, 0, 0, 0, 0, 0])
me.writeUInt16BE(udp.address().port, 8)
ctl.write(me)
const r = await need(10)
if (r[1] !== 0 || r[3] !== 1) throw new Error('associate refused: ' + r.toString('hex'))
const relay = [...r.subarray(4, 8)].join('.')
const relayPort = r.readUInt16BE(8)
const head = Buffer.from([0, 0, 0, 1, 127, 0, 0, 1, 0, 0])
head.writeUInt16BE(echoPort, 8)
const send = (data) => udp.send(Buffer.concat([head, data]), relayPort, relay)
const say = (o) => process.stdout.write(JSON.stringify(o) + '\\n')
const got = []
udp.on('message', (m) => {
  if (m.subarray(10).toString() === 'warm') return say({ warm: true })
  got.push(m.subarray(10).toString('hex'))
  if (got.length === payloads.length) say({ got })
})
say({ associated: true })
process.stdin.setEncoding('utf8').on('data', (d) => {
  for (const cmd of d.split('\\n')) {
    if (cmd === 'warm') send(Buffer.from('warm'))
    if (cmd === 'burst') {
      got.length = 0
      for (const p of payloads) send(Buffer.from(p, 'hex'))
      say({ sent: payloads.length })
    }
  }
})
process.stdin.on('end', () => { ctl.end(); udp.close() })
process.stdin.resume()
`

t.test('replies above the MTU: the refused segmented send goes again one by one, exact and counted', async (t) => {
  const { ns, dir } = await createNamespaces(t, 'mtu', ['g', 'c'] as const)
  await ipBatch(ns.g, [
    'link set lo up',
    `link add g-c type veth peer name c-g netns ${ns.c}`,
    `link set g-c mtu ${MTU}`,
    `addr add ${GW}/24 dev g-c`,
    'link set g-c up',
  ])
  await ipBatch(ns.c, ['link set lo up', `link set c-g mtu ${MTU}`, `addr add ${CLIENT}/24 dev c-g`, 'link set c-g up'])

  // The echo (next to ugate, on loopback) holds the datagrams until all are
  // there and answers them back to back: the relay reads several replies in
  // one batch, one size, and makes them one segmented message.
  const echo = await startAgent(t, ns.g, dir, 'echo')
  const echoPort = await echo.bind('echo', '127.0.0.1')
  const socket = join(dir, 'ugate.sock')
  const ug = await startConfig(
    t,
    proxyConfig([{ name: 's', type: 'socks', listen: `${GW}:${SOCKS_PORT}`, allow: ['198.18.0.0/15'] }], {
      admin: { socket },
    }),
    { netns: ns.g },
  )
  const status = () => {
    const r = runUgate(['ctl', '--json', '--socket', socket, 'status'])
    if (r.code !== 0) throw new Error(`ctl status: ${r.stdout} ${r.stderr.join('\n')}`)
    return (JSON.parse(r.stdout) as { udp: { socks: Record<string, number> & { drops: Record<string, number> } } }).udp
      .socks
  }

  const before = new Set(ug.fdList())
  const payloads = Array.from({ length: COUNT }, (_, i) => prngBytes(i + 1, SIZE))
  const script = join(dir, 'socks-client.mjs')
  writeFileSync(script, CLIENT_SCRIPT)
  const payloadFile = join(dir, 'payloads.txt')
  writeFileSync(payloadFile, payloads.map((p) => p.toString('hex')).join('\n') + '\n')
  const env = { ...process.env }
  delete env.NODE_OPTIONS
  const argv = inNs(ns.c, [process.execPath, script, GW, String(SOCKS_PORT), String(echoPort), payloadFile])
  const client = spawn(argv[0]!, argv.slice(1), { stdio: ['pipe', 'pipe', 'pipe'], env })
  const closed = new Promise<number | null>((res) => client.once('close', (code) => res(code)))
  t.teardown(async () => {
    if (client.exitCode === null && client.signalCode === null) client.kill('SIGKILL')
    await closed
  })
  let err = ''
  client.stderr.setEncoding('utf8').on('data', (d: string) => (err += d))
  const lines: Array<Record<string, unknown>> = []
  const waiters: Array<() => void> = []
  let out = ''
  client.stdout.setEncoding('utf8').on('data', (d: string) => {
    out += d
    for (let i = out.indexOf('\n'); i >= 0; i = out.indexOf('\n')) {
      lines.push(JSON.parse(out.slice(0, i)) as Record<string, unknown>)
      out = out.slice(i + 1)
      waiters.shift()?.()
    }
  })
  const line = (n: number) =>
    Promise.race([
      new Promise<Record<string, unknown>>((res) => {
        if (lines.length > n) res(lines[n]!)
        else waiters.push(() => res(lines[n]!))
      }),
      closed.then((code) => {
        throw new Error(`the client exited (${code}) early: ${err}`)
      }),
    ])

  t.same(await line(0), { associated: true }, 'the client associated')
  client.stdin.write('warm\n')
  const [warm] = await echo.recv('echo', 1)
  await echo.send('echo', warm!.from, warm!.port, Buffer.from(warm!.data, 'hex'))
  t.same(await line(1), { warm: true }, 'the destination is routed: its echo came back')
  let bursts = 0
  let s = status()
  while (bursts < MAX_BURSTS && !(s.gsoRefused! >= 1)) {
    const n = ++bursts
    client.stdin.write('burst\n')
    t.same(await line(lines.length), { sent: COUNT }, `burst ${n}: the client sent it`)
    const arrived = await echo.recv('echo', COUNT)
    t.same(
      arrived.map((m) => m.data),
      payloads.map((p) => p.toString('hex')),
      `burst ${n}: the echo got every datagram, exact, in order`,
    )
    const relayed = arrived[0]!
    const replies = line(lines.length)
    await echo.send(
      'echo',
      relayed.from,
      relayed.port,
      arrived.map((m) => Buffer.from(m.data, 'hex')),
    )
    // Bounded: a reply lost (a broken fallback) fails here, not at tap's timeout.
    const { got } = (await within(replies, 15_000, 'every reply at the client')) as { got: string[] }
    t.same(
      [...got].sort(),
      payloads.map((p) => p.toString('hex')).sort(),
      `burst ${n}: the client got every reply, exact (each fragmented on the small MTU)`,
    )
    s = status()
  }
  t.ok(s.gsoRefused! >= 1, `the kernel refused a segmented send (gsoRefused ${s.gsoRefused}, ${bursts} bursts)`)
  t.equal(s.packetsUp, bursts * COUNT + 1, 'packetsUp counts every datagram')
  t.equal(s.packetsDown, bursts * COUNT + 1, 'packetsDown counts every reply, sent one by one after the refusal')
  t.equal(s.drops.sendFailed, 0, 'no datagram failed')

  client.stdin.end()
  t.equal(await closed, 0, 'the client ended cleanly')
  const conns = await waitConnsOf(ug, 's', 1)
  t.match(
    conns[0]!.fields,
    { reason: 'eof', pktUp: String(bursts * COUNT + 1), pktDown: String(bursts * COUNT + 1) },
    'the access line counts them',
  )
  // The first association starts the UDP thread: its epoll and eventfd stay.
  const added = ug.fdList().filter((f) => !before.has(f))
  t.ok(
    added.every((f) => /anon_inode:\[(eventpoll|eventfd)\]/.test(f)),
    "the association leaves only the UDP thread's epoll/eventfd",
    { added },
  )
  ug.baselineFds = before.size + added.length
  await finish(t, ug, 1)
})
