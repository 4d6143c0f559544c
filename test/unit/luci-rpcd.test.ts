// The rpcd exec plugin luci/root/usr/libexec/rpcd/luci.ugate, run the way
// rpcd runs it (openwrt/rpcd plugin.c): `luci.ugate list` once, printing one
// JSON object of methods; `luci.ugate call METHOD` with the arguments as JSON
// on stdin, printing one JSON object (rpcd answers anything else, or no
// object, with an error). ugate itself is a fake script here (UGATE_BIN);
// the plugin runs under the system sh and, when installed, busybox sh with
// only busybox applets on PATH, as on OpenWrt.

import { spawnSync } from 'node:child_process'
import { chmodSync, existsSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import t, { type Test } from 'tap'
import { luciDir, repoRoot } from '../lib/luci-standin.js'
import { tempDir } from '../lib/temp.js'

const PLUGIN = join(luciDir, 'root/usr/libexec/rpcd/luci.ugate')

const dir = tempDir(t, 'luci-rpcd-')

/** A fake ugate: logs its arguments, prints $FAKE_ERR to stderr and $FAKE_OUT to stdout, exits $FAKE_RC. */
const FAKE = join(dir, 'ugate')
writeFileSync(
  FAKE,
  `#!/bin/sh
printf '%s\\n' "$*" >> "$FAKE_LOG"
[ -z "$FAKE_ERR" ] || printf '%s\\n' "$FAKE_ERR" >&2
[ -z "$FAKE_OUT" ] || printf '%s\\n' "$FAKE_OUT"
exit "\${FAKE_RC:-0}"
`,
)
chmodSync(FAKE, 0o755)

/** A fake uci (only for the case that tests it): prints the admin socket. */
const UCI_DIR = join(dir, 'with-uci')
spawnSync('mkdir', ['-p', UCI_DIR])
writeFileSync(
  join(UCI_DIR, 'uci'),
  `#!/bin/sh
[ "$*" = "-q get ugate.@ugate[0].admin_socket" ] && echo /tmp/from-uci.sock
`,
)
chmodSync(join(UCI_DIR, 'uci'), 0o755)

/** The shells to run the plugin with: the system sh, and busybox sh with busybox applets only. */
interface Shell {
  name: string
  cmd: string
  args: string[]
  path: string
}
const shells: Shell[] = [{ name: 'sh', cmd: 'sh', args: [], path: process.env.PATH ?? '/usr/bin:/bin' }]
const busybox = ['/usr/bin/busybox', '/bin/busybox'].find((p) => existsSync(p))
if (busybox) {
  const bb = join(dir, 'busybox-bin')
  spawnSync('mkdir', ['-p', bb])
  for (const applet of ['sh', 'tr', 'sed', 'head', 'mktemp', 'rm', 'cat', 'printf', 'mkdir'])
    symlinkSync(busybox, join(bb, applet))
  shells.push({ name: 'busybox sh', cmd: busybox, args: ['sh'], path: bb })
}

interface Run {
  status: number | null
  stdout: string
  stderr: string
  /** What the fake ugate was called with, one line per call. */
  calls: string[]
}

let runs = 0
function run(shell: Shell, args: string[], env: Record<string, string> = {}, stdin = '{}', pathPrefix?: string): Run {
  const log = join(dir, `calls-${runs++}`)
  writeFileSync(log, '')
  const r = spawnSync(shell.cmd, [...shell.args, PLUGIN, ...args], {
    input: stdin,
    encoding: 'utf8',
    env: { PATH: pathPrefix ? `${pathPrefix}:${shell.path}` : shell.path, UGATE_BIN: FAKE, FAKE_LOG: log, ...env },
    timeout: 10_000,
  })
  return {
    status: r.status,
    stdout: r.stdout,
    stderr: r.stderr,
    calls: readFileSync(log, 'utf8').split('\n').filter(Boolean),
  }
}

/** rpcd's reading: the output is one JSON object (json-c parses it; anything else is an error). */
function rpcdObject(t: Test, stdout: string): Record<string, unknown> {
  let v: unknown
  try {
    v = JSON.parse(stdout)
  } catch (e) {
    t.fail(`not JSON: ${JSON.stringify(stdout)}`)
    return {}
  }
  t.ok(typeof v === 'object' && v !== null && !Array.isArray(v), 'one JSON object')
  return v as Record<string, unknown>
}

const STATUS = {
  running: true,
  version: '0.1.0',
  pid: 4242,
  uptime: 61,
  listeners: [{ name: 'a "quoted" name', type: 'mixed', addr: '[::1]:1080' }],
  connections: { live: 1, total: 2 },
  bytes: { up: 1, down: 2 },
  rules: [],
  capture: { enabled: false, listener: '' },
}
const CONNECTIONS = { connections: [{ listener: 'proxy', src: '127.0.0.1:5000', stage: 'relay', ms: 12 }] }

for (const shell of shells) {
  t.test(`under ${shell.name}`, async (t) => {
    t.test('list: the methods, each with its (empty) argument table', async (t) => {
      const r = run(shell, ['list'], {}, '')
      t.equal(r.status, 0)
      const o = rpcdObject(t, r.stdout)
      t.same(o, { status: {}, connections: {} })
      t.same(r.calls, [], 'list does not run ugate')
    })

    t.test('call status: ugate ctl status, printed as it is', async (t) => {
      const r = run(shell, ['call', 'status'], { FAKE_OUT: JSON.stringify(STATUS) })
      t.equal(r.status, 0)
      t.same(rpcdObject(t, r.stdout), STATUS)
      t.same(r.calls, ['ctl --json status'])
    })

    t.test('call connections: ugate ctl connections', async (t) => {
      const r = run(shell, ['call', 'connections'], { FAKE_OUT: JSON.stringify(CONNECTIONS) })
      t.same(rpcdObject(t, r.stdout), CONNECTIONS)
      t.same(r.calls, ['ctl --json connections'])
    })

    t.test('an answer over several lines', async (t) => {
      const r = run(shell, ['call', 'status'], { FAKE_OUT: JSON.stringify(STATUS, null, 2) })
      t.same(rpcdObject(t, r.stdout), STATUS)
    })

    t.test('ugate not running: its error object, with running false', async (t) => {
      const failure = { running: false, error: '/var/run/ugate.sock: ENOENT (No such file or directory)' }
      let r = run(shell, ['call', 'status'], { FAKE_OUT: JSON.stringify(failure), FAKE_RC: '1' })
      t.equal(r.status, 0)
      t.same(rpcdObject(t, r.stdout), failure)
      r = run(shell, ['call', 'connections'], { FAKE_OUT: '{"error":"no answer"}', FAKE_RC: '1' })
      t.same(rpcdObject(t, r.stdout), { running: false, error: 'no answer' })
      r = run(shell, ['call', 'status'], { FAKE_OUT: '{ }', FAKE_RC: '1' })
      t.same(rpcdObject(t, r.stdout), { running: false })
    })

    t.test('ugate fails without JSON: the message, escaped', async (t) => {
      const err = 'ugate: unknown command "ctl" \\ (see "ugate --help")\ttab\u0001ctrl\nsecond line'
      const r = run(shell, ['call', 'status'], { FAKE_ERR: err, FAKE_RC: '2' })
      t.equal(r.status, 0)
      const o = rpcdObject(t, r.stdout)
      t.equal(o.running, false)
      t.match(String(o.error), /exit 2/)
      t.match(String(o.error), /unknown command "ctl" \\ \(see "ugate --help"\) tab ctrl second line/)
    })

    t.test('ugate prints something that is not an object', async (t) => {
      for (const out of ['hello', '[1,2]', '{"truncated":', '42']) {
        const r = run(shell, ['call', 'status'], { FAKE_OUT: out })
        const o = rpcdObject(t, r.stdout)
        t.equal(o.running, false, out)
        t.type(o.error, 'string')
      }
      const r = run(shell, ['call', 'status'], {})
      t.same(rpcdObject(t, r.stdout), { running: false, error: 'ugate ctl status failed (exit 0)' }, 'no output at all')
    })

    t.test('ugate missing or not executable', async (t) => {
      let r = run(shell, ['call', 'status'], { UGATE_BIN: join(dir, 'nonexistent') })
      t.same(rpcdObject(t, r.stdout), { running: false, error: `${join(dir, 'nonexistent')} is not installed` })
      const plain = join(dir, 'not-executable')
      writeFileSync(plain, '#!/bin/sh\necho {}\n')
      r = run(shell, ['call', 'status'], { UGATE_BIN: plain })
      t.equal(rpcdObject(t, r.stdout).running, false)
      r = run(shell, ['call', 'status'], { UGATE_BIN: 'no-such-ugate-command' })
      t.equal(rpcdObject(t, r.stdout).running, false, 'a command name not on PATH')
    })

    t.test('the admin socket: UGATE_SOCKET, else uci', async (t) => {
      let r = run(shell, ['call', 'status'], { FAKE_OUT: '{}', UGATE_SOCKET: '/tmp/x y.sock' })
      t.same(r.calls, ['ctl --json --socket /tmp/x y.sock status'])
      r = run(shell, ['call', 'connections'], { FAKE_OUT: '{}' }, '{}', UCI_DIR)
      t.same(r.calls, ['ctl --json --socket /tmp/from-uci.sock connections'], 'ugate.@ugate[0].admin_socket')
      r = run(shell, ['call', 'status'], { FAKE_OUT: '{}' })
      t.same(r.calls, ['ctl --json status'], "no uci: ugate's default socket")
    })

    t.test('arguments on stdin are ignored', async (t) => {
      const r = run(
        shell,
        ['call', 'status'],
        { FAKE_OUT: JSON.stringify(STATUS) },
        '{"ubus_rpc_session":"x","extra":[1,2,3]}',
      )
      t.same(rpcdObject(t, r.stdout), STATUS)
    })

    t.test('an unknown method still answers with an object', async (t) => {
      const r = run(shell, ['call', 'reboot'])
      t.equal(r.status, 0)
      t.match(rpcdObject(t, r.stdout), { error: /unknown method reboot/ })
      t.same(r.calls, [])
    })

    t.test('no command: usage on stderr, exit 2', async (t) => {
      const r = run(shell, [])
      t.equal(r.status, 2)
      t.equal(r.stdout, '')
      t.match(r.stderr, /usage/)
    })
  })
}

const built = resolve(repoRoot, 'build/ugate')
t.test(
  'with the real ugate (when built): no gateway listening',
  { skip: existsSync(built) ? false : 'build/ugate not built' },
  async (t) => {
    const r = spawnSync('sh', [PLUGIN, 'call', 'status'], {
      input: '{}',
      encoding: 'utf8',
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', UGATE_BIN: built, UGATE_SOCKET: join(dir, 'no-gateway.sock') },
    })
    t.equal(r.status, 0)
    const o = rpcdObject(t, r.stdout)
    t.equal(o.running, false)
    t.match(String(o.error), /no-gateway\.sock/)
  },
)
