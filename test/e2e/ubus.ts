// ugate on ubus, against the ubusd stand-in (test/lib/ubusd-standin.ts): the
// object's signature, calls answered as the admin socket answers them, close
// of a handshaking and of a relaying connection, events,
// and ubusd absent at start, restarting, or sending garbage. The stand-in's
// ids are the real ubusd's from the capture, so ugate's bytes are compared
// with what it sent to the real ubusd (test/fixtures/ubus/real-ugate.txt).

import net from 'node:net'
import { join } from 'node:path'
import t from 'tap'
import type { Test } from 'tap'
import { MSG } from '../../src/core/ubus/message.js'
import { writeConfigFile } from '../lib/config.js'
import { echoServer } from '../lib/servers.js'
import { captured } from '../lib/ubus-fixtures.js'
import { UbusdStandin } from '../lib/ubusd-standin.js'
import { checkCleanExit, finish, runUgate, startUgate } from '../lib/ugate.js'
import { tempDir } from '../lib/temp.js'

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex')
const real = captured('real-ugate').filter((m) => m.conn === 9 && m.dir === 'c2s')

function setup(t: Test) {
  const dir = tempDir(t, 'ugate-ubus-')
  const ubusd = new UbusdStandin(join(dir, 'ubus.sock'))
  t.teardown(() => ubusd.stop())
  return { dir, ubusd }
}

t.test('the ugate object on ubus', async (t) => {
  const { dir, ubusd } = setup(t)
  await ubusd.start()
  const admin = join(dir, 'ugate.sock')
  const srv = await echoServer(t)
  const file = writeConfigFile(t, {
    admin: { socket: admin },
    ubus: { socket: ubusd.path },
    limits: { handshakeTimeout: 30 },
    listeners: [
      { name: 'fwd', type: 'forward', listen: '127.0.0.1:0', target: srv.target },
      { name: 'socks', type: 'socks', listen: '127.0.0.1:0' },
    ],
  })
  const ug = await startUgate(t, ['run', '--config', file])
  await ug.waitForLine(/ info ubus-registered object=ugate /)

  t.equal(
    hex(ubusd.received[0]!),
    hex(real.find((m) => m.bytes[1] === MSG.ADD_OBJECT)!.bytes),
    'ADD_OBJECT as sent to the real ubusd',
  )
  t.same(ubusd.signature, [
    ['status', {}],
    ['connections', {}],
    ['reload', {}],
    ['close', { id: 3 }], // BLOBMSG_TYPE_STRING: "17" or "udp-17"; an integer works too
  ])

  const conns = await ubusd.call('connections')
  t.same(conns, { status: 0, data: { connections: [] } })
  const replies = ubusd.received.slice(1).map(hex)
  const realReplies = real.filter((m) => m.bytes[1] === MSG.DATA || m.bytes[1] === MSG.STATUS).map((m) => hex(m.bytes))
  t.same(replies, realReplies.slice(2, 4), 'DATA + STATUS byte-equal to the replies sent to the real ubusd')

  const status = await ubusd.call('status')
  const ctl = JSON.parse(runUgate(['ctl', '--json', '--socket', admin, 'status']).stdout) as Record<string, unknown>
  const s = status.data as Record<string, unknown>
  t.equal(status.status, 0)
  for (const k of Object.keys(ctl)) if (k !== 'uptime') t.same(s[k], ctl[k], `status.${k} equals ugate ctl status`)
  t.same(Object.keys(s), Object.keys(ctl))

  // A client stuck in its SOCKS handshake: close {id} ends it.
  const c = net.connect(ug.port('socks'), '127.0.0.1')
  c.on('error', () => {}) // closed during the handshake: a reset
  await new Promise<void>((res) => c.once('connect', () => res()))
  let live: Array<{ id: number; stage: string }> = []
  while (live.length === 0) live = ((await ubusd.call('connections')).data as { connections: typeof live }).connections
  t.equal(live[0]!.stage, 'handshake')
  const closed = new Promise<void>((res) => c.on('close', () => res()))
  t.same(await ubusd.call('close', { id: live[0]!.id }), { status: 0, data: { closed: live[0]!.id } })
  await closed

  // A relaying connection: close {id} asks the relay thread to end it.
  const fdsBefore = ug.fdCount()
  const r = net.connect(ug.port('fwd'), '127.0.0.1')
  r.on('error', () => {})
  const relayClosed = new Promise<void>((res) => r.on('close', () => res()))
  await new Promise<void>((res) => r.once('connect', () => res()))
  r.write('ping')
  await new Promise<void>((res) => r.once('data', () => res())) // echoed: the relay moves bytes
  live = ((await ubusd.call('connections')).data as { connections: typeof live }).connections
  t.same(
    live.map((l) => l.stage),
    ['relay'],
  )
  // The id as a string this time, as the signature says.
  t.same(await ubusd.call('close', { id: String(live[0]!.id) }), {
    status: 0,
    data: { closed: String(live[0]!.id) },
  })
  await relayClosed
  await ug.waitForLine(/ info conn listener=fwd .* reason=closed /)
  t.equal(ug.fdCount(), fdsBefore, 'fds back to what they were before the relayed connection')
  t.same(await ubusd.call('close', { id: live[0]!.id }), { status: 4, data: undefined }, 'closed once: NOT_FOUND')
  t.same(await ubusd.call('close', { id: 999 }), { status: 4, data: undefined }, 'unknown id: NOT_FOUND')
  t.same(await ubusd.call('close', {}), { status: 2, data: undefined }, 'no id: INVALID_ARGUMENT')
  t.same(await ubusd.call('nope'), { status: 3, data: undefined }, 'unknown method: METHOD_NOT_FOUND')

  const event = new Promise((res) => ubusd.once('event', res))
  t.same(await ubusd.call('reload'), { status: 0, data: {} })
  t.equal(await event, 'ugate.reload')
  t.same(ubusd.events, [{ id: 'ugate.reload', data: { listeners: 2, rules: 0, live: 0 } }])
  await ug.waitForLine(/ info reloaded /)
  await finish(t, ug, 1)
})

t.test('ubusd absent at start, restarting, or sending garbage: ugate stays up and registers again', async (t) => {
  const { ubusd } = setup(t)
  const file = writeConfigFile(t, {
    ubus: { socket: ubusd.path },
    listeners: [{ name: 'socks', type: 'socks', listen: '127.0.0.1:0' }],
  })
  const ug = await startUgate(t, ['run', '--config', file])
  await ug.waitForLine(/ warn ubus-unavailable .*error=/)
  await ubusd.start()
  await ug.waitForLine(/ info ubus-registered /)

  await ubusd.stop()
  await ug.waitForLine(/ warn ubus-lost .*error="ubusd closed the connection"/)
  await ubusd.start()
  await ug.waitForLines(/ info ubus-registered /, 2)
  t.same((await ubusd.call('connections')).status, 0, 'answers after re-registering')

  // A message whose length lies past 1 MiB: the connection is dropped, not the process.
  ubusd.sendRaw(Uint8Array.from([0, MSG.DATA, 0, 9, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff]))
  await ug.waitForLine(/ warn ubus-lost .*error="bad message: message of \d+ bytes exceeds/)
  await ug.waitForLines(/ info ubus-registered /, 3)
  // The baseline was taken while ubusd was absent: now one more fd, the ubus connection.
  t.equal(ug.fdCount(), ug.baselineFds + 1, 'no fd leaked over three connections')
  checkCleanExit(t, ug, await ug.stop())
})
