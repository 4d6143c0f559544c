// Mutual TLS 1.3 of native/tls.c (test/native/tls-test.c, built by
// native/build.mk as the binary under test is: release with musl, or ASan +
// UBSan and LeakSanitizer for ugate-asan) against openssl s_server and
// s_client: both roles with data both ways and close_notify; every suite
// (AES-128-GCM, AES-256-GCM, ChaCha20-Poly1305) forced by the peer in both
// roles, and which one each side's order picks (ours: AES-128-GCM first with
// AES instructions, ChaCha20-Poly1305 first without; as a server our order,
// but ChaCha20-Poly1305 for a client that puts it first); each key exchange
// group (X25519, P-256) as the peer's only one, in both roles; and each
// refusal with its tls_conn_error: TLS 1.2 only, no client certificate,
// wrong trust domain, expected identity or trust domain not matched,
// expired certificate (at load: the file and the date; from the peer:
// refused), no ALPN h2, a chain from a CA that is not among the roots; an
// expected trust domain other than the config's. Certificates come from
// `ugate identity init`; the bad ones from openssl with the same CA key.
// And tls_batch's buffers, client and server of one identity in the driver
// (`pair`): allocated only while bytes move.

import { spawn, spawnSync } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { mkdirSync, writeFileSync } from 'node:fs'
import { basename, join } from 'node:path'
import t from 'tap'
import type { Test } from 'tap'
import { SANITIZER_RE, makeNative } from '../lib/drivers.js'
import { runUgate, ugateBin } from '../lib/ugate.js'
import { tempDir } from '../lib/temp.js'

const TD = 'mesh.test'
const ID = `spiffe://${TD}/ns/home/sa/router1`
const sanEnv = { ...process.env, ASAN_OPTIONS: 'detect_leaks=1:abort_on_error=0', UBSAN_OPTIONS: 'print_stacktrace=1' }

// The driver: the objects and flags of the binary under test, by the same
// make call as ./build.sh (build/ugate) or ./build.sh asan (build/ugate-asan),
// so nothing is rebuilt when that build is current.
const asan = basename(ugateBin).includes('asan')
const made = makeNative('tls-test', asan)
const driver = made.path
if (made.status !== 0) throw new Error(`building tls-test: ${made.stderr}`)

// About 40 processes (the ASan driver, openssl, ugate identity init) one after another.
t.setTimeout(300_000)

const dir = tempDir(t, 'ugate-tls-')

function sh(args: string[], input?: string): string {
  const r = spawnSync(args[0]!, args.slice(1), { encoding: 'utf8', input, cwd: dir })
  if (r.status !== 0) throw new Error(`${args.join(' ')}: ${r.stderr}`)
  return r.stdout
}

/** An identity directory from `ugate identity init`. */
function identity(name: string, td: string): Record<'chain' | 'key' | 'roots' | 'caKey', string> {
  const d = join(dir, name)
  mkdirSync(d)
  const r = runUgate(['identity', 'init', '--dir', d, '--trust-domain', td, '--namespace', 'home', '--sa', 'router1'])
  if (r.code !== 0) throw new Error(`identity init: ${r.stderr.join('\n')}`)
  return {
    chain: join(d, 'cert-chain.pem'),
    key: join(d, 'key.pem'),
    roots: join(d, 'root-cert.pem'),
    caKey: join(d, 'ca-key.pem'),
  }
}

const good = identity('good', TD)
const other = identity('other', TD) // another CA: not trusted by `good`

/** A leaf for good's key, signed by good's CA with openssl: SAN uri, valid for `days` (negative: expired). */
function leaf(name: string, uri: string, days: number): string {
  const csr = join(dir, `${name}.csr`)
  const ext = join(dir, `${name}.ext`)
  const out = join(dir, `${name}.pem`)
  writeFileSync(ext, `subjectAltName=URI:${uri}\nextendedKeyUsage=serverAuth,clientAuth\n`)
  sh(['openssl', 'req', '-new', '-key', good.key, '-subj', `/CN=${name}`, '-out', csr])
  sh([
    'openssl',
    'x509',
    '-req',
    '-in',
    csr,
    '-CA',
    good.roots,
    '-CAkey',
    good.caKey,
    '-days',
    String(days),
    '-out',
    out,
    '-extfile',
    ext,
  ])
  return out
}
const wrongTd = leaf('wrong-td', `spiffe://elsewhere.test/ns/home/sa/router1`, 30)
const expired = leaf('expired', ID, -1)

interface Run {
  lines: string[]
  code: number | null
  stderr: string
}

/** Start the driver: port (a server's, once it listens), done (its exit). */
function driverRun(args: string[]): { done: Promise<Run>; port: Promise<number> } {
  const proc = spawn(driver, args, { env: sanEnv, stdio: ['ignore', 'pipe', 'pipe'] })
  const lines: string[] = []
  let stderr = ''
  let partial = ''
  let onPort: (p: number) => void = () => {}
  const port = new Promise<number>((res) => (onPort = res))
  proc.stdout!.on('data', (d: Buffer) => {
    partial += d
    const ls = partial.split('\n')
    partial = ls.pop()!
    for (const l of ls) {
      lines.push(l)
      const m = /^listening (\d+)$/.exec(l)
      if (m) onPort(Number(m[1]))
    }
  })
  proc.stderr!.on('data', (d: Buffer) => (stderr += d))
  const done = new Promise<Run>((res) => proc.on('close', (code) => res({ lines, code, stderr })))
  return { done, port }
}

/** openssl s_server on an ephemeral port: resolves once it accepts. */
function sServer(t: Test, args: string[]): Promise<{ port: number; proc: ChildProcess; out: () => string }> {
  return new Promise((resolve, reject) => {
    // -accept 0 makes openssl print the port it bound ("ACCEPT 127.0.0.1:N").
    const proc = spawn('openssl', ['s_server', '-accept', '127.0.0.1:0', '-naccept', '1', ...args], {
      cwd: dir,
      stdio: ['pipe', 'pipe', 'pipe'],
    })
    t.teardown(() => proc.kill())
    let out = ''
    const onData = (d: Buffer) => {
      out += d
      const m = /ACCEPT 127\.0\.0\.1:(\d+)/.exec(out)
      if (m) resolve({ port: Number(m[1]), proc, out: () => out })
    }
    proc.stdout!.on('data', onData)
    proc.stderr!.on('data', onData)
    proc.on('close', () => reject(new Error(`s_server ended: ${out}`)))
  })
}

function base(id: { chain: string; key: string; roots: string }): string[] {
  return ['--chain', id.chain, '--key', id.key, '--roots', id.roots]
}

/** The driver as a client of the good identity (trust domain TD) to port. */
function clientArgs(port: number, ...extra: string[]): string[] {
  return ['client', '--port', String(port), ...base(good), '--td', TD, ...extra]
}

function clean(t: Test, r: Run): void {
  t.notMatch(r.stderr, SANITIZER_RE, 'no sanitizer report (leaks included)')
}

const serverTls = (id: { chain: string; key: string; roots: string }) => [
  '-tls1_3',
  '-cert',
  id.chain,
  '-key',
  id.key,
  '-CAfile',
  id.roots,
  '-Verify',
  '1',
  '-verify_return_error',
]

t.test('client: mTLS with s_server, data both ways, close_notify', async (t) => {
  const s = await sServer(t, [...serverTls(good), '-alpn', 'h2', '-rev'])
  const r = await driverRun(clientArgs(s.port, '--send', 'hello', '--close-after-line')).done
  t.equal(r.code, 0, 'exit 0')
  t.match(r.lines.join('\n'), /^config ok id=spiffe:\/\/mesh\.test\/ns\/home\/sa\/router1 node=[A-Z2-7]{52}$/m)
  t.ok(
    r.lines.some((l) => l === `handshake ok peer=${ID} node=${/node=([A-Z2-7]{52})/.exec(r.lines[0]!)![1]}`),
    'peer id and node id',
    {
      lines: r.lines,
    },
  )
  t.ok(r.lines.includes('received: olleh'), "s_server's reply (our line reversed)")
  const sent = r.lines.indexOf('close_notify sent')
  t.ok(sent > 0 && r.lines.indexOf('peer closed') > sent, 'close_notify sent, then the peer closed')
  clean(t, r)
})

// tls_batch's buffers exist while bytes move: an idle connection (a gate's
// reverse tunnels, mostly idle) holds none, one under load keeps them.
t.test('batched: buffers only while bytes move, kept after bulk, freed after a quiet exchange', async (t) => {
  const r = await driverRun(['pair', ...base(good)]).done
  t.equal(r.code, 0, 'exit 0')
  t.same(
    r.lines,
    [
      'handshake held 0/0',
      'small sent 5 held 66580/0 read 5 held 0',
      'bulk sent 65536 held 66580/66580 read 65536 held 65536',
      'small sent 5 held 66580/0 read 5 held 0',
    ],
    'none after the handshake and after small exchanges (flushed, read dry); both kept after bulk',
  )
  clean(t, r)
})

/** s_client (extra: more of its options) against our server: a line each way, then its close_notify. */
async function serverExchange(t: Test, extra: string[] = []): Promise<{ r: Run; out: string }> {
  const d = driverRun(['server', '--port', '0', ...base(good), '--td', TD, '--send', 'pong'])
  const port = await d.port
  const c = spawn(
    'openssl',
    [
      's_client',
      '-connect',
      `127.0.0.1:${port}`,
      '-tls1_3',
      '-cert',
      good.chain,
      '-key',
      good.key,
      '-CAfile',
      good.roots,
      '-verify_return_error',
      '-alpn',
      'h2',
      '-noservername',
      ...extra,
    ],
    { stdio: ['pipe', 'pipe', 'pipe'] },
  )
  t.teardown(() => c.kill())
  let out = ''
  let onPong: () => void = () => {}
  const pong = new Promise<void>((res) => (onPong = res))
  c.stdout.on('data', (b: Buffer) => {
    out += b
    if (/^pong$/m.test(out)) onPong()
  })
  const cDone = new Promise((res) => c.on('close', res))
  // Our line arrived: ping, then end of input (s_client's close_notify).
  await Promise.race([pong, cDone])
  c.stdin.end('ping\n')
  const r = await d.done
  await cDone
  return { r, out }
}

t.test('server: mTLS with s_client (no SNI), data both ways, close_notify', async (t) => {
  const { r, out } = await serverExchange(t)
  t.equal(r.code, 0, 'exit 0', { lines: r.lines, stderr: r.stderr })
  t.ok(r.lines.includes(`handshake ok peer=${ID} node=${/node=(\w+)/.exec(r.lines[0]!)![1]}`), 'client verified', {
    lines: r.lines,
  })
  t.ok(r.lines.includes('received: ping'), "s_client's line")
  const closed = r.lines.indexOf('peer closed')
  t.ok(closed > 0 && r.lines.indexOf('close_notify sent') > closed, "the client's close_notify, then ours")
  t.match(out, /^pong$/m, 'our line reached s_client')
  t.match(out, /ALPN protocol: h2/, 'h2 negotiated')
  t.match(out, /Verify return code: 0 \(ok\)/, 's_client verified us against the roots')
  clean(t, r)
})

const AES128 = 'TLS_AES_128_GCM_SHA256'
const AES256 = 'TLS_AES_256_GCM_SHA384'
const CHACHA = 'TLS_CHACHA20_POLY1305_SHA256'

/** Whether the driver found AES instructions (its suites' order: AES-128-GCM or ChaCha20-Poly1305 first). */
function aesHw(t: Test, r: Run): boolean {
  const l = r.lines.find((x) => x.startsWith('aes in hardware: '))
  t.ok(l === 'aes in hardware: yes' || l === 'aes in hardware: no', `the driver says: ${l}`)
  return l === 'aes in hardware: yes'
}

for (const suite of [AES128, AES256, CHACHA]) {
  t.test(`client: ${suite}, the only suite of s_server`, async (t) => {
    const s = await sServer(t, [...serverTls(good), '-alpn', 'h2', '-rev', '-ciphersuites', suite])
    const r = await driverRun(clientArgs(s.port, '--send', 'hello', '--close-after-line')).done
    t.equal(r.code, 0, 'exit 0', { lines: r.lines, stderr: r.stderr })
    t.ok(r.lines.includes(`suite ${suite}`), `we agreed on ${suite}`, { lines: r.lines })
    t.ok(r.lines.includes('received: olleh'), "s_server's reply: records both ways")
    t.match(s.out(), new RegExp(`^Ciphersuite: ${suite}$`, 'm'), `s_server agreed on ${suite}`)
    clean(t, r)
  })

  t.test(`server: ${suite}, the only suite s_client offers`, async (t) => {
    const { r, out } = await serverExchange(t, ['-ciphersuites', suite])
    t.equal(r.code, 0, 'exit 0', { lines: r.lines, stderr: r.stderr })
    t.ok(r.lines.includes(`suite ${suite}`), `we agreed on ${suite}`, { lines: r.lines })
    t.ok(r.lines.includes('received: ping'), "s_client's line")
    t.match(out, /^pong$/m, 'our line reached s_client')
    t.match(out, new RegExp(`Cipher is ${suite}`), `s_client agreed on ${suite}`)
    clean(t, r)
  })
}

// Key exchange: X25519 (our key share) and P-256 (a peer that takes only
// P-256 makes us answer a HelloRetryRequest), each the only group of the peer.
for (const [group, temp] of [
  ['X25519', /Server Temp Key: X25519/],
  ['P-256', /Server Temp Key: ECDH, prime256v1/],
] as const) {
  t.test(`client: ${group}, the only group of s_server`, async (t) => {
    const s = await sServer(t, [...serverTls(good), '-alpn', 'h2', '-rev', '-groups', group])
    const r = await driverRun(clientArgs(s.port, '--send', 'hello', '--close-after-line')).done
    t.equal(r.code, 0, 'exit 0', { lines: r.lines, stderr: r.stderr })
    t.ok(r.lines.includes('received: olleh'), `handshake over ${group}, records both ways`)
    clean(t, r)
  })

  t.test(`server: ${group}, the only group s_client offers`, async (t) => {
    const { r, out } = await serverExchange(t, ['-groups', group])
    t.equal(r.code, 0, 'exit 0', { lines: r.lines, stderr: r.stderr })
    t.ok(r.lines.includes('received: ping'), "s_client's line")
    t.match(out, temp, `s_client agreed on ${group}`)
    clean(t, r)
  })
}

t.test("client: our order, with a server that takes the client's (s_server, all suites)", async (t) => {
  const s = await sServer(t, [
    ...serverTls(good),
    '-alpn',
    'h2',
    '-rev',
    '-ciphersuites',
    [AES256, CHACHA, AES128].join(':'),
  ])
  const r = await driverRun(clientArgs(s.port, '--send', 'hello', '--close-after-line')).done
  t.equal(r.code, 0, 'exit 0', { lines: r.lines, stderr: r.stderr })
  const order = aesHw(t, r) ? [AES128, AES256, CHACHA] : [CHACHA, AES128, AES256]
  t.match(s.out(), new RegExp(`^Client cipher list: ${order.join(':')}(:|$)`, 'm'), `we offered ${order.join(':')}`)
  t.ok(r.lines.includes(`suite ${order[0]}`), `our first: ${order[0]}`, { lines: r.lines })
  clean(t, r)
})

t.test("server: our order over the client's, but ChaCha20-Poly1305 for a client that puts it first", async (t) => {
  const cases: [string[], string, string][] = [
    // [what s_client offers, in its order; with AES instructions; without]
    [[AES256, AES128], AES128, AES128], // ztunnel's offer
    [[AES256, AES128, CHACHA], AES128, CHACHA],
    [[AES256, CHACHA], AES256, CHACHA],
    [[CHACHA, AES128, AES256], CHACHA, CHACHA], // a client without AES instructions
  ]
  for (const [offer, withHw, without] of cases) {
    const { r, out } = await serverExchange(t, ['-ciphersuites', offer.join(':')])
    t.equal(r.code, 0, `${offer.join(':')}: exit 0`, { lines: r.lines, stderr: r.stderr })
    const want = aesHw(t, r) ? withHw : without
    t.ok(r.lines.includes(`suite ${want}`), `${offer.join(':')} → ${want}`, { lines: r.lines })
    t.match(out, new RegExp(`Cipher is ${want}`), `s_client agreed on ${want}`)
    clean(t, r)
  }
})

/** Our client against an s_server with `args`: the handshake must fail with `why`. */
async function clientRefused(t: Test, args: string[], why: RegExp, extra: string[] = []) {
  const s = await sServer(t, args)
  const r = await driverRun(clientArgs(s.port, ...extra)).done
  t.equal(r.code, 2, 'handshake failed (exit 2)', { lines: r.lines, stderr: r.stderr })
  const line = r.lines.find((l) => l.startsWith('handshake failed: ')) ?? ''
  t.match(line, why)
  clean(t, r)
}

/** s_client against our server: the handshake must fail on our side with `why`. */
async function serverRefused(t: Test, clientArgs: string[], why: RegExp) {
  const d = driverRun(['server', '--port', '0', ...base(good), '--td', TD])
  const port = await d.port
  const c = spawn('openssl', ['s_client', '-connect', `127.0.0.1:${port}`, '-noservername', ...clientArgs], {
    stdio: ['pipe', 'ignore', 'ignore'],
  })
  const r = await d.done
  c.stdin.end()
  c.kill()
  t.equal(r.code, 2, 'handshake failed (exit 2)', { lines: r.lines, stderr: r.stderr })
  t.match(r.lines.find((l) => l.startsWith('handshake failed: ')) ?? '', why)
  clean(t, r)
}

t.test('refused: a server that speaks TLS 1.2 only', (t) =>
  clientRefused(
    t,
    ['-tls1_2', '-cert', good.chain, '-key', good.key, '-alpn', 'h2'],
    /does not speak TLS 1\.3|protocol_version/,
  ),
)

t.test('refused: a client that offers TLS 1.2 only', (t) =>
  serverRefused(t, ['-tls1_2', '-cert', good.chain, '-key', good.key, '-alpn', 'h2'], /does not speak TLS 1\.3/),
)

t.test('refused: a client without a certificate', (t) =>
  serverRefused(t, ['-tls1_3', '-alpn', 'h2', '-CAfile', good.roots], /peer sent no client certificate/),
)

t.test('refused: a server in another trust domain (same CA)', (t) =>
  clientRefused(
    t,
    [...serverTls({ ...good, chain: wrongTd }), '-alpn', 'h2'],
    /peer spiffe:\/\/elsewhere\.test\/ns\/home\/sa\/router1 is not in trust domain mesh\.test/,
  ),
)

t.test('refused: a client in another trust domain (same CA)', (t) =>
  serverRefused(t, ['-tls1_3', '-alpn', 'h2', '-cert', wrongTd, '-key', good.key], /is not in trust domain mesh\.test/),
)

t.test('refused: a server that is not the expected identity', (t) =>
  clientRefused(
    t,
    [...serverTls(good), '-alpn', 'h2'],
    /peer is spiffe:\/\/mesh\.test\/ns\/home\/sa\/router1, not the expected spiffe:\/\/mesh\.test\/ns\/x\/sa\/y/,
    ['--expect', 'spiffe://mesh.test/ns/x/sa/y'],
  ),
)

t.test('client: "spiffe://TD" expects any id of TD in place of the config\'s trust domain', async (t) => {
  const s = await sServer(t, [...serverTls({ ...good, chain: wrongTd }), '-alpn', 'h2', '-rev'])
  const r = await driverRun(
    clientArgs(s.port, '--expect', 'spiffe://elsewhere.test', '--send', 'hello', '--close-after-line'),
  ).done
  t.equal(r.code, 0, 'exit 0', { lines: r.lines, stderr: r.stderr })
  t.ok(
    r.lines.some((l) => l.startsWith('handshake ok peer=spiffe://elsewhere.test/ns/home/sa/router1 ')),
    'a peer of elsewhere.test accepted while the config says mesh.test',
    { lines: r.lines },
  )
  t.ok(r.lines.includes('received: olleh'), 'data both ways')
  clean(t, r)
})

t.test('refused: a server outside the expected trust domain ("spiffe://TD")', (t) =>
  clientRefused(
    t,
    [...serverTls(good), '-alpn', 'h2'],
    /peer spiffe:\/\/mesh\.test\/ns\/home\/sa\/router1 is not in trust domain elsewhere\.test/,
    ['--expect', 'spiffe://elsewhere.test'],
  ),
)

t.test('refused: a server with an expired certificate', (t) =>
  clientRefused(t, [...serverTls({ ...good, chain: expired }), '-alpn', 'h2'], /peer certificate expired/),
)

t.test('refused: a client with an expired certificate', (t) =>
  serverRefused(t, ['-tls1_3', '-alpn', 'h2', '-cert', expired, '-key', good.key], /peer certificate expired/),
)

t.test('refused: a server that only speaks http/1.1', (t) =>
  clientRefused(t, [...serverTls(good), '-alpn', 'http/1.1'], /ALPN h2|no_application_protocol/),
)

t.test('refused: a client that offers http/1.1 only', (t) =>
  serverRefused(
    t,
    ['-tls1_3', '-alpn', 'http/1.1', '-cert', good.chain, '-key', good.key],
    /peer does not offer ALPN h2/,
  ),
)

t.test('refused: a client that offers no ALPN', (t) =>
  serverRefused(t, ['-tls1_3', '-cert', good.chain, '-key', good.key], /peer did not negotiate ALPN h2/),
)

t.test('refused: a server whose CA is not among our roots', (t) =>
  clientRefused(t, [...serverTls(other), '-alpn', 'h2'], /peer certificate not signed by the configured roots/),
)

t.test('refused: a client whose CA is not among our roots', (t) =>
  serverRefused(
    t,
    ['-tls1_3', '-alpn', 'h2', '-cert', other.chain, '-key', other.key],
    /peer certificate not signed by the configured roots/,
  ),
)

t.test('load: an expired certificate is refused naming the file and the date', async (t) => {
  const r = await driverRun(['client', '--port', '1', '--chain', expired, '--key', good.key, '--roots', good.roots])
    .done
  t.equal(r.code, 3)
  const notAfter = new Date(
    sh(['openssl', 'x509', '-in', expired, '-noout', '-enddate']).trim().replace('notAfter=', ''),
  )
  t.match(r.lines[0], `config failed: ${expired}: certificate expired on ${notAfter.toISOString().replace('.000', '')}`)
  clean(t, r)
})

t.test(
  'load: our own chain must verify against the roots, hold a SPIFFE id of the trust domain and match the key',
  async (t) => {
    const cases: [string[], RegExp][] = [
      [
        ['--chain', other.chain, '--key', other.key, '--roots', good.roots],
        /cert-chain\.pem: does not verify against .*root-cert\.pem: not-trusted/,
      ],
      [
        ['--chain', good.chain, '--key', other.key, '--roots', good.roots],
        /other\/key\.pem: is not the private key of .*good\/cert-chain\.pem/,
      ],
      [
        ['--chain', wrongTd, '--key', good.key, '--roots', good.roots, '--td', TD],
        /wrong-td\.pem: spiffe:\/\/elsewhere\.test\/ns\/home\/sa\/router1 is not in trust domain mesh\.test/,
      ],
      [
        ['--chain', join(dir, 'missing.pem'), '--key', good.key, '--roots', good.roots],
        /missing\.pem: cannot read: No such file/,
      ],
      [['--chain', good.key, '--key', good.key, '--roots', good.roots], /key\.pem: no PEM certificate in it/],
      [
        ['--chain', good.chain, '--key', good.chain, '--roots', good.roots],
        /cert-chain\.pem: not a valid PEM private key/,
      ],
    ]
    for (const [args, why] of cases) {
      const r = await driverRun(['server', '--port', '0', ...args]).done
      t.equal(r.code, 3, `refused: ${why}`)
      t.match(r.lines[0], why)
      clean(t, r)
    }
  },
)
