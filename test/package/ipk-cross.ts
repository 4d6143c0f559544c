// The cross-built binaries (openwrt/toolchain.sh) on their own ABI under
// qemu-user: ELF header and float-ABI attributes, `--version`, `check` of the
// shipped uci config, one forward transfer each way (splice and copy mode,
// sha256 both directions) against a Node server on 127.0.0.1, QUIC Initial
// decryption (mbedTLS) against node:crypto, mutual TLS 1.3 in each suite
// (native/tls.c and mbedTLS on this ABI: AES instructions where it has them,
// ChaCha20-Poly1305) against openssl s_server, and the bytecode each
// target's own jsc writes compared with what its ugate embeds.
//
//   UGATE_CROSS_ARCHS="mipsel_24kc mips_24kc"   only these archs (default: all)
//   UGATE_CROSS_DIR=build/cross                  where toolchain.sh put them
//
// Runs openwrt/toolchain.sh first (seconds when cached; the first musl builds
// take minutes). Packaging is tested once, in the release-binary suite: with
// UGATE_BIN naming another binary (the ASan suite) this file only says so.

import { spawn, spawnSync } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { existsSync, readFileSync, statSync } from 'node:fs'
import { join, resolve } from 'node:path'
import t from 'tap'
import type { Test } from 'tap'
import { connect, dataServer, destroyClients, hashIncoming, MiB, sendPrng, within } from '../lib/servers.js'
import { parseLogLine, repoRoot, WAIT_MS } from '../lib/ugate.js'
import { sniffQuicPacketLines } from '../lib/quic.js'
import { issueIdentity, makeIdentity } from '../lib/hbone.js'
import { opensslServer } from '../lib/openssl.js'
import { tempDir } from '../lib/temp.js'

t.setTimeout(60 * 60_000)

interface Arch {
  name: string
  qemu: string
  elfClass: 'ELF32' | 'ELF64'
  endian: 'little' | 'big'
  machine: RegExp
  /** Lines `readelf -h -A` must show (the ABI). */
  abi: RegExp[]
}

const ALL: Arch[] = [
  { name: 'x86_64', qemu: 'qemu-x86_64-static', elfClass: 'ELF64', endian: 'little', machine: /X86-64/, abi: [] },
  {
    name: 'aarch64_generic',
    qemu: 'qemu-aarch64-static',
    elfClass: 'ELF64',
    endian: 'little',
    machine: /AArch64/,
    abi: [],
  },
  {
    name: 'arm_cortex-a7_neon-vfpv4',
    qemu: 'qemu-arm-static',
    elfClass: 'ELF32',
    endian: 'little',
    machine: /\bARM\b/,
    abi: [
      /Flags:.*Version5 EABI.*hard-float ABI/,
      /Tag_CPU_arch: v7\b/,
      /Tag_FP_arch: VFPv4/,
      /Tag_Advanced_SIMD_arch: NEON/,
      /Tag_ABI_VFP_args: VFP registers/,
    ],
  },
  {
    name: 'mipsel_24kc',
    qemu: 'qemu-mipsel-static',
    elfClass: 'ELF32',
    endian: 'little',
    machine: /MIPS R3000/,
    abi: [/Flags:.*o32.*mips32r2/, /ISA: MIPS32r2/, /FP ABI: Soft float/],
  },
  {
    name: 'mips_24kc',
    qemu: 'qemu-mips-static',
    elfClass: 'ELF32',
    endian: 'big',
    machine: /MIPS R3000/,
    abi: [/Flags:.*o32.*mips32r2/, /ISA: MIPS32r2/, /FP ABI: Soft float/],
  },
]

const wanted = (process.env.UGATE_CROSS_ARCHS ?? '').split(/\s+/).filter((x) => x !== '')
const ARCHS = wanted.length ? ALL.filter((a) => wanted.includes(a.name)) : ALL
const CROSS = resolve(repoRoot, process.env.UGATE_CROSS_DIR ?? 'build/cross')
const VERSION = (JSON.parse(readFileSync(resolve(repoRoot, 'package.json'), 'utf8')) as { version: string }).version
const SIZE = 8 * MiB

/** ugate (or any guest binary) under qemu-user; waits are driven by stderr lines. */
class Guest {
  readonly proc: ChildProcess
  readonly lines: string[] = []
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>
  private partial = ''
  private waiters: Array<{ re: RegExp; resolve: (l: string) => void }> = []

  constructor(qemu: string, bin: string, args: string[]) {
    this.proc = spawn(qemu, [bin, ...args], { cwd: repoRoot, stdio: ['ignore', 'ignore', 'pipe'] })
    this.proc.stderr!.setEncoding('utf8')
    this.proc.stderr!.on('data', (d: string) => {
      const parts = (this.partial + d).split('\n')
      this.partial = parts.pop()!
      for (const l of parts) this.add(l)
    })
    this.exited = new Promise((res) => this.proc.on('close', (code, signal) => res({ code, signal })))
  }

  private add(l: string) {
    this.lines.push(l)
    for (const w of this.waiters.slice()) {
      if (w.re.test(l)) {
        this.waiters.splice(this.waiters.indexOf(w), 1)
        w.resolve(l)
      }
    }
  }

  waitForLine(re: RegExp, ms = WAIT_MS): Promise<string> {
    const seen = this.lines.find((l) => re.test(l))
    if (seen !== undefined) return Promise.resolve(seen)
    const p = new Promise<string>((resolve) => this.waiters.push({ re, resolve }))
    const died = this.exited.then(({ code, signal }) => {
      throw new Error(`exited (code=${code} signal=${signal}) while waiting for ${re}:\n${this.lines.join('\n')}`)
    })
    return within(Promise.race([p, died]), ms, `${re} in:\n${this.lines.join('\n')}`)
  }

  kill() {
    if (this.proc.exitCode === null && this.proc.signalCode === null) this.proc.kill('SIGKILL')
  }
}

function run(cmd: string, args: string[], timeout = WAIT_MS) {
  return spawnSync(cmd, args, { cwd: repoRoot, encoding: 'utf8', timeout })
}

/** Run a build script without blocking the event loop; resolves with its status and stderr. */
function build(
  cmd: string,
  args: string[],
  env: NodeJS.ProcessEnv = {},
): Promise<{ status: number | null; stderr: string }> {
  return new Promise((res) => {
    const p = spawn(cmd, args, { cwd: repoRoot, env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'pipe'] })
    let stderr = ''
    p.stderr!.setEncoding('utf8')
    p.stderr!.on('data', (d: string) => {
      stderr += d
    })
    p.on('close', (status) => res({ status, stderr }))
  })
}

async function forward(t: Test, arch: Arch, bin: string, mode: 'splice' | 'copy') {
  const srv = await dataServer(t, { bytes: SIZE, seed: 0xc0de, mode: 'simultaneous' })
  const ug = new Guest(arch.qemu, bin, [
    'run',
    '--forward',
    `127.0.0.1:0=${srv.target}`,
    ...(mode === 'copy' ? ['--no-splice'] : []),
  ])
  t.teardown(() => {
    destroyClients()
    ug.kill()
  })
  await ug.waitForLine(/ info ready /)
  const addr = parseLogLine(await ug.waitForLine(/ info listening /))?.fields.addr ?? ''
  const port = Number(/:(\d+)$/.exec(addr)?.[1])
  t.ok(port > 0, `listening on ${addr}`)
  const c = await connect(port)
  const [got, sent] = await within(
    Promise.all([hashIncoming(c), sendPrng(c, 0x5eed, SIZE)]),
    120_000,
    'client transfer',
  )
  const sc = await srv.conn(0)
  const [srvGot, srvSent] = await within(Promise.all([sc.received, sc.sent]), 60_000, 'server transfer')
  t.equal(srvGot.bytes, SIZE, 'server received 8 MiB')
  t.equal(srvGot.hash, sent.hash, 'upstream sha256 matches')
  t.equal(got.bytes, SIZE, 'client received 8 MiB')
  t.equal(got.hash, srvSent.hash, 'downstream sha256 matches')
  const conn = parseLogLine(await ug.waitForLine(/ info conn /))
  t.match(
    conn?.fields,
    { up: String(SIZE), down: String(SIZE), reason: 'eof', splice: mode === 'splice' ? '1' : '0' },
    `conn line (splice=${mode === 'splice' ? 1 : 0})`,
  )
  c.destroy()
  ug.proc.kill('SIGTERM')
  const res = await within(ug.exited, WAIT_MS, 'exit after SIGTERM')
  t.same(res, { code: 0, signal: null }, 'exits 0 after SIGTERM (signals reach the guest)', { stderr: ug.lines })
  t.ok(
    ug.lines.some((l) => / info stopped/.test(l)),
    'stopped line logged',
  )
}

/** The bytes of a jsc output file (the C array), without its comment line. */
function bundleArray(file: string): string {
  return readFileSync(file, 'utf8').replace(/^\/\/.*\n/, '')
}

if (process.env.UGATE_BIN && resolve(repoRoot, process.env.UGATE_BIN) !== resolve(repoRoot, 'build/ugate')) {
  t.fail(`test/package/ tests the packaged binaries, not UGATE_BIN=${process.env.UGATE_BIN}: run it without UGATE_BIN`)
} else {
  t.test('openwrt/toolchain.sh builds every arch', async (t) => {
    // tls-test: test/native/tls-test.c with native/tls.c, for the TLS test below.
    const r = await build('openwrt/toolchain.sh', ['--also', 'tls-test', ...ARCHS.map((a) => a.name)])
    t.equal(r.status, 0, 'toolchain.sh exits 0', { stderr: r.stderr.split('\n').slice(-30) })
    for (const l of r.stderr.split('\n').filter((x) => /: \d+ bytes/.test(x))) t.comment(l)
  })

  for (const arch of ARCHS) {
    const bin = join(CROSS, arch.name, 'ugate')

    t.test(arch.name, async (t) => {
      if (!existsSync(bin)) {
        t.fail(`${bin} missing (openwrt/toolchain.sh ${arch.name})`)
        return
      }
      if (run('sh', ['-c', `command -v ${arch.qemu}`]).status !== 0) {
        t.fail(`${arch.qemu} missing: apt-get install qemu-user-static`)
        return
      }
      t.comment(`${arch.name}: ${statSync(bin).size} bytes`)

      t.test('ELF header and ABI attributes', async (t) => {
        const h = run('readelf', ['-h', '-A', bin]).stdout
        t.match(h, new RegExp(`Class:\\s+${arch.elfClass}`), arch.elfClass)
        t.match(h, new RegExp(`Data:.*${arch.endian} endian`), `${arch.endian} endian`)
        t.match(h, new RegExp(`Machine:.*${arch.machine.source}`), `machine ${arch.machine.source}`)
        t.match(h, /Type:\s+EXEC/, 'ET_EXEC')
        for (const re of arch.abi) t.match(h, re, re.source)
        const l = run('readelf', ['-lW', bin]).stdout
        t.notMatch(l, /INTERP|DYNAMIC/, 'static: no interpreter, no dynamic section')
        t.match(run('file', [bin]).stdout, /statically linked, stripped/, 'file: statically linked, stripped')
      })

      t.test('--version and check under qemu', async (t) => {
        const v = run(arch.qemu, [bin, '--version'])
        t.equal(v.status, 0, 'exit 0', { stderr: v.stderr })
        t.match(v.stdout, new RegExp(`^ugate ${VERSION.replace(/\./g, '\\.')} \\(quickjs-ng `), `ugate ${VERSION}`)
        const c = run(arch.qemu, [bin, 'check', '--config', 'files/etc/config/ugate'])
        t.equal(c.status, 0, 'the shipped /etc/config/ugate checks out', { stdout: c.stdout, stderr: c.stderr })
      })

      t.test('QUIC Initials opened under qemu (mbedTLS on this ABI) as node:crypto opens them', async (t) => {
        const files = [0, 1].map((i) => `test/fixtures/quic/chromium-v1-${i}.bin`)
        const r = run(arch.qemu, [bin, 'sniff-quic', '--packets', ...files])
        t.equal(r.status, 0, 'exit 0: the ClientHello was read', { stderr: r.stderr })
        const lines = r.stdout.trim().split('\n')
        t.same(JSON.parse(lines.pop() ?? ''), { status: 'ok', proto: 'quic', host: 'quic.test', alpn: ['h3'] })
        const want = sniffQuicPacketLines(files.map((f) => new Uint8Array(readFileSync(resolve(repoRoot, f)))))
        t.same(
          lines.map((l) => JSON.parse(l) as unknown),
          want,
          'every packet decrypted to the same frames',
        )
      })

      t.test('mutual TLS 1.3 under qemu, each suite, against openssl s_server', async (t) => {
        const driver = join(CROSS, arch.name, 'obj/tls-test')
        const srv = makeIdentity(t, 'cross.test', 'srv')
        const cli = issueIdentity(t, srv, 'cross.test', 'cli')
        for (const suite of ['TLS_AES_128_GCM_SHA256', 'TLS_AES_256_GCM_SHA384', 'TLS_CHACHA20_POLY1305_SHA256']) {
          const s = await opensslServer(t, srv, {
            tls: '1.3',
            alpn: 'h2',
            requireClientCert: true,
            ciphersuites: suite,
            reverse: true,
          })
          const args = ['client', '--port', String(s.port), '--chain', cli.cert, '--key', cli.key, '--roots', cli.root]
          const r = run(arch.qemu, [driver, ...args, '--send', 'hello', '--close-after-line'], 120_000)
          t.equal(r.status, 0, `${suite}: exit 0`, { stdout: r.stdout, stderr: r.stderr })
          const lines = r.stdout.split('\n')
          t.ok(lines.includes(`suite ${suite}`), `${suite} agreed`, { lines })
          t.ok(lines.includes('received: olleh'), `${suite}: records both ways (s_server's reversed line)`)
          if (suite === 'TLS_CHACHA20_POLY1305_SHA256') t.comment(lines.find((l) => l.startsWith('aes in hardware')))
        }
      })

      t.test('forward 8 MiB each way, splice', (t) => forward(t, arch, bin, 'splice'))
      t.test('forward 8 MiB each way, copy (--no-splice)', (t) => forward(t, arch, bin, 'copy'))

      t.test("the target's own jsc writes the bytecode its ugate embeds", async (t) => {
        const dir = tempDir(t, 'ipk-jsc-')
        const out = join(dir, 'bundle.c')
        const r = run(arch.qemu, [join(CROSS, arch.name, 'jsc'), resolve(repoRoot, 'build/ugate.js'), out], 120_000)
        t.equal(r.status, 0, 'jsc runs under qemu', { stderr: r.stderr })
        const host = bundleArray(resolve(repoRoot, 'build/gen/bundle.c'))
        if (arch.endian === 'little') {
          t.ok(
            bundleArray(out) === host,
            `${arch.elfClass} little endian: same bytes as the x86_64 jsc (build/gen/bundle.c)`,
          )
        } else {
          t.ok(bundleArray(out) !== host, 'big endian: the bytes differ from the little-endian bundle')
          t.ok(
            bundleArray(out) === bundleArray(join(CROSS, arch.name, 'gen/bundle.c')),
            'big endian: same bytes as the bundle toolchain.sh embedded',
          )
        }
      })
    })
  }
}
