// The x86_64 .ipk on a router VM: test/qemu/run.sh boots Debian's cloud
// kernel under qemu-system-x86_64 (software emulation, no KVM) with busybox
// and nft (test/qemu/build-image.sh), installs build/ipk/ugate_*_x86_64.ipk
// the way opkg does (its postinst starts ugate through /etc/init.d/ugate under
// a procd stand-in), turns capture on with uci-style edits and
// `/etc/init.d/ugate reload` (SIGHUP), then waits for this file.
//
// From this host, through QEMU's forwards on 127.0.0.1 (the host is the LAN
// client 192.168.1.2; the guest's "internet" is 203.0.113.10, an echo server
// in a network namespace behind the router's wan, reachable only through
// ugate: a forward-chain guard in the router drops everything forwarded):
//   - SOCKS5 CONNECT server.test:8000 (name resolved by ugate) through the
//     shipped mixed listener 'lan' on 192.168.1.1:1080;
//   - HTTP CONNECT 203.0.113.10:8080 through the same listener;
//   - captured: a plain connection to 203.0.113.10:8000, which the router's
//     nft (ugate's table, LAN interface br-lan) REDIRECTs to the redirect
//     listener 'tp'; ugate dials the original destination.
// Each carries pseudo-random bytes that must come back exactly. The guest's
// report (ugate's access lines, nft, ctl status, stop) is checked after.
//
//   UGATE_QEMU_IPK=FILE   another package than build/ipk's (development)
//
// The .ipk is tested once, in the build/ugate suite (it holds its own
// binary); with UGATE_BIN naming another binary this file only says so. The
// first run downloads the Debian packages (cached in build/qemu/).

import { spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { existsSync, readdirSync } from 'node:fs'
import { join, relative, resolve } from 'node:path'
import { createInterface } from 'node:readline'
import t from 'tap'
import type { Test } from 'tap'
import { type Reader, connectReader, socks5Connect } from '../lib/proxy.js'
import { KiB, destroyClients, prngBytes, sha256, within } from '../lib/servers.js'
import { type LogLine, parseLogLine, repoRoot } from '../lib/ugate.js'

t.setTimeout(20 * 60_000)

const BODY = 512 * KiB
const RUN_MS = 8 * 60_000
const IPK_DIR = resolve(repoRoot, 'build/ipk')

/** The one build/ipk/ugate_<ver>-r<rel>_x86_64.ipk (or $UGATE_QEMU_IPK), or why there is none. */
function findIpk(): { file?: string; problem?: string } {
  const given = process.env.UGATE_QEMU_IPK
  if (given)
    return existsSync(given) ? { file: resolve(repoRoot, given) } : { problem: `UGATE_QEMU_IPK=${given}: no such file` }
  const names = existsSync(IPK_DIR) ? readdirSync(IPK_DIR).filter((n) => /^ugate_.+_x86_64\.ipk$/.test(n)) : []
  if (names.length === 0) {
    return {
      problem:
        'build/ipk/ugate_<version>-r<release>_x86_64.ipk is missing: build it with `UGATE_ARCHS=x86_64 openwrt/build-ipk.sh`',
    }
  }
  if (names.length > 1) return { problem: `several x86_64 packages in build/ipk: ${names.join(', ')}` }
  return { file: join(IPK_DIR, names[0]!) }
}

/** run.sh's "QR key=value" lines, in order, and waits on them. */
class VmRun {
  readonly lines: string[] = []
  readonly stderr: string[] = []
  readonly exited: Promise<number | null>
  private waiters: Array<{ key: string; resolve: (v: string) => void }> = []
  private readonly proc: ChildProcess

  constructor(ipk: string) {
    this.proc = spawn(
      resolve(repoRoot, 'test/qemu/run.sh'),
      ['--hold', '--ipk', ipk, '--timeout', String(RUN_MS / 1000 - 30)],
      {
        cwd: repoRoot,
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    )
    createInterface({ input: this.proc.stdout! }).on('line', (l) => this.add(l))
    createInterface({ input: this.proc.stderr! }).on('line', (l) => this.stderr.push(l))
    this.exited = new Promise((res) => this.proc.on('close', (code) => res(code)))
    void this.exited.then(() => {
      for (const w of this.waiters.splice(0)) w.resolve('')
    })
  }

  private add(l: string) {
    const m = /^QR ([A-Za-z0-9_.-]+)=(.*)$/.exec(l)
    if (!m) return
    this.lines.push(l)
    for (const w of this.waiters.slice()) {
      if (w.key === m[1]) {
        this.waiters.splice(this.waiters.indexOf(w), 1)
        w.resolve(m[2]!)
      }
    }
  }

  /** Every value of a key. */
  all(key: string): string[] {
    const p = `QR ${key}=`
    return this.lines.filter((l) => l.startsWith(p)).map((l) => l.slice(p.length))
  }

  /** The first value of a key, if any. */
  get(key: string): string | undefined {
    return this.all(key)[0]
  }

  /** The last value of a key, if any. */
  last(key: string): string | undefined {
    return this.all(key).at(-1)
  }

  /** The first value of a key once it comes; '' when run.sh exits first. */
  wait(key: string): Promise<string> {
    const have = this.get(key)
    if (have !== undefined) return Promise.resolve(have)
    return new Promise((res) => this.waiters.push({ key, resolve: res }))
  }

  kill(): void {
    if (this.proc.exitCode === null) this.proc.kill('SIGTERM')
  }
}

/** Send `body`, half-close, read until the peer's FIN: the echo must be exact. */
async function echoed(t: Test, r: Reader, body: Buffer, what: string): Promise<boolean> {
  r.sock.end(body)
  const got = await within(r.rest(), 120_000, `${what}: echo`)
  const same = got.data.equals(body)
  t.ok(same, `${what}: ${body.length} bytes came back exactly`, {
    sent: { bytes: body.length, sha256: sha256(body) },
    got: { bytes: got.data.length, sha256: sha256(got.data), ended: got.ended, error: String(got.error) },
  })
  return same
}

/** Read an HTTP response head (up to the blank line) byte by byte. */
async function readHead(r: Reader): Promise<string> {
  let head = ''
  while (!head.endsWith('\r\n\r\n') && head.length < 4096) head += (await r.read(1)).toString('latin1')
  return head
}

if (process.env.UGATE_BIN && resolve(repoRoot, process.env.UGATE_BIN) !== resolve(repoRoot, 'build/ugate')) {
  t.fail(`test/package/ tests the packaged binaries, not UGATE_BIN=${process.env.UGATE_BIN}: run it without UGATE_BIN`)
} else {
  t.test(
    'router VM: opkg install of the x86_64 .ipk, init script, uci capture + reload, relays from the host',
    async (t) => {
      const { file: ipk, problem } = findIpk()
      if (!ipk) {
        t.fail(problem!)
        return
      }
      const vm = new VmRun(ipk)
      t.teardown(() => {
        destroyClients()
        vm.kill()
      })
      t.comment(`booting the router VM with ${relative(repoRoot, ipk)} (software emulation)`)

      const phase = await within(vm.wait('phase'), RUN_MS, 'the guest to reach phase=host-checks')
      const results = { socks: false, connect: false, captured: false }
      if (phase !== 'host-checks') {
        t.fail('the guest never asked for the host checks', {
          lines: vm.lines.slice(-60),
          stderr: vm.stderr.slice(-30),
        })
      } else {
        // (a run that had to start again with other ports prints them again)
        const socksPort = Number(vm.last('socks-port'))
        const capturePort = Number(vm.last('capture-port'))
        const controlPort = Number(vm.last('control-port'))

        await t.test('SOCKS5 through the mixed listener to server.test:8000', async (t) => {
          const s = await within(
            socks5Connect(socksPort, { host: 'server.test', port: 8000 }),
            60_000,
            'SOCKS5 handshake',
          )
          t.same([...s.choice], [5, 0], 'method: no authentication')
          t.equal(s.reply?.[1], 0, 'CONNECT succeeded (REP 0)', { reply: s.reply?.toString('hex') })
          if (s.reply?.[1] === 0) results.socks = await echoed(t, s.reader, prngBytes(0x50c5, BODY), 'SOCKS5')
          else s.reader.sock.destroy()
        })

        await t.test('HTTP CONNECT through the mixed listener to 203.0.113.10:8080', async (t) => {
          const r = await within(connectReader(socksPort), 30_000, 'connect to the mixed listener')
          r.sock.write('CONNECT 203.0.113.10:8080 HTTP/1.1\r\nHost: 203.0.113.10:8080\r\n\r\n')
          const head = await within(readHead(r), 60_000, 'CONNECT response')
          t.match(head, /^HTTP\/1\.1 200 /, 'CONNECT answered 200', { head })
          if (/^HTTP\/1\.1 200 /.test(head))
            results.connect = await echoed(t, r, prngBytes(0xc0de, BODY), 'HTTP CONNECT')
          else r.sock.destroy()
        })

        await t.test('captured: a LAN connection to 203.0.113.10:8000, REDIRECTed by nft into ugate', async (t) => {
          const r = await within(connectReader(capturePort), 30_000, 'connect to the capture forward')
          results.captured = await echoed(t, r, prngBytes(0xca97, BODY), 'captured connection')
        })

        const control = await within(connectReader(controlPort), 30_000, 'connect to the control port')
        control.sock.write(
          `host checks: socks=${results.socks} connect=${results.connect} captured=${results.captured}\n`,
        )
        const ack = (await within(control.rest(), 60_000, 'control answer')).data.toString().trim()
        t.equal(ack, 'ok', 'the guest took the control line')
      }

      const code = await within(vm.exited, RUN_MS, 'run.sh to finish')
      const diag = { tail: vm.lines.slice(-40), stderr: vm.stderr.slice(-30), console: 'build/qemu/console.log' }
      t.equal(code, 0, 'run.sh exits 0 (result=pass)', diag)
      t.equal(vm.get('qemu-exit'), '0', 'the VM powered off by itself (qemu exit 0)', diag)
      t.equal(vm.get('guest-done'), 'ok', 'every guest-side check passed', {
        failed: vm.all('check-failed'),
        ...diag,
      })
      t.same(vm.all('check-failed'), [], 'no guest-side check failed')

      // install
      t.equal(
        vm.get('ipk-members'),
        './debian-binary ./data.tar.gz ./control.tar.gz',
        'outer tar: debian-binary, data, control',
      )
      t.equal(vm.get('ipk-arch'), 'x86_64', 'Architecture: x86_64')
      t.equal(vm.get('ipk-postinst-exit'), '0', 'postinst configure exits 0', { output: vm.all('postinst-output') })
      t.same(vm.all('uci-defaults-left'), [], 'default_postinst ran and removed /etc/uci-defaults/*')
      t.match(vm.get('init-enabled') ?? '', /\bS99ugate\b/, 'default_postinst enabled /etc/init.d/ugate (S99ugate)')
      t.match(
        vm.get('procd-param-command') ?? '',
        /^\/usr\/bin\/ugate run --config \/etc\/config\/ugate --log-syslog \/dev\/log$/,
        'procd command (syslog selected by the init script)',
      )
      t.equal(vm.get('procd-param-stderr'), '1', 'stderr to syslog')
      t.equal(vm.get('nofile-limit'), '65535 65535', 'limits nofile applied to the running ugate')

      // start, reload
      const ready = Number(vm.get('boot-to-ready'))
      t.ok(ready > 0, `ugate ready ${ready.toFixed(2)} s after QEMU started`, { line: vm.get('ready-line') })
      t.equal(vm.get('reload-same-pid'), '1', '/etc/init.d/ugate reload kept the process (SIGHUP, no restart)')
      t.match(
        vm.get('capture-on') ?? '',
        / info capture-on .*port=15001 interfaces=br-lan/,
        'capture-on after the reload',
      )
      const nft = vm.all('nft-ugate').join('\n')
      t.match(nft, /iifname != "br-lan" return/, "ugate's table matches the LAN interface br-lan")
      t.match(nft, /elements = \{ 80, 443, 8000 \}/, 'capture ports: the shipped 80, 443 + the added 8000')
      t.match(nft, /tcp dport @ugate_ports redirect to :15001/, 'REDIRECT to the tp listener')

      // what ugate logged for the host's connections
      const conns = vm
        .all('conn')
        .map((l) => parseLogLine(l))
        .filter((l): l is LogLine => l !== null)
      const one = (what: string, listener: string, dst: string) => {
        const c = conns.find((x) => x.fields.listener === listener && x.fields.dst === dst)
        t.match(
          c?.fields,
          { src: /^192\.168\.1\.2:\d+$/, up: String(BODY), down: String(BODY), reason: 'eof', action: 'direct' },
          `${what}: access line listener=${listener} dst=${dst}, ${BODY} bytes each way`,
          { conns: conns.map((x) => x.raw) },
        )
      }
      one('SOCKS5', 'lan', 'server.test:8000')
      one('HTTP CONNECT', 'lan', '203.0.113.10:8080')
      one('captured', 'tp', '203.0.113.10:8000')
      t.equal(vm.get('forward-dropped-packets'), '0', 'the router forwarded nothing: every byte went through ugate')
      t.match(
        vm.get('ctl-status') ?? '',
        /"capture":\{"enabled":true,"listener":"tp"[,}]/,
        'ugate ctl status: capture on',
      )

      // stop
      t.equal(vm.get('capture-off'), '1', '/etc/init.d/ugate stop: capture-off logged')
      t.equal(vm.get('table-after-stop'), 'absent', 'table inet ugate gone after stop')
      t.equal(vm.get('process-after-stop'), 'gone', 'ugate gone after stop')
      t.equal(vm.get('exits'), '', 'no exit (or respawn) of ugate before the stop')

      t.comment(`boot-to-ready: ${vm.get('boot-to-ready')} s (QEMU start → ugate's "ready" line on the console)`)
      t.comment(`boot-to-init: ${vm.get('boot-to-init')} s; whole VM run: ${vm.get('total-seconds')} s`)
      t.comment(`kernel/userland: ${vm.get('image')}`)
      t.comment(
        `ugate ctl status after the host checks: ${(/"relays":\{[^}]*\}/.exec(vm.get('ctl-status') ?? '') ?? [''])[0]}`,
      )
    },
  )
}
