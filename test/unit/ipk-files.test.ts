// What lands on the router (files/): the procd init script and the
// uci-defaults script, run under dash and busybox ash with rc.common,
// procd.sh, functions.sh and uci replaced by recording stand-ins. Checks the
// procd parameters, enabled '0', reload = SIGHUP, the nft table being dropped
// on every stop path, the triggers, and that uci-defaults is idempotent.

import { spawnSync } from 'node:child_process'
import { readFileSync, statSync, writeFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import t from 'tap'
import { repoRoot } from '../lib/ugate.js'
import type { TestLike } from '../lib/ugate.js'
import { tempDir } from '../lib/temp.js'

const INIT = resolve(repoRoot, 'files/etc/init.d/ugate')
const DEFAULTS = resolve(repoRoot, 'files/etc/uci-defaults/99-ugate')
const CONFIG = resolve(repoRoot, 'files/etc/config/ugate')

const SHELLS = [['dash'], ['busybox', 'sh']].filter(
  ([cmd]) => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0,
)

// Stand-ins: each records its call as "name [arg] [arg]..." in $LOG.
const STUBS = String.raw`
log() { { printf '%s' "$1"; shift; for a in "$@"; do printf ' [%s]'  "$a"; done; echo; } >> "$LOG"; }
config_load() { log config_load "$@"; }
config_get() {
	case "$3" in
	shutdown_grace) eval "$1=\${UGATE_GRACE:-\$4}" ;;
	log_syslog) eval "$1=\${UGATE_SYSLOG:-\$4}" ;;
	*) eval "$1=\$4" ;;
	esac
}
config_get_bool() {
	case "$3" in
	enabled) eval "$1=\${UGATE_ENABLED:-\$4}" ;;
	*) eval "$1=\$4" ;;
	esac
}
procd_open_instance() { log procd_open_instance "$@"; }
procd_set_param() { log procd_set_param "$@"; }
procd_close_instance() { log procd_close_instance "$@"; }
procd_running() { [ "$UGATE_RUNNING" = 1 ]; }
procd_send_signal() { log procd_send_signal "$@"; }
procd_add_reload_trigger() { log procd_add_reload_trigger "$@"; }
procd_add_reload_interface_trigger() { log procd_add_reload_interface_trigger "$@"; }
procd_add_interface_trigger() { log procd_add_interface_trigger "$@"; }
nft() { log nft "$@"; }
# rc.common (procd variant): start/stop/reload around the script's hooks.
start() { log start; start_service "$@"; }
stop() {
	stop_service "$@"
	log procd_kill ugate
	if type service_stopped >/dev/null 2>&1; then service_stopped; fi
}
`

function runInit(
  t: TestLike,
  shell: string[],
  action: string,
  env: Record<string, string> = {},
): { lines: string[]; code: number | null; stderr: string } {
  const dir = tempDir(t, 'ipk-init-')
  const log = join(dir, 'log')
  writeFileSync(log, '')
  const harness = join(dir, 'harness.sh')
  writeFileSync(harness, `${STUBS}\n. "$1"\n"$2"\n`)
  const r = spawnSync(shell[0]!, [...shell.slice(1), harness, INIT, action], {
    encoding: 'utf8',
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', LOG: log, ...env },
  })
  return {
    lines: readFileSync(log, 'utf8')
      .split('\n')
      .filter((l) => l !== ''),
    code: r.status,
    stderr: r.stderr,
  }
}

const DROP = 'nft [delete] [table] [inet] [ugate]'

t.test('shell syntax, shellcheck, modes', async (t) => {
  for (const f of [INIT, DEFAULTS]) {
    const r = spawnSync('sh', ['-n', f], { encoding: 'utf8' })
    t.equal(r.status, 0, `sh -n ${f}`, { stderr: r.stderr })
    t.equal(statSync(f).mode & 0o777, 0o755, `${f} is 0755 in the tree`)
  }
  t.match(readFileSync(INIT, 'utf8'), /^#!\/bin\/sh \/etc\/rc\.common\n/, 'init script runs through rc.common')
  if (spawnSync('sh', ['-c', 'command -v shellcheck']).status === 0) {
    for (const f of [INIT, DEFAULTS]) {
      const r = spawnSync('shellcheck', [f], { encoding: 'utf8' })
      t.equal(r.status, 0, `shellcheck ${f}`, { stdout: r.stdout })
    }
  } else {
    t.comment('shellcheck not installed (apt-get install shellcheck): skipped that check')
  }
  t.ok(SHELLS.length > 0, 'dash or busybox is there to run the scripts')
})

for (const shell of SHELLS) {
  const sh = shell.join(' ')

  t.test(`${sh}: start (enabled) registers one procd instance`, async (t) => {
    const r = runInit(t, shell, 'start')
    t.equal(r.code, 0, 'exit 0', { stderr: r.stderr })
    t.same(r.lines, [
      'start',
      'config_load [ugate]',
      'procd_open_instance',
      'procd_set_param [command] [/usr/bin/ugate] [run] [--config] [/etc/config/ugate] [--log-syslog] [/dev/log]',
      'procd_set_param [respawn]',
      'procd_set_param [stdout] [1]',
      'procd_set_param [stderr] [1]',
      'procd_set_param [limits] [nofile=65535 65535]',
      'procd_set_param [file] [/etc/config/ugate]',
      'procd_set_param [reload_signal] [HUP]',
      'procd_set_param [term_timeout] [7]',
      'procd_close_instance',
    ])
  })

  t.test(`${sh}: term_timeout follows shutdown_grace`, async (t) => {
    t.ok(
      runInit(t, shell, 'start', { UGATE_GRACE: '30' }).lines.includes('procd_set_param [term_timeout] [32]'),
      'grace 30 → 32',
    )
    t.ok(
      runInit(t, shell, 'start', { UGATE_GRACE: 'soon' }).lines.includes('procd_set_param [term_timeout] [7]'),
      'junk → default 5 + 2',
    )
  })

  t.test(`${sh}: option log_syslog picks the socket passed as --log-syslog`, async (t) => {
    t.ok(
      runInit(t, shell, 'start', { UGATE_SYSLOG: '/tmp/log.sock' }).lines.some((l) =>
        l.endsWith('[--log-syslog] [/tmp/log.sock]'),
      ),
      'log_syslog /tmp/log.sock → --log-syslog /tmp/log.sock',
    )
  })

  t.test(`${sh}: enabled '0' starts nothing and drops the nft table`, async (t) => {
    const r = runInit(t, shell, 'start', { UGATE_ENABLED: '0' })
    t.equal(r.code, 0, 'exit 0', { stderr: r.stderr })
    t.notOk(
      r.lines.some((l) => l.startsWith('procd_open_instance')),
      'no instance',
    )
    t.ok(r.lines.includes(DROP), 'nft delete table inet ugate')
  })

  t.test(`${sh}: stop drops the nft table (stop_service and service_stopped)`, async (t) => {
    const r = runInit(t, shell, 'stop')
    t.equal(r.code, 0, 'exit 0', { stderr: r.stderr })
    t.same(r.lines, [DROP, 'procd_kill [ugate]', DROP])
  })

  t.test(`${sh}: reload while running sends SIGHUP, nothing else`, async (t) => {
    const r = runInit(t, shell, 'reload_service', { UGATE_RUNNING: '1' })
    t.equal(r.code, 0, 'exit 0', { stderr: r.stderr })
    t.same(r.lines, ['config_load [ugate]', 'procd_send_signal [ugate] [*] [HUP]'])
  })

  t.test(`${sh}: reload while stopped starts it`, async (t) => {
    const r = runInit(t, shell, 'reload_service', { UGATE_RUNNING: '0' })
    t.ok(r.lines.includes('start') && r.lines.includes('procd_open_instance'), 'started', { lines: r.lines })
    t.notOk(
      r.lines.some((l) => l.startsWith('procd_send_signal')),
      'no signal',
    )
  })

  t.test(`${sh}: reload after enabled '0' stops it and drops the table`, async (t) => {
    const r = runInit(t, shell, 'reload_service', { UGATE_RUNNING: '1', UGATE_ENABLED: '0' })
    t.ok(r.lines.includes('procd_kill [ugate]'), 'stopped', { lines: r.lines })
    t.ok(r.lines.includes(DROP), 'table dropped')
    t.notOk(
      r.lines.some((l) => l.startsWith('procd_send_signal') || l.startsWith('procd_open_instance')),
      'no signal, no instance',
    )
  })

  t.test(`${sh}: triggers: config change, WAN and LAN up`, async (t) => {
    const r = runInit(t, shell, 'service_triggers')
    t.same(r.lines, [
      'procd_add_reload_trigger [ugate]',
      'procd_add_reload_interface_trigger [wan]',
      'procd_add_reload_interface_trigger [lan]',
    ])
  })
}

// ---------------------------------------------------------------------------
// uci-defaults, with `uci` backed by a key=value file

const UCI = String.raw`
uci() {
	[ "$1" = -q ] && shift
	case "$1" in
	get) awk -v k="$2" 'index($0, k "=") == 1 { print substr($0, length(k) + 2); found = 1; exit } END { exit !found }' "$DB" ;;
	set)
		key=$(printf '%s\n' "$2" | cut -d= -f1)
		awk -v k="$key" 'index($0, k "=") != 1' "$DB" > "$DB.new"
		echo "$2" >> "$DB.new"
		mv "$DB.new" "$DB"
		echo "set $2" >> "$LOG"
		;;
	commit) echo "commit $2" >> "$LOG" ;;
	*) return 1 ;;
	esac
}
`

function runDefaults(
  t: TestLike,
  shell: string[],
  db: string[],
): { code: number | null; db: string[]; log: string[]; stderr: string } {
  const dir = tempDir(t, 'ipk-defaults-')
  const dbFile = join(dir, 'db')
  const log = join(dir, 'log')
  writeFileSync(dbFile, db.map((l) => `${l}\n`).join(''))
  writeFileSync(log, '')
  const harness = join(dir, 'harness.sh')
  // As default_postinst runs it: sourced in a subshell, deleted on status 0.
  writeFileSync(harness, `${UCI}\n( . "$1" )\n`)
  const r = spawnSync(shell[0]!, [...shell.slice(1), harness, DEFAULTS], {
    encoding: 'utf8',
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', DB: dbFile, LOG: log },
  })
  const lines = (f: string) =>
    readFileSync(f, 'utf8')
      .split('\n')
      .filter((l) => l !== '')
  return { code: r.status, db: lines(dbFile).sort(), log: lines(log), stderr: r.stderr }
}

const LISTENERS = [
  'ugate.@listener[0]=listener',
  'ugate.@listener[0].name=guest',
  'ugate.@listener[0].address=192.168.1.1',
  'ugate.@listener[1]=listener',
  'ugate.@listener[1].name=lan',
  'ugate.@listener[1].address=192.168.1.1',
]

for (const shell of SHELLS) {
  const sh = shell.join(' ')

  t.test(`${sh}: uci-defaults moves the 'lan' listener to network.lan.ipaddr, once`, async (t) => {
    const first = runDefaults(t, shell, ['network.lan.ipaddr=192.168.8.1/24', ...LISTENERS])
    t.equal(first.code, 0, 'exit 0', { stderr: first.stderr })
    t.same(first.log, ['set ugate.@listener[1].address=192.168.8.1', 'commit ugate'], 'only the lan listener changes')
    t.ok(first.db.includes('ugate.@listener[0].address=192.168.1.1'), "the 'guest' listener keeps its address")
    const second = runDefaults(t, shell, first.db)
    t.equal(second.code, 0, 'second run: exit 0')
    t.same(second.log, [], 'second run changes nothing (idempotent)')
    t.same(second.db, first.db, 'same config after the second run')
  })

  t.test(`${sh}: uci-defaults leaves chosen addresses and the default LAN alone`, async (t) => {
    const cases: Array<[string, string[]]> = [
      ['LAN is 192.168.1.1', ['network.lan.ipaddr=192.168.1.1', ...LISTENERS]],
      ['no network.lan.ipaddr', LISTENERS],
      [
        'the user chose an address',
        [
          'network.lan.ipaddr=10.0.0.1',
          ...LISTENERS.map((l) => l.replace('[1].address=192.168.1.1', '[1].address=10.9.9.9')),
        ],
      ],
      ['ipaddr is not IPv4', ['network.lan.ipaddr=fd00::1', ...LISTENERS]],
      ['no listeners', ['network.lan.ipaddr=10.0.0.1']],
    ]
    for (const [what, db] of cases) {
      const r = runDefaults(t, shell, db)
      t.equal(r.code, 0, `${what}: exit 0`, { stderr: r.stderr })
      t.same(r.log, [], `${what}: nothing set, nothing committed`)
    }
  })

  t.test(`${sh}: uci-defaults takes the first address of a list`, async (t) => {
    const r = runDefaults(t, shell, ['network.lan.ipaddr=10.1.1.1/24 10.2.2.2/24', ...LISTENERS])
    t.same(r.log, ['set ugate.@listener[1].address=10.1.1.1', 'commit ugate'])
  })
}

t.test('the shipped config is what the daemon and the init script expect', async (t) => {
  const text = readFileSync(CONFIG, 'utf8')
  t.match(
    text,
    /^config ugate 'main'\n(\t.*\n|#.*\n)*\toption enabled '1'\n/m,
    "config ugate 'main' with option enabled '1'",
  )
  for (const line of [
    "\toption log_level 'info'",
    "\toption splice '1'",
    "\toption mark '255'",
    "\toption admin_socket '/var/run/ugate.sock'",
    "\toption log_syslog '/dev/log'",
    "\toption ubus_socket '/var/run/ubus/ubus.sock'",
    "\toption name 'lan'",
    "\toption type 'mixed'",
    "\toption address '192.168.1.1'",
    "\toption port '1080'",
    "config capture 'capture'",
    "\tlist lan 'br-lan'",
    "\tlist ports '80'",
    "\tlist ports '443'",
  ]) {
    t.ok(text.split('\n').includes(line), JSON.stringify(line))
  }
  t.match(text, /config capture 'capture'\n\toption enabled '0'\n/, 'capture is off by default')
})
