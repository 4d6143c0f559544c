// The HTTP/2 CONNECT engine (native/h2.c, native/hpack.c): compiled here with
// ASan/UBSan together with its C test drivers (test/native/), then
//  - h2-test: RFC 7541 Appendix C, engine pairs, every error path, seeded fuzz;
//  - h2-peer against Node's http2 (nghttp2: Huffman, dynamic table) over
//    cleartext TCP, as client of a Node server and as server for a Node client.

import { spawn } from 'node:child_process'
import { createHash } from 'node:crypto'
import http2 from 'node:http2'
import type { AddressInfo } from 'node:net'
import { resolve } from 'node:path'
import t from 'tap'
import { MBEDTLS_SRC, SANITIZER_RE, compileSanitized, mustMakeNative, sanitizerEnv } from '../lib/drivers.js'
import { repoRoot } from '../lib/ugate.js'

const outDir = resolve(repoRoot, 'build/h2-test')
const ENGINE = ['native/h2.c', 'native/hpack.c']

// mbedTLS's crypto library as the ASan build has it (h2-peer hashes payloads
// with its SHA-256).
const MBEDTLS_FLAGS = ['-Inative', `-I${MBEDTLS_SRC}/include`, `-DMBEDTLS_CONFIG_FILE="mbedtls-config.h"`]

function compile(name: string, extra: string[] = []): string {
  const bin = resolve(outDir, name)
  compileSanitized(bin, [`test/native/${name}.c`, ...ENGINE, ...extra])
  return bin
}

/** Run a driver; resolves with its stdout, stderr and exit code. */
function run(bin: string, args: string[], onLine?: (line: string) => void) {
  return new Promise<{ out: string; err: string; code: number | null }>((done) => {
    const p = spawn(bin, args, { env: sanitizerEnv, stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    let err = ''
    let partial = ''
    p.stdout.on('data', (d: Buffer) => {
      out += d
      partial += d
      const lines = partial.split('\n')
      partial = lines.pop()!
      for (const l of lines) onLine?.(l)
    })
    p.stderr.on('data', (d: Buffer) => (err += d))
    p.on('close', (code) => done({ out, err, code }))
  })
}

const testBin = compile('h2-test')
const MBEDCRYPTO = mustMakeNative('mbedtls/libmbedcrypto.a', true)
const peerBin = compile('h2-peer', [...MBEDTLS_FLAGS, MBEDCRYPTO])

t.test('engine: RFC 7541 examples, pairs, error paths, fuzz (ASan/UBSan)', async (t) => {
  const r = await run(testBin, ['20000'])
  const lines = r.out.split('\n').filter((l) => /^(not )?ok \d+ - /.test(l))
  t.ok(lines.length > 200, `checks reported (${lines.length})`)
  for (const l of lines) t.ok(l.startsWith('ok '), l.replace(/^(not )?ok \d+ - /, ''))
  t.notMatch(r.err, SANITIZER_RE, 'no sanitizer report')
  t.equal(r.code, 0, 'exit 0')
})

/** What Node's server saw of each stream. */
interface Seen {
  authority: string
  headers: http2.IncomingHttpHeaders
  bytes: number
  sha: string
  rst: number | null
}

/** Node's own defaults (64 KiB windows, 16 KiB frames), then ztunnel's. */
const profiles: { name: string; settings: http2.Settings; connWindow?: number; padding?: boolean }[] = [
  { name: "Node's default settings", settings: {} },
  { name: 'Node padding every frame', settings: {}, padding: true },
  {
    name: "ztunnel's settings",
    settings: {
      initialWindowSize: 4 << 20,
      maxFrameSize: 1 << 20,
      maxConcurrentStreams: 200,
      maxHeaderListSize: 64 << 10,
    },
    connWindow: 16 << 20,
  },
]

/** Node's padding option: HEADERS and DATA frames padded as far as they can be. */
const padding = (p: { padding?: boolean }) =>
  p.padding ? { paddingStrategy: http2.constants.PADDING_STRATEGY_MAX } : {}

for (const profile of profiles)
  t.test(`client: our engine against Node http2 server (h2c), ${profile.name}`, async (t) => {
    const server = http2.createServer({ settings: profile.settings, ...padding(profile) })
    if (profile.connWindow) server.on('session', (s) => s.setLocalWindowSize(profile.connWindow!)) // a server session is connected already
    const seen: Seen[] = []
    server.on('stream', (stream, headers) => {
      const rec: Seen = { authority: String(headers[':authority']), headers, bytes: 0, sha: '', rst: null }
      seen.push(rec)
      stream.on('close', () => (rec.rst = stream.rstCode ?? null))
      if (rec.authority.startsWith('refuse:')) return stream.respond({ ':status': 503 }, { endStream: true })
      stream.respond({ ':status': 200 })
      if (rec.authority.startsWith('reset:'))
        return void stream.once('data', () => stream.close(http2.constants.NGHTTP2_CANCEL))
      const h = createHash('sha256')
      stream.on('data', (d: Buffer) => {
        h.update(d)
        rec.bytes += d.length
      })
      stream.on('end', () => (rec.sha = h.digest('hex')))
      stream.pipe(stream) // echo, with backpressure
    })
    await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok))
    t.teardown(() => server.close())
    const port = (server.address() as AddressInfo).port
    const r = await run(peerBin, ['client', String(port)])
    t.comment(r.out)
    const results = r.out.split('\n').filter((l) => /^(ok|fail) /.test(l))
    t.ok(results.length >= 8, `scenario steps reported (${results.length})`)
    for (const l of results) t.ok(l.startsWith('ok '), l.replace(/^(ok|fail) /, ''))
    t.notMatch(r.err, SANITIZER_RE, 'no sanitizer report')
    t.equal(r.code, 0, 'exit 0')

    const sent = /^sha256 sent ([0-9a-f]{64})$/m.exec(r.out)?.[1]
    const big = seen.find((s) => s.authority === 'echo:big')
    t.equal(big?.bytes, 16 << 20, 'Node got 16 MiB on one stream')
    t.equal(big?.sha, sent, 'sha256 of what Node got = sha256 of what we sent (the echo matched it too)')
    t.equal(big?.headers[':method'], 'CONNECT')
    t.equal(big?.headers[':scheme'], undefined, 'no :scheme in CONNECT')
    t.equal(big?.headers[':path'], undefined, 'no :path in CONNECT')
    t.equal(big?.headers.baggage, 'k8s.cluster.name=c1,k8s.namespace.name=ns,service.name=ugate')
    t.equal(big?.headers.forwarded, 'for="127.0.0.1"')
    t.equal(big?.headers.traceparent, '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01')
    const many = seen.filter((s) => s.authority === 'echo:many')
    t.equal(many.length, 100, '100 streams reached Node')
    t.equal(
      many.filter((s) => s.bytes === 64 << 10 && s.sha !== '' && s.rst === 0).length,
      100,
      'each got 64 KiB and ended',
    )
    t.equal(new Set(many.map((s) => s.sha)).size, 100, 'with distinct payloads')
    const reset = seen.find((s) => s.authority === 'echo:client-reset')
    t.equal(reset?.rst, http2.constants.NGHTTP2_CANCEL, 'Node saw our RST_STREAM CANCEL')
    const long = seen.find((s) => s.authority === 'echo:long-header')
    t.equal(String(long?.headers['x-big']).length, 20000, 'Node got the 20000-byte header (HEADERS + CONTINUATION)')
    t.match(r.out, /^rtt_us \d+$/m, 'PING RTT measured')
    t.match(r.out, /^goaway last=\d+ code=0$/m, "Node's GOAWAY after ours")
  })

/** Write n pseudo-random bytes (seeded) to a stream with backpressure; resolves with their sha256. */
async function upload(s: http2.ClientHttp2Stream, n: number, seed: number, end: boolean): Promise<string> {
  const h = createHash('sha256')
  let x = seed
  for (let off = 0; off < n; off += 16384) {
    const chunk = Buffer.alloc(Math.min(16384, n - off))
    for (let i = 0; i < chunk.length; i++) {
      x = (x * 1103515245 + 12345) >>> 0
      chunk[i] = x >>> 24
    }
    h.update(chunk)
    if (!s.write(chunk)) await new Promise((ok) => s.once('drain', ok))
  }
  if (end) s.end()
  return h.digest('hex')
}

/** Collect a stream's response: status, sha256 and length of the body, reset code. */
function collect(s: http2.ClientHttp2Stream) {
  return new Promise<{ status: number; sha: string; bytes: number; rst: number }>((done) => {
    const h = createHash('sha256')
    let status = 0
    let bytes = 0
    s.on('response', (hd) => (status = Number(hd[':status'])))
    s.on('data', (d: Buffer) => {
      h.update(d)
      bytes += d.length
    })
    s.on('error', () => {})
    s.on('close', () => done({ status, sha: h.digest('hex'), bytes, rst: s.rstCode ?? 0 }))
  })
}

for (const profile of profiles)
  t.test(`server: Node http2 client against our engine (h2c), ${profile.name}`, async (t) => {
    const lines: string[] = []
    let portSeen: (p: number) => void
    const portP = new Promise<number>((ok) => (portSeen = ok))
    const peer = run(peerBin, ['server'], (l) => {
      lines.push(l)
      const m = /^port (\d+)$/.exec(l)
      if (m) portSeen(Number(m[1]))
    })
    const port = await portP
    const client = http2.connect(`http://127.0.0.1:${port}`, { settings: profile.settings, ...padding(profile) })
    if (profile.connWindow) client.once('connect', () => client.setLocalWindowSize(profile.connWindow!))
    const connect = (authority: string, extra: http2.OutgoingHttpHeaders = {}) =>
      client.request({ ':method': 'CONNECT', ':authority': authority, ...extra })

    // Node cancels a PING sent before the connection is up.
    await new Promise((ok) => client.once('remoteSettings', ok))
    const rtt = await new Promise<number>((ok, fail) => client.ping((err, ms) => (err ? fail(err) : ok(ms))))
    t.ok(rtt >= 0, `PING answered (${rtt.toFixed(2)} ms)`)

    const big = connect('echo:big', {
      baggage: 'k8s.namespace.name=ns',
      forwarded: 'for="10.0.0.9"',
      traceparent: '00-aa-bb-01',
    })
    const bigBack = collect(big)
    const bigSha = await upload(big, 16 << 20, 1, true)
    const b = await bigBack
    t.equal(b.status, 200, 'CONNECT answered 200')
    t.equal(b.bytes, 16 << 20, '16 MiB echoed back')
    t.equal(b.sha, bigSha, 'sha256 back = sha256 sent')
    t.equal(b.rst, 0, 'closed by END_STREAM both ways')

    const streams = Array.from({ length: 100 }, (_, i) => connect(`echo:${i}`))
    const backs = streams.map(collect)
    const shas = await Promise.all(streams.map((s, i) => upload(s, 64 << 10, 100 + i, true)))
    const res = await Promise.all(backs)
    t.equal(
      res.filter((r, i) => r.status === 200 && r.bytes === 64 << 10 && r.sha === shas[i]).length,
      100,
      '100 concurrent streams echoed exactly',
    )

    const reset = connect('reset:1')
    const resetBack = collect(reset)
    reset.write('x')
    t.equal((await resetBack).rst, http2.constants.NGHTTP2_CANCEL, 'our RST_STREAM CANCEL reached Node')

    const longReq = connect('echo:long', { 'x-big': 'c'.repeat(20000) })
    const long = collect(longReq)
    longReq.end()
    const lg = await long
    t.equal(lg.status, 200, 'a 20000-byte header (HEADERS + CONTINUATION from Node) accepted')

    const refused = collect(connect('refuse:1'))
    const rf = await refused
    t.equal(rf.status, 503, '503 refusal')

    // Node half-closes before its RST_STREAM: the stream must still be open on
    // our side (a "hold" stream never ends) for the reset to be seen.
    const mine = connect('hold:1')
    const mineBack = collect(mine)
    await new Promise((ok) => mine.once('response', ok))
    mine.close(http2.constants.NGHTTP2_CANCEL)
    await mineBack

    await new Promise<void>((ok) => client.close(ok))
    const r = await peer
    t.comment(r.out)
    t.notMatch(r.err, SANITIZER_RE, 'no sanitizer report')
    t.equal(r.code, 0, 'our server saw the connection end cleanly')
    t.match(
      lines.join('\n'),
      /^request authority=echo:big baggage=k8s.namespace.name=ns forwarded=for="10.0.0.9" traceparent=00-aa-bb-01$/m,
      'headers passed to the owner',
    )
    t.match(lines.join('\n'), /^reset_by_client \d+ 8$/m, "Node's RST_STREAM CANCEL reached us")
    t.match(lines.join('\n'), /^long_header x-big 20000$/m, 'the long header reached the owner')
    t.match(lines.join('\n'), /^goaway last=0 code=0$/m, "Node's GOAWAY seen")
    t.match(lines.join('\n'), /^served streams=105 /m, 'all streams served')
  })
