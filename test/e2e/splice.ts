// splice(2) is really used in splice mode and not in copy mode: checked
// from ugate's own stats/conn lines, and cross-checked with strace. Splice
// mode copies a direction until one read shows a bulk flow (16 KiB): a short
// exchange makes no splice call at all, a bulk transfer does.

import { spawn, spawnSync } from 'node:child_process'
import t from 'tap'
import type { Test } from 'tap'
import {
  connect,
  dataServer,
  echoRoundTrip,
  echoServer,
  hashIncoming,
  MiB,
  prngBytes,
  sendPrng,
  sha256,
  within,
} from '../lib/servers.js'
import { finish, fwd, parseLogLine, startUgate } from '../lib/ugate.js'
import type { StartOptions, Ugate } from '../lib/ugate.js'
import { straced } from '../lib/strace.js'

const SIZE = 4 * MiB
const SHORT = 300 // bytes each way of a short exchange: far below one bulk read
type Mode = 'splice' | 'copy'
type Flow = 'bulk' | 'short'

/** Stop ugate after its one connection; return the conn and stats fields. */
async function results(t: Test, ug: Ugate) {
  const [conn] = await ug.waitForConns(1)
  const res = await finish(t, ug, 1)
  const statsLine = res.stderr.find((l) => / info stats /.test(l))
  const stats = statsLine ? parseLogLine(statsLine)!.fields : {}
  return { conn: conn!.fields, stats }
}

function start(t: Test, target: string, mode: Mode, opts: StartOptions): Promise<Ugate> {
  const args = ['run', ...fwd('127.0.0.1:0', target), ...(mode === 'copy' ? ['--no-splice'] : [])]
  return startUgate(t, args, { readyTimeoutMs: 30_000, ...opts })
}

/** SHORT bytes to an echo server and back, then EOF both ways. */
async function shortExchange(t: Test, mode: Mode, opts: StartOptions = {}) {
  const srv = await echoServer(t)
  const ug = await start(t, srv.target, mode, opts)
  const payload = prngBytes(0x5407, SHORT)
  const echoed = await within(echoRoundTrip(ug.port(), payload), 30_000, 'short echo')
  t.equal(sha256(echoed), sha256(payload), 'short exchange echoed intact')
  return results(t, ug)
}

/** One 4 MiB-each-way transfer (or a short exchange); return conn and stats fields. */
async function transfer(t: Test, mode: Mode, opts: StartOptions = {}, flow: Flow = 'bulk') {
  if (flow === 'short') return shortExchange(t, mode, opts)
  const srv = await dataServer(t, { bytes: SIZE, seed: 0x5b1c, mode: 'simultaneous' })
  const ug = await start(t, srv.target, mode, opts)
  const c = await connect(ug.port())
  const [got, sent] = await within(Promise.all([hashIncoming(c), sendPrng(c, 0x5eed, SIZE)]), 60_000, 'transfer')
  const sc = await srv.conn(0)
  const [sgot, ssent] = await within(Promise.all([sc.received, sc.sent]), 30_000, 'server side')
  t.equal(got.hash, ssent.hash, 'downstream data intact')
  t.equal(sgot.hash, sent.hash, 'upstream data intact')
  c.destroy()
  return results(t, ug)
}

for (const mode of ['splice', 'copy'] as const) {
  t.test(`stats and conn line report the relay mode (${mode})`, async (t) => {
    const { conn, stats } = await transfer(t, mode)
    t.equal(stats.relays, '1', 'stats relays=1')
    const spliceCalls = Number(stats.spliceCalls)
    const copyCalls = Number(stats.copyCalls)
    t.ok(
      Number.isInteger(spliceCalls) && Number.isInteger(copyCalls),
      'stats has numeric spliceCalls and copyCalls',
      stats,
    )
    if (mode === 'splice') {
      t.ok(spliceCalls > 0, `spliceCalls > 0 (${stats.spliceCalls})`)
      t.equal(conn.splice, '1', 'conn line splice=1')
    } else {
      t.equal(spliceCalls, 0, 'spliceCalls = 0')
      t.ok(copyCalls > 0, `copyCalls > 0 (${stats.copyCalls})`)
      t.equal(conn.splice, '0', 'conn line splice=0')
    }
  })
}

t.test('splice mode: a short exchange is copied, without a splice call', async (t) => {
  const { conn, stats } = await shortExchange(t, 'splice')
  t.equal(stats.spliceCalls, '0', 'stats spliceCalls=0')
  t.ok(Number(stats.copyCalls) > 0, `copyCalls > 0 (${stats.copyCalls})`)
  t.match(conn, { up: String(SHORT), down: String(SHORT), reason: 'eof', splice: '0' }, 'conn line')
})

// Urgent data (MSG_OOB, not inline: never part of the stream) makes a read
// stop short at its mark, and a splice stop there for good (EAGAIN): the
// relay must read on past it, in copy mode (it stops reading after a short
// read otherwise) and in splice mode (a bulk flow; main before the relay's
// copy-first change stalled there too).
for (const [flow, lead] of [
  ['short', 3],
  ['bulk', 200 * 1024],
] as const) {
  t.test(`urgent data does not stall the relay (${flow})`, async (t) => {
    const srv = await echoServer(t)
    const ug = await start(t, srv.target, 'splice', {})
    // Sent at once, before the relay has the socket: `lead` bytes, the urgent
    // '!', 'def'. Then read the echo.
    const client = `
import socket, sys
lead = int(sys.argv[2])
s = socket.create_connection(('127.0.0.1', int(sys.argv[1])))
s.settimeout(10)
s.sendall(b'a' * lead); s.send(b'!', socket.MSG_OOB); s.sendall(b'def')
got = 0
tail = b''
try:
    while got < lead + 3:
        d = s.recv(65536)
        if not d: break
        got += len(d)
        tail = (tail + d)[-3:]
except socket.timeout:
    pass
sys.stdout.write('%d %s' % (got, tail.decode()))
`
    const py = spawn('python3', ['-c', client, String(ug.port()), String(lead)], {
      stdio: ['ignore', 'pipe', 'inherit'],
    })
    let out = ''
    py.stdout.on('data', (d: Buffer) => (out += d.toString()))
    const code = await within(new Promise<number | null>((res) => py.once('close', res)), 30_000, 'python client')
    t.equal(code, 0, 'python client exit 0')
    t.equal(out, `${lead + 3} def`, 'every byte came back, the ones behind the urgent mark last')
    const { conn } = await results(t, ug)
    const n = String(lead + 3)
    t.match(conn, { up: n, down: n, reason: 'eof', splice: flow === 'bulk' ? '1' : '0' }, 'conn line')
  })
}

t.test('strace cross-check', async (t) => {
  const probe = spawnSync('strace', ['-V'], { encoding: 'utf8' })
  if (probe.error || probe.status !== 0) {
    t.fail(
      `strace is required for the splice cross-check but could not be run: ${probe.error?.message ?? probe.stderr}`,
    )
    return
  }
  const cases = [
    ['splice', 'bulk'],
    ['copy', 'bulk'],
    ['splice', 'short'],
  ] as const
  for (const [mode, flow] of cases) {
    await t.test(`${mode}, ${flow}`, async (t) => {
      const st = straced(t, 'splice')
      const { conn, stats } = await transfer(t, mode, st.opts, flow)
      const trace = st.lines(t)
      // `splice(` starts a call; with -f a call may be split into
      // `<unfinished ...>` and `<... splice resumed>` lines.
      const calls = trace.filter((l) => /\bsplice\(/.test(l))
      const ok = trace.filter((l) => /\bsplice\b/.test(l) && /= [1-9]\d*$/.test(l))
      t.comment(
        `strace: ${calls.length} splice calls, ${ok.length} moved bytes; ugate stats spliceCalls=${stats.spliceCalls}`,
      )
      if (mode === 'splice' && flow === 'bulk') {
        t.ok(calls.length > 0, `strace shows splice(2) calls (${calls.length})`)
        t.ok(ok.length > 0, `some splice(2) calls moved data (${ok.length})`, { sample: calls.slice(0, 5) })
        t.equal(conn.splice, '1', 'conn line splice=1 under strace')
      } else {
        t.equal(calls.length, 0, `strace shows no splice(2) calls (${mode}, ${flow})`, { sample: calls.slice(0, 5) })
        t.equal(stats.spliceCalls, '0', 'stats spliceCalls=0 under strace')
      }
    })
  }
})
