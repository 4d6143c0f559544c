// OpenWrt-style operation of the real binary: a uci config file, SIGHUP
// reload that keeps live relays and survives a broken file, and `ugate ctl`
// over the admin socket.

import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { connect, echoRoundTrip, echoServer, prngBytes, sha256, waitClose, within } from '../lib/servers.js'
import { checkCleanExit, finish, runUgate, startUgate } from '../lib/ugate.js'
import { tempDir } from '../lib/temp.js'

/** A uci file with one forward listener on port 0 and an admin socket. */
function uci(target: string, socket: string, extra = ''): string {
  const [host, port] = [target.slice(0, target.lastIndexOf(':')), target.slice(target.lastIndexOf(':') + 1)]
  return `# written by test/e2e/reload.ts
config ugate 'main'
	option log_level 'info'
	option admin_socket '${socket}'
	option shutdown_grace '2'

config listener
	option name 'fwd'
	option type 'forward'
	option address '127.0.0.1'
	option port '0'
	option target "${host}:${port}"
${extra}`
}

t.test('uci config: a forward works, ctl status and connections answer', async (t) => {
  const dir = tempDir(t, 'ugate-reload-')
  const srv = await echoServer(t)
  const socket = join(dir, 'ugate.sock')
  const file = join(dir, 'ugate')
  writeFileSync(file, uci(srv.target, socket))
  const ug = await startUgate(t, ['run', '--config', file])
  const payload = prngBytes(7, 100_000)
  t.equal(sha256(await within(echoRoundTrip(ug.port('fwd'), payload), 10_000, 'echo')), sha256(payload), 'echo intact')
  await ug.waitForConns(1)

  const status = runUgate(['ctl', '--json', '--socket', socket, 'status'])
  t.equal(status.code, 0, 'ctl status exits 0')
  const s = JSON.parse(status.stdout) as Record<string, unknown>
  t.match(s, {
    running: true,
    listeners: [{ name: 'fwd', type: 'forward' }],
    connections: { live: 0, total: 1 },
    bytes: { up: payload.length, down: payload.length },
  })
  t.equal(s.pid, ug.pid, 'status names the daemon pid')

  // A live relay shows up in connections.
  const live = await connect(ug.port('fwd'))
  live.write('x')
  await new Promise<void>((res) => live.once('data', () => res()))
  const conns = runUgate(['ctl', '--json', '--socket', socket, 'connections'])
  t.equal(conns.code, 0)
  t.match(JSON.parse(conns.stdout), { connections: [{ listener: 'fwd', stage: 'relay', dst: srv.target }] })
  live.end()
  await waitClose(live)
  await finish(t, ug, 2)

  const gone = runUgate(['ctl', '--json', '--socket', socket, 'status'])
  t.equal(gone.code, 1, 'ctl exits 1 when no daemon answers')
  t.match(JSON.parse(gone.stdout), { running: false, error: /ugate\.sock/ }, 'and still prints a JSON object')
})

t.test('uci errors name file and line', async (t) => {
  const dir = tempDir(t, 'ugate-reload-')
  const file = join(dir, 'ugate')
  writeFileSync(
    file,
    uci(
      '127.0.0.1:80',
      join(dir, 's'),
      "\nconfig listener\n\toption name 'bad'\n\toption type 'forward'\n\toption address '127.0.0.1'\n\toption port '80x'\n\toption target '127.0.0.1:1'\n",
    ),
  )
  const r = runUgate(['check', '--config', file])
  t.equal(r.code, 2)
  t.match(
    r.stderr.join('\n'),
    new RegExp(`${file}:14: @listener\\[1\\]\\.address/port: .*80x`),
    'file:line, section, value',
  )
  writeFileSync(file, "config ugate 'main'\n\toption log_level 'loud\n")
  const q = runUgate(['check', '--config', file])
  t.equal(q.code, 2)
  t.match(q.stderr.join('\n'), new RegExp(`${file}:2: .*quote`), 'syntax errors name the line')
})

t.test('SIGHUP reload: new listener set, live relay kept, broken file keeps the old config', async (t) => {
  const dir = tempDir(t, 'ugate-reload-')
  const a = await echoServer(t)
  const b = await echoServer(t)
  const socket = join(dir, 'ugate.sock')
  const file = join(dir, 'ugate')
  writeFileSync(file, uci(a.target, socket))
  const ug = await startUgate(t, ['run', '--config', file])
  const oldPort = ug.port('fwd')

  // A relay that is live across both reloads.
  const live = await connect(oldPort)
  const first = prngBytes(1, 50_000)
  const got: Buffer[] = []
  live.on('data', (d: Buffer) => got.push(d))
  live.write(first)

  // Reload 1: the same listener now goes to b, and a second listener appears.
  writeFileSync(
    file,
    uci(
      b.target,
      socket,
      `\nconfig listener\n\toption name 'extra'\n\toption type 'forward'\n\toption address '127.0.0.1'\n\toption port '0'\n\toption target '${a.target}'\n`,
    ),
  )
  process.kill(ug.pid, 'SIGHUP')
  await ug.waitForLine(/ info reloaded listeners=2 /)
  t.equal(ug.matching(/ info listening name=fwd /).length, 1, 'the kept listener was not reopened')
  t.equal(
    ug.matching(/ info listening name=extra type=forward addr=127\.0\.0\.1:\d+/).length,
    1,
    'the new listener is listening',
  )
  const viaFwd = prngBytes(2, 10_000)
  t.equal(
    sha256(await within(echoRoundTrip(oldPort, viaFwd), 10_000, 'echo after reload')),
    sha256(viaFwd),
    'kept port serves',
  )
  await ug.waitForConns(1)
  t.match(ug.events('conn').at(-1)!.fields, { listener: 'fwd', dst: b.target }, 'new connections use the new target')

  // Reload 2: a broken file is refused and the running config stays.
  writeFileSync(file, "config listener\n\toption type 'nonsense'\n")
  process.kill(ug.pid, 'SIGHUP')
  await ug.waitForLine(/ error reload-failed error=.*@listener\[0\]/)
  const again = prngBytes(3, 10_000)
  t.equal(
    sha256(await within(echoRoundTrip(oldPort, again), 10_000, 'echo after bad reload')),
    sha256(again),
    'still serving',
  )

  // The relay that started before both reloads still carries data both ways.
  const more = prngBytes(4, 50_000)
  live.write(more)
  live.end()
  await waitClose(live)
  t.equal(sha256(Buffer.concat(got)), sha256(Buffer.concat([first, more])), 'the live relay kept every byte')
  const conns = await ug.waitForConns(3)
  t.match(conns.find((c) => c.fields.up === String(first.length + more.length))?.fields, {
    dst: a.target,
    reason: 'eof',
  })
  // The reload added one listening socket; nothing else may stay open.
  t.equal(ug.fdCount(), ug.baselineFds + 1, 'fds: baseline + the new listener', { fds: ug.fdList() })
  checkCleanExit(t, ug, await ug.stop())
})

t.test('ugate nft prints the capture ruleset of a config', async (t) => {
  const dir = tempDir(t, 'ugate-reload-')
  const file = join(dir, 'cap.json')
  const config = {
    dial: { mark: 255 },
    listeners: [{ name: 'tp', type: 'redirect', listen: '[::]:15001' }],
    capture: { enabled: true, listener: 'tp', lanInterfaces: ['br-lan'], ports: [80, 443, 8443] },
  }
  writeFileSync(file, JSON.stringify(config))
  const r = runUgate(['nft', '--config', file])
  t.equal(r.code, 0, 'exit 0')
  t.match(
    r.stdout,
    /^table inet ugate\ndelete table inet ugate\ntable inet ugate \{/m,
    'replaces a stale table in one transaction',
  )
  t.match(r.stdout, /redirect to :15001/, 'redirects to the listener port')
  t.match(r.stdout, /meta mark 0x000000ff return|meta mark 255 return/, "skips ugate's own marked traffic")
  t.match(r.stdout, /elements = \{ 80, 443, 8443 \}/, 'the port set')
  writeFileSync(file, JSON.stringify({ ...config, capture: { ...config.capture, enabled: false } }))
  const off = runUgate(['nft', '--config', file])
  t.equal(off.code, 2, 'no ruleset without capture')
  t.match(off.stderr.join('\n'), /capture\.enabled/)
  writeFileSync(
    file,
    JSON.stringify({ ...config, capture: { ...config.capture, lanInterfaces: ['br-lan; flush ruleset'] } }),
  )
  const bad = runUgate(['nft', '--config', file])
  t.equal(bad.code, 2, 'a hostile interface name is a config error')
  t.match(bad.stderr.join('\n'), /capture\.lanInterfaces/)
})
