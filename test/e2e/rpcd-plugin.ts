// The LuCI rpcd exec plugin (luci/root/usr/libexec/rpcd/luci.ugate), run the
// way rpcd runs it — `list`, then `call METHOD` with JSON on stdin — against
// a running ugate and its admin socket, under sh and under busybox sh.

import { spawnSync } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import t from 'tap'
import { connect, echoServer, waitClose } from '../lib/servers.js'
import { finish, repoRoot, startUgate, ugateBin } from '../lib/ugate.js'
import { tempDir } from '../lib/temp.js'

const plugin = resolve(repoRoot, 'luci/root/usr/libexec/rpcd/luci.ugate')

function rpcd(shell: string[], args: string[], env: Record<string, string>): { code: number | null; json: unknown } {
  const r = spawnSync(shell[0]!, [...shell.slice(1), plugin, ...args], {
    input: '{}',
    env: { ...process.env, ...env },
    encoding: 'utf8',
    timeout: 10_000,
  })
  let json: unknown
  try {
    json = JSON.parse(r.stdout)
  } catch {
    json = { notJson: r.stdout, stderr: r.stderr }
  }
  return { code: r.status, json }
}

const shells: string[][] = [['sh']]
if (spawnSync('busybox', ['true']).status === 0) shells.push(['busybox', 'sh'])
else t.fail('busybox is not installed (Debian package busybox): the plugin must run under busybox sh as on OpenWrt')

t.test('rpcd plugin against a running ugate', async (t) => {
  const dir = tempDir(t, 'ugate-rpcd-')
  const socket = join(dir, 'ugate.sock')
  const srv = await echoServer(t)
  const file = join(dir, 'ugate.json')
  writeFileSync(
    file,
    JSON.stringify({
      admin: { socket },
      listeners: [{ name: 'fwd', type: 'forward', listen: '127.0.0.1:0', target: srv.target }],
    }),
  )
  const gw = await startUgate(t, ['run', '--config', file])
  const env = { UGATE_BIN: ugateBin, UGATE_SOCKET: socket }
  const live = await connect(gw.port('fwd'))
  live.write('ping')
  await new Promise<void>((res) => live.once('data', () => res()))

  for (const sh of shells) {
    const name = sh.join(' ')
    const list = rpcd(sh, ['list'], env)
    t.equal(list.code, 0, `${name}: list exits 0`)
    t.same(list.json, { status: {}, connections: {} }, `${name}: list names the two methods`)

    const status = rpcd(sh, ['call', 'status'], env)
    t.equal(status.code, 0, `${name}: call status exits 0`)
    t.match(
      status.json,
      { running: true, pid: gw.pid, listeners: [{ name: 'fwd', type: 'forward' }], connections: { live: 1 } },
      `${name}: status from the daemon`,
    )

    const conns = rpcd(sh, ['call', 'connections'], env)
    t.equal(conns.code, 0, `${name}: call connections exits 0`)
    t.match(
      conns.json,
      { connections: [{ listener: 'fwd', stage: 'relay', dst: srv.target }] },
      `${name}: the live connection`,
    )
  }
  live.end()
  await waitClose(live)
  await finish(t, gw, 1)

  for (const sh of shells) {
    const down = rpcd(sh, ['call', 'status'], env)
    t.match(
      down.json,
      { running: false, error: /ugate\.sock/ },
      `${sh.join(' ')}: still one JSON object when the daemon is gone`,
    )
  }
})
