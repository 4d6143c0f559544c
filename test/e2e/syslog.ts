// log.syslog: each line goes to the syslog socket as an RFC 3164 datagram
// at its own priority (facility daemon, ident ugate[pid]), the form OpenWrt's
// logd reads. A unix datagram socket stands in for /dev/log (Node has no unix
// datagram sockets: a python3 receiver prints each datagram as a JSON line).

import { spawn } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { checkCleanExit, startUgate } from '../lib/ugate.js'
import { tempDir } from '../lib/temp.js'

const RECEIVER = `
import json, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
print("listening", flush=True)
while True:
    print(json.dumps(s.recv(4096).decode()), flush=True)
`

t.test('lines reach the syslog socket at their own priority', async (t) => {
  const dir = tempDir(t, 'ugate-syslog-')
  const sock = join(dir, 'log')
  const rx = spawn('python3', ['-c', RECEIVER, sock], { stdio: ['ignore', 'pipe', 'inherit'] })
  t.teardown(() => rx.kill())
  const got: string[] = []
  const waiters: Array<() => void> = []
  let buf = ''
  rx.stdout.setEncoding('utf8')
  rx.stdout.on('data', (d: string) => {
    buf += d
    const lines = buf.split('\n')
    buf = lines.pop()!
    for (const l of lines) if (l !== 'listening') got.push(JSON.parse(l) as string)
    if (lines.length > 0) for (const w of waiters.splice(0)) w()
  })
  await new Promise<void>((res) => waiters.push(res))
  const until = async (re: RegExp) => {
    while (!got.some((g) => re.test(g))) await new Promise<void>((res) => waiters.push(res))
    return got.find((g) => re.test(g))!
  }

  const file = join(dir, 'ugate.json')
  const config = (level: string) => ({
    log: { level, syslog: sock },
    ubus: { socket: join(dir, 'no-ubusd.sock') },
    listeners: [{ name: 'lan', type: 'mixed', listen: '127.0.0.1:0' }],
  })
  writeFileSync(file, JSON.stringify(config('info')))
  // Nothing comes on stderr: `ready` is awaited on the syslog socket.
  const ug = await startUgate(t, ['run', '--config', file], { waitReady: false })
  const pid = ug.proc.pid!
  const ident = `ugate\\[${pid}\\]: `
  const stamp = '[A-Z][a-z]{2} [ 1-3][0-9] [0-2][0-9]:[0-5][0-9]:[0-6][0-9]'

  const info = await until(/ ready /)
  t.match(
    info,
    new RegExp(`^<30>${stamp} ${ident}ready listeners=1$`),
    'info: <30> = daemon.info, no ISO time or level word',
  )
  const warn = await until(/ubus-unavailable/)
  t.match(warn, new RegExp(`^<28>${stamp} ${ident}ubus-unavailable socket=\\S+ error=`), 'warn: <28> = daemon.warning')
  writeFileSync(file, '{bad')
  ug.proc.kill('SIGHUP')
  const err = await until(/reload-failed/)
  t.match(err, new RegExp(`^<27>${stamp} ${ident}reload-failed error=.*kept="old config"$`), 'error: <27> = daemon.err')
  t.notOk(
    got.some((g) => / debug /.test(g) || /^<31>/.test(g)),
    'nothing below the level',
  )
  const res = await ug.stop()
  t.same({ code: res.code, signal: res.signal }, { code: 0, signal: null }, 'exits 0 after SIGTERM')
  t.match(await until(/ stopped$/), new RegExp(`^<30>${stamp} ${ident}stopped$`))
  t.same(res.stderr, [], 'nothing on stderr while the syslog socket is there')
})

t.test('no syslog socket: one notice, then the lines on stderr', async (t) => {
  const dir = tempDir(t, 'ugate-syslog-')
  const file = join(dir, 'ugate.json')
  writeFileSync(
    file,
    JSON.stringify({
      log: { syslog: join(dir, 'absent') },
      listeners: [{ name: 'lan', type: 'mixed', listen: '127.0.0.1:0' }],
    }),
  )
  const ug = await startUgate(t, ['run', '--config', file])
  t.match(ug.lines[0], /^ugate: syslog \S+absent: ENOENT .*logging to stderr until it is back$/)
  checkCleanExit(t, ug, await ug.stop())
})

t.test('--log-syslog (what the init script passes) selects syslog for a config without log.syslog', async (t) => {
  const dir = tempDir(t, 'ugate-syslog-')
  const file = join(dir, 'ugate.json')
  writeFileSync(file, JSON.stringify({ listeners: [{ name: 'lan', type: 'mixed', listen: '127.0.0.1:0' }] }))
  const ug = await startUgate(t, ['run', '--config', file, '--log-syslog', join(dir, 'absent')])
  t.match(ug.lines[0], /^ugate: syslog \S+absent: ENOENT .*logging to stderr until it is back$/)
  checkCleanExit(t, ug, await ug.stop())
})
