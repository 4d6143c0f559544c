// `ugate ctl` against a running gateway: tables by default, --json for
// scripts, rules with hits, close by ID, traffic one line per second until
// SIGINT, and a clear message when no daemon answers.

import { spawn } from 'node:child_process'
import t from 'tap'
import { listener, startConfig } from '../lib/config.js'
import { socks5Connect } from '../lib/proxy.js'
import { destroyClients, echoServer } from '../lib/servers.js'
import { finish, requireBinary, runUgate, ugateBin } from '../lib/ugate.js'
import { tempSocket } from '../lib/temp.js'

t.teardown(destroyClients)

t.test('ctl status, connections, rules, close, traffic; tables and --json', async (t) => {
  requireBinary()
  const socket = tempSocket(t, 'ugate-ctl-')
  const echo = await echoServer(t)
  const ug = await startConfig(t, {
    relay: { shutdownGrace: 1 },
    admin: { socket },
    listeners: [listener('fwd', 'forward', { target: echo.target }), listener('mix', 'mixed')],
    rules: [{ name: 'no-ads', domainSuffix: ['ads.test'], action: 'reject' }],
  })
  const ctl = (...args: string[]) => runUgate(['ctl', '--socket', socket, ...args])

  const status = ctl('status')
  t.equal(status.code, 0)
  t.match(status.stdout, new RegExp(`^ugate \\S+, pid ${ug.pid}, up \\d+ s\\n`))
  t.match(status.stdout, /\nLISTENER +TYPE +ADDRESS\nfwd +forward +127\.0\.0\.1:\d+\nmix +mixed +127\.0\.0\.1:\d+\n$/)
  t.match(JSON.parse(ctl('--json', 'status').stdout), { running: true, pid: ug.pid })

  t.equal(ctl('connections').stdout, 'no live connections\n')
  // Through the mixed listener: a JS-routed connection, whose bytes the relay publishes live
  // (a native forward's are known only at its end).
  const { reader } = await socks5Connect(ug.port('mix'), { host: '127.0.0.1', port: echo.port })
  const live = reader.sock
  live.write('x')
  await reader.read(1)
  const conns = ctl('connections')
  t.match(
    conns.stdout,
    new RegExp(
      `^ID .*\\n(\\d+) +mix +127\\.0\\.0\\.1:\\d+ +${echo.target.replace(/\./g, '\\.')} +- +default→direct +relay `,
    ),
  )
  const id = Number(/\n(\d+) /.exec(conns.stdout)![1])
  const json = JSON.parse(ctl('--json', 'connections').stdout)
  t.match(json, { connections: [{ id, listener: 'mix', stage: 'relay', up: Number, down: Number }] })

  const rules = ctl('rules')
  t.equal(
    rules.stdout,
    '#  TYPE          PAYLOAD   PROXY   HITS\n0  DomainSuffix  ads.test  REJECT  0\n1  Match         *         DIRECT  1\n',
  )
  t.match(JSON.parse(ctl('--json', 'rules').stdout), { rules: [{ type: 'DomainSuffix', extra: { hitCount: 0 } }, {}] })

  // traffic: a line per second; the bytes sent meanwhile show up.
  const tr = spawn(ugateBin, ['ctl', '--socket', socket, '--json', 'traffic'], { stdio: ['ignore', 'pipe', 'pipe'] })
  const exited = new Promise<string>((r) => tr.once('close', (code, signal) => r(signal ?? String(code))))
  let out = ''
  let sent = false
  await new Promise<void>((resolve) =>
    tr.stdout!.on('data', (d: Buffer) => {
      out += d.toString()
      const lines = out.split('\n').filter((l) => l !== '')
      // The bytes go once a first line proves the baseline was taken before them.
      if (!sent && lines.length > 0) {
        sent = true
        live.write(Buffer.alloc(20000, 1))
      }
      const up = lines.slice(1).reduce((n, l) => n + (JSON.parse(l) as { up: number }).up, 0)
      if (up >= 20000) resolve()
    }),
  )
  t.match(JSON.parse(out.split('\n')[0]!), { up: Number, down: Number, upTotal: Number, downTotal: Number })
  tr.kill('SIGINT')
  t.match(await exited, /^(SIGINT|130)$/, 'runs until interrupted')

  const connsBefore = ug.events('conn').length
  const closed = ctl('close', String(id))
  t.same([closed.code, closed.stdout], [0, `closed ${id}\n`])
  await new Promise<void>((r) => {
    live.once('end', () => r())
    live.once('close', () => r())
  })
  // The relay thread closes the sockets before the loop thread takes the
  // connection off the live list: its access line says it has.
  await ug.waitForConns(connsBefore + 1)
  const again = ctl('close', String(id))
  t.same([again.code, again.stdout, again.stderr], [1, '', [`ugate: no live connection ${id}`]])
  t.match(JSON.parse(ctl('--json', 'close', String(id)).stdout), { error: `no live connection ${id}` })
  await finish(t, ug, 1)

  const gone = ctl('status')
  t.equal(gone.code, 1)
  t.equal(gone.stdout, '')
  t.match(gone.stderr.join('\n'), new RegExp(`^ugate: not running\\? cannot ask ${socket}: `))
  t.match(JSON.parse(ctl('--json', 'status').stdout), { running: false, error: /admin\.sock/ })
})
